"""Admission control: a full queue answers RESOURCE_EXHAUSTED at once, the client falls back, the server recovers."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from offload_client import OffloadClient, Where
from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_server import OffloadServer, Settings
from offload_server.testing import serve_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_queue_server(models_dir: Path) -> Iterator[OffloadServer]:
    settings = Settings(grpc_port=0, http_port=0, models_dir=models_dir, models=["text-spotter"], max_queue=2)
    with serve_in_thread(settings) as server:
        yield server


def test_a_full_queue_is_refused_quickly_and_the_server_keeps_serving(small_queue_server: OffloadServer) -> None:
    stub = pb_grpc.OffloadStub(grpc.insecure_channel(small_queue_server.grpc_target))
    frame = encode_jpeg(np.full((720, 1280, 3), 180, np.uint8))
    request = pb.InferRequest(model="text-spotter", encoded=pb.EncodedImage(data=frame))
    stub.Infer(request, timeout=30)  # connected and warm

    def call(_: int) -> tuple[str, float]:
        start = time.perf_counter()
        try:
            stub.Infer(request, timeout=60)
            return "OK", time.perf_counter() - start
        except grpc.RpcError as exc:
            assert "limit 2" in exc.details()
            return exc.code().name, time.perf_counter() - start

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(call, range(12)))
    codes = [c for c, _ in outcomes]
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}
    assert codes.count("OK") >= 2 and codes.count("RESOURCE_EXHAUSTED") >= 1
    # Refused without waiting for a place. Twelve client threads share the GIL with the in-process
    # server, so one refusal can stall as long as a frame's inference on a busy machine (a clean
    # clone's CI run saw it): the typical refusal is judged, not each one against the fastest answer.
    ok = [took for c, took in outcomes if c == "OK"]
    refused = [took for c, took in outcomes if c == "RESOURCE_EXHAUSTED"]
    assert statistics.median(refused) < min(ok) / 2, (refused, ok)
    assert stub.Infer(request, timeout=30).model == "text-spotter"


def test_the_client_falls_back_to_local_when_refused(small_queue_server: OffloadServer) -> None:
    # Other clients keep the queue of 2 full with real work: eight callers of heavy frames, back to back.
    stub = pb_grpc.OffloadStub(grpc.insecure_channel(small_queue_server.grpc_target))
    heavy = pb.InferRequest(
        model="text-spotter", encoded=pb.EncodedImage(data=encode_jpeg(np.full((720, 1280, 3), 180, np.uint8)))
    )
    stop = threading.Event()
    refused_others = threading.Semaphore(0)

    def other_client() -> None:
        while not stop.is_set():
            try:
                stub.Infer(heavy, timeout=60)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                refused_others.release()

    with ThreadPoolExecutor(8) as pool:
        others = [pool.submit(other_client) for _ in range(8)]
        try:
            assert refused_others.acquire(timeout=60)  # the queue is full: someone was just turned away
            with OffloadClient(small_queue_server.grpc_target, policy="always-remote") as client:
                results = [client.infer(np.full((360, 640, 3), 200, np.uint8)) for _ in range(4)]
        finally:
            stop.set()
        for other in others:
            other.result()
    assert len(results) == 4  # every frame answered
    refused = [r for r in results if "RESOURCE_EXHAUSTED" in r.reason]
    assert refused and all(r.where == Where.LOCAL for r in refused), [r.reason for r in results]
