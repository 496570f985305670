"""The Open Inference Protocol (KServe v2) on the same port: metadata, frames, a stream, and the documented errors."""

from __future__ import annotations

import struct
from pathlib import Path

import grpc
import numpy as np
import pytest

from offload_core.engine.image import encode_jpeg
from offload_server import OffloadServer, Settings
from offload_server._proto import grpc_service_pb2 as oip
from offload_server._proto import grpc_service_pb2_grpc as oip_grpc
from offload_server.testing import serve_in_thread
from offload_tools.sample import GroundTruth

pytestmark = pytest.mark.integration
Sample = tuple[list[np.ndarray], GroundTruth]


@pytest.fixture(scope="module")
def stub(server: OffloadServer) -> oip_grpc.GRPCInferenceServiceStub:
    return oip_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))


def request(data: bytes, model: str = "text-spotter", raw: bool = True, **fields: object) -> oip.ModelInferRequest:
    out = oip.ModelInferRequest(model_name=model, **fields)  # type: ignore[arg-type]
    tensor = out.inputs.add(name="image", datatype="BYTES", shape=[1])
    if raw:
        out.raw_input_contents.append(struct.pack("<I", len(data)) + data)
    else:
        tensor.contents.bytes_contents.append(data)
    return out


def texts(response: oip.ModelInferResponse) -> set[str]:
    (index,) = [i for i, o in enumerate(response.outputs) if o.name == "texts"]
    raw, out, at = response.raw_output_contents[index], set(), 0
    while at < len(raw):
        (size,) = struct.unpack_from("<I", raw, at)
        out.add(raw[at + 4 : at + 4 + size].decode())
        at += 4 + size
    return out


def test_health_and_metadata(stub: oip_grpc.GRPCInferenceServiceStub, server: OffloadServer) -> None:
    assert stub.ServerLive(oip.ServerLiveRequest()).live
    assert stub.ServerReady(oip.ServerReadyRequest()).ready
    assert stub.ModelReady(oip.ModelReadyRequest(name="text-spotter")).ready
    assert not stub.ModelReady(oip.ModelReadyRequest(name="yolo9000")).ready
    meta = stub.ServerMetadata(oip.ServerMetadataRequest())
    assert meta.name == "offload-server" and "model_streaming" in meta.extensions
    model = stub.ModelMetadata(oip.ModelMetadataRequest(name="text-spotter"))
    assert model.versions == [server.service.repository.spec("text-spotter").version]
    assert [(i.name, i.datatype, list(i.shape)) for i in model.inputs] == [("image", "BYTES", [1])]
    assert {o.name for o in model.outputs} >= {"boxes", "texts", "text_scores", "labels"}


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "bytes_contents"])
def test_a_frame_is_read_as_on_offload_v1(stub: oip_grpc.GRPCInferenceServiceStub, sample: Sample, raw: bool) -> None:
    frames, truth = sample
    i = next(i for i, f in enumerate(truth.frames) if f.words)
    response = stub.ModelInfer(request(encode_jpeg(frames[i]), raw=raw, id="frame-7"), timeout=60)
    assert response.id == "frame-7" and response.model_name == "text-spotter"
    expected = {w.text for w in truth.frames[i].words}
    assert expected <= texts(response), (texts(response), expected)
    shapes = {o.name: list(o.shape) for o in response.outputs}
    assert shapes["text_boxes"] == [len(texts(response)), 4, 2] and shapes["labels"] == [0]
    boxes = np.frombuffer(response.raw_output_contents[[o.name for o in response.outputs].index("text_boxes")],
                          np.float32).reshape(-1, 4, 2)  # fmt: skip
    height, width = frames[i].shape[:2]
    assert (boxes[..., 0] >= -1).all() and (boxes[..., 0] <= width + 1).all() and (boxes[..., 1] <= height + 1).all()


def test_only_the_outputs_asked_for_come_back(stub: oip_grpc.GRPCInferenceServiceStub, sample: Sample) -> None:
    frames, _ = sample
    asked = request(encode_jpeg(frames[0]))
    asked.outputs.add(name="texts")
    response = stub.ModelInfer(asked, timeout=60)
    assert [o.name for o in response.outputs] == ["texts"] and len(response.raw_output_contents) == 1


BAD = [
    ("unknown model", request(b"x", model="yolo9000"), grpc.StatusCode.NOT_FOUND, "unknown model 'yolo9000'"),
    ("unknown version", request(b"x", model_version="v99"), grpc.StatusCode.NOT_FOUND, "not 'v99'"),
    ("undecodable frame", request(b"\x00\x01 not a jpeg"), grpc.StatusCode.INVALID_ARGUMENT, "could not decode"),
    ("cut-off length", oip.ModelInferRequest(model_name="text-spotter", inputs=[oip.ModelInferRequest.InferInputTensor(
        name="image", datatype="BYTES", shape=[1])], raw_input_contents=[b"\x10\x00"]),
     grpc.StatusCode.INVALID_ARGUMENT, "cut off"),
    ("no input", oip.ModelInferRequest(model_name="text-spotter"), grpc.StatusCode.INVALID_ARGUMENT,
     "one input named 'image'"),
    ("a tensor, not a frame", oip.ModelInferRequest(model_name="text-spotter", inputs=[
        oip.ModelInferRequest.InferInputTensor(name="image", datatype="FP32", shape=[1, 3, 8, 8])]),
     grpc.StatusCode.INVALID_ARGUMENT, "BYTES with shape [1]"),
    ("unknown output", request(b"x", outputs=[oip.ModelInferRequest.InferRequestedOutputTensor(name="logits")]),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown output(s) ['logits']"),
    ("unknown parameter", request(b"x", parameters={"thresh": oip.InferParameter(double_param=0.2)}),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown parameter(s) ['thresh']"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "code", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests_get_the_documented_status(
    stub: oip_grpc.GRPCInferenceServiceStub, sample: Sample, bad: oip.ModelInferRequest, code: grpc.StatusCode,
    words: str,
) -> None:  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(bad, timeout=60)
    assert caught.value.code() == code and words in (caught.value.details() or ""), caught.value.details()
    assert stub.ModelInfer(request(encode_jpeg(sample[0][0])), timeout=60).outputs  # and it keeps serving


def test_bytes_that_are_no_message_are_invalid_argument(server: OffloadServer) -> None:
    call = grpc.insecure_channel(server.grpc_target).unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\xff\xff\xff\xff garbage", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inference.ModelInferRequest" in (caught.value.details() or "")


def test_a_stream_answers_every_frame_and_a_bad_one_does_not_end_it(
    stub: oip_grpc.GRPCInferenceServiceStub, sample: Sample
) -> None:
    frames, _ = sample
    sent = [request(encode_jpeg(frames[i]), id=f"f{i}") for i in range(5)]
    sent.insert(2, request(b"not a frame", id="bad"))
    answers = {r.infer_response.id: r for r in stub.ModelStreamInfer(iter(sent), timeout=120)}
    assert set(answers) == {"f0", "f1", "bad", "f2", "f3", "f4"}
    assert answers["bad"].error_message.startswith("INVALID_ARGUMENT: ")
    assert all(not answers[f"f{i}"].error_message and answers[f"f{i}"].infer_response.outputs for i in range(5))


def test_the_face_detector_is_served_unchanged_and_finds_the_faces(models_dir: Path) -> None:
    """The second model on the same protocol, as any other: its boxes are where the faces were pasted."""
    from offload_core.engine.geometry import rect_iou
    from offload_core.engine.tasks.face_detection import MATCH_IOU
    from offload_tools.faces import face_frames

    settings = Settings(grpc_port=0, http_port=0, models_dir=models_dir, models=["face-detector"], spin_wait=False)
    frames, _ = face_frames(seed=5, count=6)  # a seed no tuning used
    with serve_in_thread(settings) as running:
        face_stub = oip_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(running.grpc_target))
        assert face_stub.ModelReady(oip.ModelReadyRequest(name="face-detector")).ready
        found = wanted = 0
        for f in frames:
            response = face_stub.ModelInfer(request(encode_jpeg(f.image, 95), model="face-detector"), timeout=60)
            names = [o.name for o in response.outputs]
            boxes = np.frombuffer(response.raw_output_contents[names.index("boxes")], np.float32).reshape(-1, 4, 2)
            rects = [(*b.min(axis=0), *b.max(axis=0)) for b in boxes]
            wanted += len(f.faces)
            found += sum(any(rect_iou(r, t) >= MATCH_IOU for r in rects) for t in f.faces)
    assert found >= 0.8 * wanted, (found, wanted)
