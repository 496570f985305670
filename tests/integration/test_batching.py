"""Dynamic batching on a real server: batches form under load, rows go back to their callers, stale work is skipped."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from offload_core.engine.image import encode_jpeg
from offload_core.engine.session import SessionConfig, create_session
from offload_core.engine.tasks.base import OnnxModel
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_server import OffloadServer, Settings
from offload_server.batcher import DynamicBatcher
from offload_server.metrics import Metrics
from offload_server.testing import serve_in_thread
from offload_tools.sample import GroundTruth

pytestmark = pytest.mark.integration

Sample = tuple[list, GroundTruth]


@pytest.fixture(scope="module")
def batching_server(models_dir: Path) -> Iterator[OffloadServer]:
    # The queue's own deadline check is what these tests watch: admission at arrival would refuse the
    # expiring burst before it queued (tests/integration/test_deadline_admission.py).
    settings = Settings(
        grpc_port=0, http_port=0, models_dir=models_dir, models=["text-spotter"], max_queue=64,
        deadline_admission=False,
    )  # fmt: skip
    with serve_in_thread(settings) as server:
        yield server


def _counter(server: OffloadServer, metric: str) -> float:
    value = server.metrics.registry.get_sample_value(f"{metric}_total", {"model": "text-spotter"})
    return value or 0.0


def test_batches_form_under_load_and_answers_reach_their_callers(
    batching_server: OffloadServer, sample: Sample
) -> None:
    frames, truth = sample
    stub = pb_grpc.OffloadStub(grpc.insecure_channel(batching_server.grpc_target))
    ids = [i for i in range(len(frames)) if truth.frames[i].words][:16]
    assert len(ids) >= 8
    payloads = {i: encode_jpeg(frames[i]) for i in ids}
    executions_before = _counter(batching_server, "offload_execution")

    def call(i: int) -> pb.InferResponse:
        request = pb.InferRequest(model="text-spotter", frame_id=i, encoded=pb.EncodedImage(data=payloads[i]))
        return stub.Infer(request, timeout=120)

    with ThreadPoolExecutor(len(ids)) as pool:
        responses = list(pool.map(call, ids))

    assert max(r.timings.batch_size for r in responses) > 1, "16 concurrent frames never shared a model call"
    assert _counter(batching_server, "offload_execution") - executions_before < len(ids)
    for i, response in zip(ids, responses, strict=True):
        assert response.frame_id == i
        # Each frame's own words prove its row of the batch came back to it, not a neighbour's.
        read = {t.text for t in response.texts}
        expected = {w.text for w in truth.frames[i].words}
        assert len(read & expected) >= len(expected) - 1, (i, read, expected)
    histogram = batching_server.metrics.registry.get_sample_value("offload_batch_size_count", {"model": "text-spotter"})
    assert histogram is not None and histogram >= 1

    # Busy batches ran on the twin session whose threads do not spin; a lone request runs on the spinning one.
    (batcher,) = batching_server.service.batchers.values()
    assert batcher.busy_model is not None and batcher.busy_calls >= 1
    busy_calls = batcher.busy_calls
    lone = call(ids[0])
    assert batcher.busy_calls == busy_calls
    # With nobody to batch with, it ran start to finish in one thread: it never waited in the queue.
    assert lone.timings.batch_size == 1 and lone.timings.queue_ms == 0


def test_requests_that_expire_in_the_queue_are_not_computed(batching_server: OffloadServer, sample: Sample) -> None:
    frames, _ = sample
    stub = pb_grpc.OffloadStub(grpc.insecure_channel(batching_server.grpc_target))
    payload = encode_jpeg(frames[3])
    inferences_before = _counter(batching_server, "offload_inference")
    expired_before = _counter(batching_server, "offload_expired")

    # The first frame occupies the model; the burst behind it carries a 1 ms budget it cannot meet.
    def call(i: int) -> str:
        request = pb.InferRequest(
            model="text-spotter", frame_id=i, deadline_ms=0 if i == 0 else 1, encoded=pb.EncodedImage(data=payload)
        )
        try:
            stub.Infer(request, timeout=60)
            return "OK"
        except grpc.RpcError as exc:
            assert "not computed" in (exc.details() or "")
            return exc.code().name

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(8)))

    assert set(codes) <= {"OK", "DEADLINE_EXCEEDED"}
    refused = codes.count("DEADLINE_EXCEEDED")
    assert refused >= 1
    assert _counter(batching_server, "offload_expired") - expired_before == refused
    assert _counter(batching_server, "offload_inference") - inferences_before == codes.count("OK")
    assert stub.Infer(pb.InferRequest(model="text-spotter", encoded=pb.EncodedImage(data=payload)), timeout=60)


class _ShapeLog(OnnxModel):
    """A real session that also notes the batch size of every call."""

    def __init__(self, path: Path) -> None:
        super().__init__(create_session(path, SessionConfig(providers=["CPUExecutionProvider"])), source=path)
        self.batch_sizes: list[int] = []

    def __call__(self, tensor: np.ndarray) -> tuple[np.ndarray, float]:
        self.batch_sizes.append(tensor.shape[0])
        return super().__call__(tensor)


def test_warmup_runs_every_batch_size_on_both_sessions(tiny_repo: Path) -> None:
    model, twin = _ShapeLog(tiny_repo / "tiny" / "model.onnx"), _ShapeLog(tiny_repo / "tiny" / "model.onnx")
    batcher = DynamicBatcher("tiny", model, Metrics(), max_batch_size=4, max_queue_delay_s=0.001,
                             arriving=lambda: 0, busy_model=twin)  # fmt: skip
    batcher.warmup(np.zeros((1, 3, 8, 8), dtype=np.float32))
    # Each batch size is an input shape of its own: none may meet the first real load cold.
    assert model.batch_sizes == [4, 3, 2, 1]
    assert twin.batch_sizes == [4, 3, 2, 1]
