#!/usr/bin/env bash
# A wheelhouse for an air-gapped GPU host: everything scripts/gpu_bench.sh installs there, for its Python.
#
# The host reaches no package index, so every wheel it needs goes with the checkout:
#   offload-core, offload-client and offload-server, built here;
#   their dependencies, downloaded for the host's Python and platform (not this machine's);
#   onnxruntime-gpu in place of onnxruntime (both install the `onnxruntime` module: only one may).
# Copy the checkout (with models/ built by `make models`) and the wheelhouse to the host, then run
# scripts/gpu_bench.sh there. The wheelhouse is under .cache/, which git ignores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST_PYTHON=${HOST_PYTHON:-3.12}                 # the GPU host's `python3 --version`, major.minor
ORT_GPU=${ORT_GPU:-onnxruntime-gpu==1.31.1}      # CUDA 12 builds; match the host's driver
WHEELHOUSE=${WHEELHOUSE:-.cache/gpu-wheelhouse}
target=(--only-binary=:all: --python-version "$HOST_PYTHON" --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
rm -rf "$WHEELHOUSE" && mkdir -p "$WHEELHOUSE"
for project in core client server; do
  "$PY" -m build -q --wheel --outdir "$WHEELHOUSE" "$project" >/dev/null
done
version=$("$PY" -c 'import offload_server; print(offload_server.__version__)')
"$PY" -m pip download -q "${target[@]}" --find-links "$WHEELHOUSE" -d "$WHEELHOUSE" \
  "offload-server==$version" "$ORT_GPU"
rm -f "$WHEELHOUSE"/onnxruntime-[0-9]*.whl      # the CPU build offload-core names; the GPU build replaces it
du -sh "$WHEELHOUSE"
echo "ready: $(ls "$WHEELHOUSE" | wc -l) wheels in $WHEELHOUSE for Python $HOST_PYTHON; now run scripts/gpu_bench.sh on the GPU host"
