"""Every bad request gets the documented status and a message a person can act on; the server keeps serving."""

from __future__ import annotations

import cv2
import grpc
import numpy as np
import pytest

from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_server import OffloadServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stub(server: OffloadServer) -> pb_grpc.OffloadStub:
    return pb_grpc.OffloadStub(grpc.insecure_channel(server.grpc_target))


def encoded(data: bytes, model: str = "text-spotter") -> pb.InferRequest:
    return pb.InferRequest(model=model, encoded=pb.EncodedImage(data=data))


def fifty_megapixel_png() -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((5000, 10000), np.uint8))
    assert ok
    return buf.tobytes()


BAD_REQUESTS = [
    ("undecodable", encoded(b"\x00\x01 definitely not a jpeg"), grpc.StatusCode.INVALID_ARGUMENT, "could not decode"),
    ("empty", encoded(b""), grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    ("no image", pb.InferRequest(model="text-spotter"), grpc.StatusCode.INVALID_ARGUMENT, "no image"),
    ("50 megapixels", encoded(fifty_megapixel_png()), grpc.StatusCode.INVALID_ARGUMENT, "megapixels"),
    ("unknown model", encoded(encode_jpeg(np.zeros((8, 8, 3), np.uint8)), model="yolo9000"), grpc.StatusCode.NOT_FOUND,
     "unknown model 'yolo9000'"),
    ("raw size mismatch", pb.InferRequest(model="text-spotter", raw=pb.RawImage(data=bytes(100), shape=[10, 10, 3],
     dtype="uint8")), grpc.StatusCode.INVALID_ARGUMENT, "needs 300"),
    ("unknown variant", pb.InferRequest(model="text-spotter", variant="int4", encoded=pb.EncodedImage(
     data=encode_jpeg(np.zeros((8, 8, 3), np.uint8)))), grpc.StatusCode.NOT_FOUND, "no variant 'int4'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "req", "code", "message"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_gets_a_clear_status_and_the_server_keeps_serving(
    stub: pb_grpc.OffloadStub, name: str, req: pb.InferRequest, code: grpc.StatusCode, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Infer(req, timeout=30)
    assert info.value.code() == code
    assert message in info.value.details()
    good = stub.Infer(encoded(encode_jpeg(np.full((64, 64, 3), 255, np.uint8))), timeout=30)
    assert good.model == "text-spotter"


def test_a_bad_frame_inside_a_stream_does_not_end_it(stub: pb_grpc.OffloadStub) -> None:
    good = encode_jpeg(np.full((64, 64, 3), 255, np.uint8))
    reqs = [
        pb.InferRequest(model="text-spotter", frame_id=1, encoded=pb.EncodedImage(data=good)),
        pb.InferRequest(model="text-spotter", frame_id=2, encoded=pb.EncodedImage(data=b"junk")),
        pb.InferRequest(model="text-spotter", frame_id=3, encoded=pb.EncodedImage(data=good)),
    ]
    responses = sorted(stub.InferStream(iter(reqs), timeout=60), key=lambda r: r.frame_id)
    assert [r.frame_id for r in responses] == [1, 2, 3]
    assert not responses[0].HasField("error") and not responses[2].HasField("error")
    assert responses[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "could not decode" in responses[1].error.message


def test_failures_are_counted_by_status(server: OffloadServer, stub: pb_grpc.OffloadStub) -> None:
    before = server.metrics.requests.labels(model="text-spotter", status="INVALID_ARGUMENT")._value.get()
    with pytest.raises(grpc.RpcError):
        stub.Infer(encoded(b"junk"), timeout=10)
    after = server.metrics.requests.labels(model="text-spotter", status="INVALID_ARGUMENT")._value.get()
    assert after == before + 1
