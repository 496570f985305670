"""Deadline-aware admission: a request the server can tell will be late is refused at arrival, with a retry
hint and the server's load; one it can serve in time is served; every answer says how busy the server is."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from offload_client import OffloadClient
from offload_client.transport import GrpcTransport, TransportError
from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_core.types import Where
from offload_server import OffloadServer, Settings
from offload_server.testing import serve_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def busy_server(models_dir: Path) -> Iterator[OffloadServer]:
    """The text spotter with batching off: requests queue one behind another, as on a loaded server."""
    settings = Settings(
        grpc_port=0, http_port=0, models_dir=models_dir, models=["text-spotter"], max_queue=64, batching=False
    )
    with serve_in_thread(settings) as server:
        yield server


def request() -> pb.InferRequest:
    frame = np.full((480, 640, 3), 200, np.uint8)
    frame[200:260, 100:540] = 30  # a dark bar: something for the detector
    return pb.InferRequest(model="text-spotter", encoded=pb.EncodedImage(data=encode_jpeg(frame)))


def metric(server: OffloadServer, name: str) -> float:
    text = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(name + "{"))


def test_a_request_that_would_finish_late_is_refused_at_arrival_and_one_in_time_is_served(
    busy_server: OffloadServer,
) -> None:
    stub = pb_grpc.OffloadStub(grpc.insecure_channel(busy_server.grpc_target))
    for _ in range(3):  # warm, and the server learns what a request takes
        answer = stub.Infer(request(), timeout=30)
    service_ms = answer.load.service_ms
    assert service_ms > 0 and answer.load.queue_length == 0, answer.load  # every answer carries the load

    # Twelve at once, each with time for about three requests: the later ones cannot finish in time.
    budget_s = 3 * service_ms / 1000

    def call(_: int) -> tuple[str, dict[str, str], float]:
        try:
            response = stub.Infer(request(), timeout=budget_s + 0.05)
            return "OK", {}, response.load.queue_length
        except grpc.RpcError as exc:
            return exc.code().name, dict(exc.trailing_metadata() or ()), 0

    refused_before = metric(busy_server, "offload_admission_refused_total")
    skipped_before = metric(busy_server, "offload_expired_total")
    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(call, range(12)))
    codes = [code for code, _, _ in outcomes]
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}, codes
    assert codes.count("OK") >= 2 and codes.count("RESOURCE_EXHAUSTED") >= 4, codes
    # Refused at arrival, with when to ask again and how busy the server is.
    hints = [trailers for code, trailers, _ in outcomes if code == "RESOURCE_EXHAUSTED"]
    assert all(float(h["retry-after-ms"]) >= 1 and float(h["offload-predicted-wait-ms"]) > 0 for h in hints), hints
    # What was admitted was mostly served in time: refusing at arrival left few to be skipped in the queue.
    assert codes.count("DEADLINE_EXCEEDED") <= 2, codes
    refused = metric(busy_server, "offload_admission_refused_total") - refused_before
    assert refused == codes.count("RESOURCE_EXHAUSTED")
    assert metric(busy_server, "offload_expired_total") - skipped_before <= 2

    # Alone again, with the same deadline: served (the queue drained, the prediction with it).
    alone = stub.Infer(request(), timeout=budget_s + 1)
    assert alone.load.queue_length == 0 and alone.model == "text-spotter"


def test_a_refusal_reaches_the_client_with_the_servers_load(busy_server: OffloadServer) -> None:
    transport = GrpcTransport(busy_server.grpc_target)
    try:
        warm = transport.submit(request(), 30).result()
        service_ms = warm.response.load.service_ms
        with ThreadPoolExecutor(8) as pool:  # keep the server busy
            blockers = [pool.submit(lambda: transport.submit(request(), 30).result()) for _ in range(6)]
            late = transport.submit(request(), 1.5 * service_ms / 1000)
            with pytest.raises(TransportError) as refused:
                late.result()
            for blocker in blockers:
                blocker.result()
    finally:
        transport.close()
    assert refused.value.code == "RESOURCE_EXHAUSTED", refused.value
    assert refused.value.retry_after_ms is not None and refused.value.retry_after_ms >= 1
    assert refused.value.server_wait_ms is not None and refused.value.server_wait_ms > service_ms


def test_without_deadline_admission_the_same_requests_queue_and_are_skipped(models_dir: Path) -> None:
    """The behaviour the admission replaces, measured the same way: refusals only for a full queue."""
    settings = Settings(
        grpc_port=0, http_port=0, models_dir=models_dir, models=["text-spotter"], batching=False,
        deadline_admission=False,
    )  # fmt: skip
    with serve_in_thread(settings) as server:
        stub = pb_grpc.OffloadStub(grpc.insecure_channel(server.grpc_target))
        for _ in range(3):
            answer = stub.Infer(request(), timeout=30)
        budget_s = 3 * answer.load.service_ms / 1000

        def call(_: int) -> str:
            try:
                stub.Infer(request(), timeout=budget_s + 0.05)
                return "OK"
            except grpc.RpcError as exc:
                return exc.code().name

        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(call, range(12)))
    assert "RESOURCE_EXHAUSTED" not in codes and codes.count("DEADLINE_EXCEEDED") >= 4, codes


def test_a_client_flooding_the_queue_does_not_keep_another_out(models_dir: Path) -> None:
    """Eight places, two per client: a streamer sending sixteen at once gets two; a phone still gets in."""
    settings = Settings(
        grpc_port=0, http_port=0, models_dir=models_dir, models=["text-spotter"], max_queue=8, batching=False,
        max_queue_per_client=2,
    )  # fmt: skip
    with serve_in_thread(settings) as server:
        stub = pb_grpc.OffloadStub(grpc.insecure_channel(server.grpc_target))
        stub.Infer(request(), timeout=30)

        def call(client: str) -> str:
            try:
                stub.Infer(request(), timeout=30, metadata=(("offload-client", client),))
                return "OK"
            except grpc.RpcError as exc:
                assert exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or "per client" in exc.details()
                return exc.code().name

        with ThreadPoolExecutor(17) as pool:
            flood = [pool.submit(call, "streamer") for _ in range(16)]
            phone = pool.submit(call, "phone")
            codes = [f.result() for f in flood]
        assert phone.result() == "OK"
        assert codes.count("RESOURCE_EXHAUSTED") >= 8 and codes.count("OK") >= 2, codes
        assert metric(server, "offload_admission_refused_total") == codes.count("RESOURCE_EXHAUSTED")


def test_admission_judges_by_the_frames_deadline_when_the_call_outlives_it(busy_server: OffloadServer) -> None:
    """A client keeps its call open twice its frame's deadline (to learn from a late answer) and says so in
    `late_margin_ms`: a request that would finish inside the call but after the frame is refused; the same
    request without the margin, or with time for it, is admitted."""
    stub = pb_grpc.OffloadStub(grpc.insecure_channel(busy_server.grpc_target))
    service_ms = stub.Infer(request(), timeout=30).load.service_ms
    call_s = 8 * service_ms / 1000  # room for the queue below, as far as the call's deadline goes

    def late_one(margin_ms: float) -> str:
        with ThreadPoolExecutor(4) as pool:  # three ahead of it
            ahead = [pool.submit(stub.Infer, request(), timeout=30) for _ in range(3)]
            waited = time.monotonic() + 30
            while busy_server.service.admission.admitted["text-spotter"] < 3 and time.monotonic() < waited:
                time.sleep(0.005)
            probe = request()
            probe.late_margin_ms = int(margin_ms)
            try:
                stub.Infer(probe, timeout=call_s)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            for f in ahead:
                f.result()
        return code

    # The frame is due after 1.5 requests' time: with three ahead it cannot be answered by then.
    assert late_one(call_s * 1000 - 1.5 * service_ms) == "RESOURCE_EXHAUSTED"
    assert late_one(0) == "OK"


def test_the_load_signal_moves_an_adaptive_client_to_its_device_before_an_answer_is_late(
    busy_server: OffloadServer, sample: tuple[list[np.ndarray], object]
) -> None:
    """A phone whose device is slower than an idle server sends; when other phones fill the server's queue,
    the answers it gets (or its refusal) say how long the next request would wait, and it moves to its device:
    every frame still answered in time."""
    frames, _ = sample
    deadline_ms = 2500.0
    stop = threading.Event()

    def flood() -> None:  # another phone, sending without a deadline: it only fills the queue
        stub = pb_grpc.OffloadStub(grpc.insecure_channel(busy_server.grpc_target))
        while not stop.is_set():
            stub.Infer(request(), timeout=60)

    with OffloadClient(busy_server.grpc_target, policy="adaptive", deadline_ms=deadline_ms, device_slowdown=12) as oc:
        idle = [oc.infer(frames[i % len(frames)]) for i in range(10)]
        assert idle[-1].where == Where.REMOTE, [r.reason for r in idle]  # the idle server is the faster path
        with ThreadPoolExecutor(6) as pool:
            floods = [pool.submit(flood) for _ in range(6)]
            time.sleep(2.0)  # the queue fills
            busy = [oc.infer(frames[i % len(frames)]) for i in range(8)]
            heard_ms = oc.estimates.server_busy_ms  # what the answers' load said the server's queue adds
            stop.set()
            for f in floods:
                f.result()
    assert all(r.latency_ms <= deadline_ms for r in busy), [(r.where, r.reason, r.latency_ms) for r in busy]
    assert heard_ms > 300.0, heard_ms  # six requests ahead, each ~100-200 ms: the client priced the queue in
    # On its device by the policy's choice (not a fallback after a refusal); a probe of the server may go out.
    decided = [r for r in busy[-4:] if r.where == Where.LOCAL and not r.reason.startswith("fallback")]
    assert len(decided) >= 3, [(r.where, r.reason) for r in busy]
