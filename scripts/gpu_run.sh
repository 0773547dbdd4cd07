#!/usr/bin/env bash
# One call on a machine with a CUDA GPU, at most ~9 minutes wall, everything written under OUT_DIR:
#   1. the CUDA tests (tests/test_cuda.py: autocast vs float32, a training epoch, DDP with NCCL at world size 1)
#   2. the CUDA inference benchmark (benchmarks/bench_cuda.py: fp32 vs fp16 autocast, batch 1 and 16)
#   3. a training run of the strongest CPU-proven configuration, larger (EfficientNet-Lite2, 352x352), in the
#      time left; its best checkpoint, JSON and log are copied to OUT_DIR (at most 8 files come back from a
#      lent machine). Evaluate it afterwards on the CPU:  unetv2 evaluate --checkpoint OUT_DIR/best.safetensors
#      --data ../shared/data/polypgen/val  and bundle it (training/bundle.py) only if it beats the bundled model.
# Without CUDA it says so and exits 0.
#
#   scripts/gpu_run.sh OUT_DIR [POLYPGEN_DIR]     (POLYPGEN_DIR holds train/ and val/; default ../shared/data/polypgen)
set -uo pipefail
OUT=${1:?usage: scripts/gpu_run.sh OUT_DIR [POLYPGEN_DIR]}
DATA=${2:-../shared/data/polypgen}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
BUDGET_S=${GPU_RUN_BUDGET_S:-540}
EPOCHS=${GPU_TRAIN_EPOCHS:-15}
started=$(date +%s)
mkdir -p "$OUT"

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_run: no CUDA device here (torch.cuda.is_available() is False with $PY): nothing to run." | tee "$OUT/no_cuda.txt"
  exit 0
fi
export PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('gpu_run:', torch.cuda.get_device_name(), 'torch', torch.__version__)" | tee "$OUT/device.txt"

echo "== 1. CUDA tests"
timeout 150 "$PY" -m pytest -q -s -p no:xvfb -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.txt"

echo "== 2. CUDA inference benchmark"
timeout 150 "$PY" benchmarks/bench_cuda.py --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.md"

left=$(( BUDGET_S - ($(date +%s) - started) - 30 ))
if [ ! -d "$DATA/train" ] || [ ! -d "$DATA/val" ]; then
  echo "== 3. skipped: no training data at $DATA (pass a folder with train/ and val/)" | tee "$OUT/train_skipped.txt"
elif [ "$left" -lt 90 ]; then
  echo "== 3. skipped: only ${left}s left of the ${BUDGET_S}s budget" | tee "$OUT/train_skipped.txt"
else
  echo "== 3. training (${EPOCHS} epochs, at most ${left}s)"
  RUN=$(mktemp -d)/polyp-gpu
  timeout "$left" "$PY" -m napari_unetv2.cli train --recipe cpu --encoder tf_efficientnet_lite2 --input-size 352 352 \
      --epochs "$EPOCHS" --batch-size 16 --device cuda --data "$DATA/train" --val "$DATA/val" --out "$RUN" \
      --name polyp-gpu 2>&1 | tr '\r' '\n' | grep -v "^train:" | tee "$OUT/train.txt"
  for f in best.safetensors best.json log.csv; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/$f"; done
fi
echo "gpu_run: done in $(( $(date +%s) - started ))s -> $OUT"
