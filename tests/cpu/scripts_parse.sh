#!/usr/bin/env bash
# The GPU machines' scripts parse: every shell script (bash -n) and Python script (ast.parse: syntax only, no
# imports, so PyTorch need not be here) under bench/, scripts/ and tests/, results folders left out. They run only
# on GPU machines, where a typo costs a call of device time; here it costs a CPU test.
#   tests/cpu/scripts_parse.sh REPO_ROOT      exit 0 all parse, 1 one does not (named), 77 no python3 (skipped)
set -uo pipefail
cd "$1" || exit 1
bad=0
while IFS= read -r f; do
  bash -n "$f" || { echo "does not parse: $f"; bad=1; }
done < <(find bench scripts tests .ci -type f \( -name "*.sh" -o -name run \) -not -path "*/results/*" | sort)
command -v python3 > /dev/null || { echo "python3 not found: Python scripts not checked"; exit 77; }
find bench scripts tests -type f -name "*.py" -not -path "*/results/*" | sort | python3 -c '
import ast, sys
bad = 0
for path in sys.stdin.read().split():
    try:
        ast.parse(open(path, encoding="utf-8").read(), path)
    except SyntaxError as e:
        print(f"does not parse: {path}:{e.lineno}: {e.msg}")
        bad = 1
sys.exit(bad)
' || bad=1
exit $bad
