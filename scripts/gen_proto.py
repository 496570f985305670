"""Generate the committed gRPC/protobuf stubs: ours in core/offload_core/proto, the Open
Inference Protocol's in server/offload_server/_proto.

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
# .proto file → the package folder its stubs are committed in.
STUBS = {
    "offload/v1/offload.proto": ROOT / "core" / "offload_core" / "proto",
    "inference/grpc_service.proto": ROOT / "server" / "offload_server" / "_proto",
}


def generate(proto_file: str, target: Path) -> dict[str, str]:
    """Return {file name: content} of one .proto's stubs, with package-relative imports."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO_ROOT / proto_file),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        folder, stem = proto_file.rsplit("/", 1)
        stem = stem.removesuffix(".proto")
        files = {}
        for name in (f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"):
            text = (Path(tmp) / folder / name).read_text()
            # protoc writes absolute imports; the stubs live inside our packages.
            text = re.sub(rf"^from {re.escape(folder.replace('/', '.'))} import", "from . import", text, flags=re.M)
            # The messages' __module__ must be the one they are imported from, or they cannot be pickled
            # (Ray Serve pickles requests and responses between its proxy and the replicas).
            module = ".".join(target.relative_to(target.parents[1]).parts) + f".{stem}_pb2"
            text = text.replace(f"'{folder.replace('/', '.')}.{stem}_pb2'", f"'{module}'")
            files[name] = text
        return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    args = parser.parse_args()
    stale = []
    for proto_file, target in STUBS.items():
        files = generate(proto_file, target)
        stale += [target / n for n, t in files.items() if not (target / n).exists() or (target / n).read_text() != t]
        if not args.check:
            target.mkdir(parents=True, exist_ok=True)
            (target / "__init__.py").touch()
            for name, text in files.items():
                (target / name).write_text(text)
            print(f"wrote {len(files)} files to {target.relative_to(ROOT)}")
    if args.check and stale:
        print(f"stale generated stubs: {', '.join(str(p.relative_to(ROOT)) for p in stale)}; run `make proto`",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
