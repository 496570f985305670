"""Generate the gRPC/protobuf stubs committed in client/offload_client/_proto.

`python scripts/gen_proto.py` rewrites them; `--check` exits 1 when the
committed files differ from what the .proto would generate (a test runs this).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
PROTO_FILE = "offload/v1/offload.proto"
TARGET = ROOT / "client" / "offload_client" / "_proto"
GENERATED = ("offload_pb2.py", "offload_pb2.pyi", "offload_pb2_grpc.py")


def generate() -> dict[str, str]:
    """Return {file name: content} of the stubs, with package-relative imports."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO_ROOT / PROTO_FILE),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out = Path(tmp) / "offload" / "v1"
        files = {}
        for name in GENERATED:
            text = (out / name).read_text()
            # protoc writes absolute imports; the stubs live inside our package.
            text = re.sub(r"^from offload\.v1 import", "from . import", text, flags=re.M)
            files[name] = text
        return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    args = parser.parse_args()
    files = generate()
    stale = [n for n, t in files.items() if not (TARGET / n).exists() or (TARGET / n).read_text() != t]
    if args.check:
        if stale:
            print(f"stale generated stubs: {', '.join(stale)}; run `make proto`", file=sys.stderr)
            return 1
        return 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (TARGET / name).write_text(text)
    print(f"wrote {len(files)} files to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
