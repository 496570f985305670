#!/usr/bin/env bash
# On the GPU machine, in the repository root: the whole GPU measurement as one run (~8 min).
#
#   1. bench/gpu_check.py   the models on CUDA: outputs match the CPU's, batch-1 and best-batch times;
#   2. bench.gpu_serve      the server under each setting at concurrency 1/4/16, with its own queue,
#                           inference and batch-size figures: where throughput goes under concurrency;
#   3. bench.server         the server vs the model in-process vs the naive servers (make bench-server).
#
# Needs the parts scripts/gpu_wheels.sh made (.whl/small carried, onnxruntime-gpu staged in /tmp/ort)
# and the models (carry `models`). Results go to $OUT (the device tool's) or out/gpu.
set -uo pipefail
out=${OUT:-out/gpu}
mkdir -p "$out"
if ls /tmp/ort/*.part-* >/dev/null 2>&1; then
  first=$(ls /tmp/ort/*.part-* | head -1)
  cat /tmp/ort/*.part-* > "/tmp/$(basename "${first%.part-*}")"
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/small/*.whl /tmp/onnxruntime_gpu-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 bench/gpu_check.py --models models --out "$out/gpu.json"
python3 -m bench.gpu_serve --out "$out/gpu_serve.json" 2>&1 | tee "$out/gpu_serve.txt"
python3 -m bench.server --duration 4 --warmup 1 --overload-seconds 20 --out "$out" 2>"$out/server.err" \
  | tee "$out/server.txt"
