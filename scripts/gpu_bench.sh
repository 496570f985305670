#!/usr/bin/env bash
# On a GPU host with no package index, in the repository root: the whole GPU measurement as one run (~8 min).
#
#   1. bench/gpu_check.py   the models on CUDA: outputs match the CPU's, batch-1 and best-batch times;
#   2. bench.gpu_serve      the server under each setting at concurrency 1/4/16, with its own queue,
#                           inference and batch-size figures: where throughput goes under concurrency;
#   3. bench.server         the server vs the model in-process vs the naive servers (make bench-server).
#
# Needs models/ (built by `make models` on a connected machine) and the wheelhouse that
# scripts/gpu_wheels.sh made there. Everything installs from that wheelhouse, into a venv of its own.
set -euo pipefail
WHEELHOUSE=${WHEELHOUSE:-.cache/gpu-wheelhouse}
RESULTS=${RESULTS:-out/gpu}
VENV=${VENV:-/tmp/offload-gpu-venv}
mkdir -p "$RESULTS"
python3 -m venv "$VENV"
# --no-deps: the wheelhouse holds the whole set already, with onnxruntime-gpu where offload-core names
# onnxruntime (a resolver would ask for the CPU build, which is not there and must not be).
"$VENV/bin/pip" install -q --no-index --find-links "$WHEELHOUSE" --no-deps "$WHEELHOUSE"/*.whl
export PATH="$VENV/bin:$PATH" PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python bench/gpu_check.py --models models --out "$RESULTS/gpu.json"
python -m bench.gpu_serve --out "$RESULTS/gpu_serve.json" 2>&1 | tee "$RESULTS/gpu_serve.txt"
python -m bench.server --duration 4 --warmup 1 --overload-seconds 20 --out "$RESULTS" 2>"$RESULTS/server.err" \
  | tee "$RESULTS/server.txt"
echo "done: copy $RESULTS/gpu.json, gpu_serve.json and server.json (as server_gpu.json) into bench/results/"
