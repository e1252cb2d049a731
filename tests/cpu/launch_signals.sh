#!/usr/bin/env bash
# The built-in launcher stopped from outside (a scheduler's SIGTERM, `timeout`, or SIGKILL) must not leave its ranks
# running as orphans on the GPUs: on SIGTERM it passes SIGTERM on and exits 143; killed outright, the kernel sends the
# ranks SIGTERM itself (PR_SET_PDEATHSIG). Each rank here records its pid and sleeps; both cases check, within 5 s,
# that no rank is left.
#   launch_signals.sh <sf_launch_check>
set -uo pipefail
LAUNCH=${1:?usage: launch_signals.sh <sf_launch_check>}
dir=$(mktemp -d /tmp/sf-launch-signals.XXXXXX)
trap 'rm -rf "$dir"' EXIT
alive() {  # a process that exists and is not a zombie
  [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
failed=0
for sig in TERM KILL; do
  : >"$dir/pids"
  "$LAUNCH" launch -n 3 --grace 1 -- sh -c "echo \$\$ >> $dir/pids; exec sleep 60" >"$dir/log" 2>&1 &
  launcher=$!
  for _ in $(seq 100); do [ "$(wc -l <"$dir/pids")" -ge 3 ] && break; sleep 0.05; done
  kill "-$sig" "$launcher"
  wait "$launcher"
  rc=$?
  left=""
  for _ in $(seq 50); do
    left=""
    while read -r p; do alive "$p" && left="$left $p"; done <"$dir/pids"
    [ -z "$left" ] && break
    sleep 0.1
  done
  if [ -n "$left" ]; then
    echo "FAIL SIG$sig: ranks still running 5 s after the launcher was stopped:$left"
    kill -KILL $left 2>/dev/null
    failed=1
  elif [ "$sig" = TERM ] && [ "$rc" -ne 143 ]; then
    echo "FAIL SIGTERM: the launcher exited $rc, expected 143"; cat "$dir/log"; failed=1
  else
    echo "PASS SIG$sig: launcher exit $rc, its 3 ranks gone"
  fi
done
exit $failed
