"""The real server in-process with the real PP-OCR models: round trips, health, reflection."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_core.wire import prediction_from_pb
from offload_server import OffloadServer
from offload_tools.evaluation import score_frame, total
from offload_tools.sample import GroundTruth

pytestmark = pytest.mark.integration
Sample = tuple[list[np.ndarray], GroundTruth]


@pytest.fixture(scope="module")
def stub(server: OffloadServer) -> pb_grpc.OffloadStub:
    return pb_grpc.OffloadStub(grpc.insecure_channel(server.grpc_target))


def request(frame: np.ndarray, frame_id: int = 0, model: str = "text-spotter") -> pb.InferRequest:
    return pb.InferRequest(
        model=model, frame_id=frame_id, encoded=pb.EncodedImage(data=encode_jpeg(frame), format="jpeg")
    )


def test_unary_infer_reads_the_rendered_words(stub: pb_grpc.OffloadStub, sample: Sample) -> None:
    frames, truth = sample
    scores = []
    for i in range(0, len(frames), 2):
        response = stub.Infer(request(frames[i], i), timeout=30)
        assert response.frame_id == i and response.model == "text-spotter"
        assert response.variant == "server" and response.model_version == "ppocrv4"
        assert response.timings.inference_ms > 0 and response.timings.total_ms >= response.timings.inference_ms
        prediction = prediction_from_pb(response)
        scores.append(score_frame(truth.frames[i].words, prediction.boxes, prediction.texts))
    score = total(scores)
    assert score.words_total >= 8
    assert score.word_accuracy >= 0.8, score
    assert score.f1 >= 0.8, score


def test_stream_answers_every_frame_once(stub: pb_grpc.OffloadStub, sample: Sample) -> None:
    frames, truth = sample
    ids = [5, 6, 7, 8]
    # Answers come as frames finish; each carries its frame_id, and its own frame's words prove the match.
    answers = stub.InferStream(iter([request(frames[i], i) for i in ids]), timeout=60)
    responses = sorted(answers, key=lambda r: r.frame_id)
    assert [r.frame_id for r in responses] == ids
    for r, i in zip(responses, ids, strict=True):
        words = {t.text for t in r.texts}
        expected = {w.text for w in truth.frames[i].words}
        assert len(words & expected) >= len(expected) - 1


def test_raw_pixels_are_accepted(stub: pb_grpc.OffloadStub, sample: Sample) -> None:
    frames, truth = sample
    frame = frames[4]
    raw = pb.RawImage(data=frame.tobytes(), shape=list(frame.shape), dtype="uint8")
    response = stub.Infer(pb.InferRequest(model="text-spotter", frame_id=4, raw=raw), timeout=30)
    assert truth.frames[4].words
    assert {t.text for t in response.texts} == {w.text for w in truth.frames[4].words}


def test_classification_model_is_served_too(stub: pb_grpc.OffloadStub) -> None:
    line = np.full((48, 192, 3), 255, np.uint8)
    response = stub.Infer(request(line, model="text-orientation"), timeout=30)
    assert {c.label for c in response.classes} == {"0", "180"}
    assert sum(c.score for c in response.classes) == pytest.approx(1.0, abs=1e-3)


def test_list_models_reports_variants_and_checksums(stub: pb_grpc.OffloadStub) -> None:
    models = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
    assert set(models) == {"text-spotter", "text-orientation"}
    orientation = models["text-orientation"]
    assert orientation.task == "classification"
    [variant] = orientation.variants
    assert len(variant.sha256) == 64 and variant.size_bytes > 100_000


def test_health_is_serving(server: OffloadServer) -> None:
    channel = grpc.insecure_channel(server.grpc_target)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "offload.v1.Offload"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(server: OffloadServer) -> None:
    channel = grpc.insecure_channel(server.grpc_target)
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in next(iter(replies)).list_services_response.service}
    assert {"offload.v1.Offload", "grpc.health.v1.Health"} <= names
