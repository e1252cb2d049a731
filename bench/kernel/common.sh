# Set-up shared by the kernel diagnostics (ab_cycles.sh, block_trace.sh, profile_short.sh), sourced with the
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
