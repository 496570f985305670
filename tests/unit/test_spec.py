from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from offload_core.engine import ModelRepository
from offload_core.engine.repository import ModelFileError, default_models_dir
from offload_core.engine.spec import ModelSpec, TaskKind, load_spec

pytestmark = pytest.mark.unit


def test_the_committed_model_specs_parse() -> None:
    specs = {p.parent.name: load_spec(p) for p in default_models_dir().glob("*/model.yaml")}
    assert set(specs) >= {"text-detector", "text-recognizer", "text-orientation", "text-spotter"}
    spotter = specs["text-spotter"]
    assert spotter.task == TaskKind.TEXT_SPOTTER
    assert spotter.variant("device").stages["detector"] == "int8-qdq-pc-480"
    detector = specs["text-detector"]
    assert detector.variant(detector.device_variant).input_size < detector.variant().input_size  # type: ignore[operator]


def base_spec(**changes: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "m",
        "task": "classification",
        "variants": [{"name": "fp32", "file": "m.onnx"}],
        "server_variant": "fp32",
        "device_variant": "fp32",
    }
    spec.update(changes)
    return spec


def test_unknown_device_variant_is_rejected() -> None:
    with pytest.raises(ValidationError, match="device_variant 'int8' is not one of"):
        ModelSpec.model_validate(base_spec(device_variant="int8"))


def test_pipeline_variant_must_cover_every_stage() -> None:
    spec = base_spec(
        task="text-spotter",
        pipeline={"detector": "d", "recognizer": "r"},
        variants=[{"name": "fp32", "stages": {"detector": "fp32"}}],
    )
    with pytest.raises(ValidationError, match="no variant for stages"):
        ModelSpec.model_validate(spec)


def test_unknown_fields_are_errors_not_silently_ignored() -> None:
    with pytest.raises(ValidationError, match="typo_field"):
        ModelSpec.model_validate(base_spec(typo_field=1))


def test_a_weight_file_with_the_wrong_sha256_is_refused(tiny_repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "tiny"
    bad.mkdir()
    (bad / "model.yaml").write_text((tiny_repo / "tiny" / "model.yaml").read_text())
    (bad / "model.onnx").write_bytes((tiny_repo / "tiny" / "model.onnx").read_bytes() + b"tampered")
    with pytest.raises(ModelFileError, match="sha256"):
        ModelRepository(tmp_path).load("tiny")


def test_unknown_model_names_the_ones_that_exist(tiny_repo: Path) -> None:
    with pytest.raises(KeyError, match="tiny"):
        ModelRepository(tiny_repo).spec("nope")


def test_a_variant_s_own_postprocess_settings_go_over_the_model_s() -> None:
    repo = ModelRepository(default_models_dir())
    spotter = repo.spec("text-spotter")
    device = repo.load("text-spotter", spotter.device_variant)
    server = repo.load("text-spotter", spotter.server_variant)
    # The device's int8 recognizer pads short words less (measured in its model.yaml); the rest as the model says.
    assert (device.recognizer.min_width, server.recognizer.min_width) == (192, 320)  # type: ignore[attr-defined]
    assert device.recognizer.batch_size == server.recognizer.batch_size == 6  # type: ignore[attr-defined]


def test_a_newer_servers_fields_are_left_out_of_a_synced_model_yaml(tmp_path: Path) -> None:
    """An SDK in phones must still load a model.yaml from a newer server that carries fields it does not know:
    at the top, in a variant and in a nested section; a model.yaml it fully knows is kept byte for byte."""
    from offload_core.engine.spec import known_fields_only

    text = (ModelRepository().root / "text-recognizer" / "model.yaml").read_text()
    assert known_fields_only(text) == text
    newer = text.replace("name: text-recognizer\n", "name: text-recognizer\nhot_reload: true\n")
    newer = newer.replace("  name: x\n", "  name: x\n  dtype: float16\n")
    newer = newer.replace("{name: fp32, ", "{name: fp32, signature: abc, ")
    path = tmp_path / "model.yaml"
    path.write_text(newer)
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        load_spec(path)  # strict where people write it
    path.write_text(known_fields_only(newer))
    spec = load_spec(path)
    assert spec.variant("fp32").sha256 and spec.input.name == "x" and spec.device_alphabet == "latin"
