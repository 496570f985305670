"""A real third-party client of the Open Inference Protocol: Triton's `tritonclient[grpc]` against offload-server.

tritonclient needs protobuf < 7 and this project runs protobuf 7, so it runs in a venv of its own
(installed from the index, as a user's would be), as a separate process over loopback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from offload_core.engine.geometry import rect_iou
from offload_core.engine.image import encode_jpeg
from offload_server.testing import server_process
from offload_tools.faces import face_frames
from offload_tools.sample import GroundTruth
from tests.e2e.test_wheel_install import run

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).with_name("triton_script.py")
Sample = tuple[list[np.ndarray], GroundTruth]


@pytest.fixture(scope="module")
def triton_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("triton")
    run([sys.executable, "-m", "venv", str(where / "venv")], cwd=where)
    python = where / "venv" / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "tritonclient[grpc]>=2.50"], cwd=where)
    return python


def test_tritonclient_reads_a_frame_streams_and_gets_the_documented_errors(
    triton_python: Path, sample: Sample, tmp_path: Path
) -> None:
    frames, truth = sample
    i = next(i for i, f in enumerate(truth.frames) if f.words)
    (tmp_path / "frame.jpg").write_bytes(encode_jpeg(frames[i]))
    (faces,), _ = face_frames(seed=5, count=1)
    (tmp_path / "faces.jpg").write_bytes(encode_jpeg(faces.image, 95))
    with server_process(["--model", "text-spotter", "--model", "face-detector"]) as (target, _):
        script = [str(triton_python), str(SCRIPT), target, str(tmp_path / "frame.jpg"), str(tmp_path / "faces.jpg")]
        out = run(script, cwd=tmp_path, timeout=300)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["live"] and report["ready"] and report["model_ready"]
    assert report["server"]["name"] == "offload-server"
    assert report["metadata"]["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": ["1"]}]
    expected = {w.text for w in truth.frames[i].words}
    assert expected <= set(report["texts"]), (report["texts"], expected)
    assert report["text_boxes_shape"] == [len(report["texts"]), 4, 2]
    # The second model through the same client: a box on every face pasted in.
    boxes = [(*np.min(b, axis=0), *np.max(b, axis=0)) for b in np.asarray(report["face_boxes"])]
    assert faces.faces and len(boxes) >= len(faces.faces)
    assert all(any(rect_iou(b, t) >= 0.5 for b in boxes) for t in faces.faces), (boxes, faces.faces)
    assert report["unknown_model"].startswith("StatusCode.NOT_FOUND unknown model 'yolo9000'")
    assert report["bad_frame"].startswith("StatusCode.INVALID_ARGUMENT could not decode")
    # Three frames read, one refused: the stream went on past the bad frame.
    read = ",".join(report["texts"])  # the same frame reads the same, in the same order
    errors = [a for a in report["stream"] if a[0] == "error"]
    assert len(errors) == 1 and errors[0][1].startswith("INVALID_ARGUMENT: could not decode"), report["stream"]
    assert sorted(a for a in report["stream"] if a[0] != "error") == [["s0", read], ["s1", read], ["s3", read]]
