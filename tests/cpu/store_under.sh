#!/usr/bin/env bash
# The bootstrap (sf_store_check) on three ranks under one launcher: passes when the job exits 0 and rank 0 reports
# the launcher's rank source and job name. Exit 77 (skipped) where the launcher is not installed.
#   store_under.sh builtin <sf_launch_check> <sf_store_check>
#   store_under.sh mpirun <sf_store_check>
set -uo pipefail
case ${1:-} in
  builtin)
    out=$("$2" launch -n 3 -- "$3" 10 2>&1)
    rc=$?
    want="store ok: rank 0 of 3 (RANK/WORLD_SIZE), job 'streamfusion launch " ;;
  mpirun)
    command -v mpirun >/dev/null || { echo "mpirun not installed: skipped"; exit 77; }
    out=$(mpirun --allow-run-as-root --oversubscribe -np 3 "$2" 10 2>&1)
    rc=$?
    want="store ok: rank 0 of 3 (Open MPI), job 'Open MPI " ;;
  *)
    echo "usage: store_under.sh builtin <sf_launch_check> <sf_store_check> | mpirun <sf_store_check>" >&2
    exit 2 ;;
esac
echo "$out"
[ "$rc" -eq 0 ] && grep -qF "$want" <<<"$out" && exit 0
echo "FAIL: exit $rc, expected a line starting \"$want\""
exit 1
