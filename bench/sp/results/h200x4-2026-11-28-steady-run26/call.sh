#!/usr/bin/env bash
# Session 26 (4 GPUs): the steady 1x4 table at Flux S=16384, 36864 and 65536 (ours and the PyTorch peers), then the
# gpu4 launchers test.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s26c x4c.log "${1:-}"
sf_build_logged "s26 x4c" streamfusion-gpu sf_gpu_multi_test
echo "## $(date -u +%T) steady" >> "$LOG"
SF_SEQ=16384,36864,65536 SF_STEADY_CTEST=0 timeout 330 bash bench/sp/steady_1x4.sh "$OUTDIR/steady" > /dev/null 2>&1
echo "## steady rc=$? $(date -u +%T)" >> "$LOG"
timeout 120 ctest --test-dir "$BUILD" -L "gpu${NGPU}" -R launchers --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log")) $(date -u +%T)" >> "$LOG"
cat "$LOG"; sed -n '/PyTorch peers/,$p' "$OUTDIR/steady/steady.log"
python3 - "$OUTDIR/steady/steady.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(r["seq"], r["name"], round(r["ms"], 3), round(r["one_gpu_ms"], 3), round(r["concurrent_compute_ms"], 3),
          f'{r["one_gpu_ms"] / 4 / r["ms"] * 100:.1f} %', r.get("ring_first_wave_heads"), r.get("ok"))
PY
