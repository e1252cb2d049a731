# Set-up shared by the kernel diagnostics (ab_cycles.sh, block_trace.sh, profile_short.sh, l2_traffic.sh), sourced with the
# script's arguments: OUTDIR=$1 (created), BUILD=$2 (where sf_kernel_bench is; default /tmp/sf-kernel-build),
# NCU (Nsight Compute), PY (the Python with PyTorch where there is one), and the environment every GPU-machine
# process gets.
set -uo pipefail
OUTDIR=$1
BUILD=${2:-/tmp/sf-kernel-build}
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
PY=python3
[ -x /opt/torch/.venv/bin/python3 ] && PY=/opt/torch/.venv/bin/python3
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$OUTDIR"

# sdpa_once FILE S: writes a script that runs PyTorch SDPA's cuDNN backend once at H=24 D=128 bf16, S=S, inside
# the NVTX range "sdpa" (profile it with --nvtx --nvtx-include "sdpa/"); the warm-up before the range plans and
# compiles.
sdpa_once() {
  cat > "$1" << PYEOF
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
q, k, v = (torch.randn(1, 24, $2, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
    F.scaled_dot_product_attention(q, k, v)
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("sdpa")
    F.scaled_dot_product_attention(q, k, v)
    torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()
PYEOF
}
