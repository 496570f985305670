#!/usr/bin/env bash
# Here, before a GPU run: the wheels the device machine lacks, in .whl/ (git-ignored), for Python 3.12.
#
# The device machine reaches no network and takes at most 64 MiB per call, so:
#   .whl/small/   our three wheels and the dependencies its image lacks (~25 MB): carried by the bench call;
#   .whl/ort-N/   onnxruntime-gpu (~250 MB) cut into 60 MB parts: one call each stages a part in /tmp.
# docs/benchmarks.md ("On a GPU machine") gives the calls; scripts/gpu_bench.sh is the run itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ORT_GPU=${ORT_GPU:-onnxruntime-gpu==1.31.1}
target=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
# What the device's image lacks or holds at another version than ours (its list: the device tool's KINDS.md).
pins=$("$PY" -m pip freeze | grep -i -E '^(grpcio|grpcio-health-checking|grpcio-reflection|protobuf|pydantic|pydantic-core|pydantic-settings|annotated-types|typing-inspection|typing-extensions|python-dotenv|fastapi|starlette|annotated-doc|uvicorn|h11|pyclipper|shapely)==' | tr '\n' ' ')
rm -rf .whl && mkdir -p .whl/small /tmp/offload-ort
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps "${target[@]}" -d .whl/small $pins
"$PY" -m build -q --wheel --outdir .whl/small core >/dev/null
"$PY" -m build -q --wheel --outdir .whl/small client >/dev/null
"$PY" -m build -q --wheel --outdir .whl/small server >/dev/null
"$PY" -m pip download -q --no-deps "${target[@]}" -d /tmp/offload-ort "$ORT_GPU"
wheel=$(ls /tmp/offload-ort/onnxruntime_gpu-*.whl)
split -b 60M -d "$wheel" "/tmp/offload-ort/$(basename "$wheel").part-"
n=0
for part in /tmp/offload-ort/*.part-*; do
  n=$((n + 1)); mkdir -p ".whl/ort-$n"; mv "$part" ".whl/ort-$n/"
done
du -sh .whl/small .whl/ort-*
echo "ready: $n onnxruntime-gpu parts; see docs/benchmarks.md, 'On a GPU machine'"
