#!/usr/bin/env bash
# The GPU checks of the engine issue in one short run, for a session lent a device machine:
#   run(command="bash scripts/device_checks.sh", timeout_s=420)
# It needs only the machine's own python3 (PyTorch, Triton, transformers, pytest are there) and
# writes everything under $OUT. Nothing in the project needs a GPU; this only measures on one.
set -uo pipefail
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT="${OUT:-/tmp/iclscope-device}"
mkdir -p "$OUT"
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton',
triton.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.csv"

echo "== kernel parity on the GPU: compiled Triton vs torch twin vs per-element oracle"
ICLSCOPE_TEST_DEVICE=cuda TRITON_INTERPRET=0 python3 -m pytest -q -p no:cacheprovider \
    tests/kernel/test_kernels.py -k "matches_twin" 2>&1 | tee "$OUT/kernel_tests.txt" || status=1

echo "== patch bandwidth vs a device-to-device copy, and hook cost (GPT-2-small size, batch 256)"
for dtype in float32 bfloat16; do
    python3 -c "import json; from interp.bench.kernels import bench_kernels
print(json.dumps(bench_kernels(dtype='$dtype'), indent=1))" \
        2>&1 | tee "$OUT/bench_kernels_$dtype.json" || status=1
done
exit $status
