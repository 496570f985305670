"""The fleet's phones: real `OffloadClient`s, each on its own emulated cellular link to one server.

Phone k rides trace k mod 3 (three traces in turn), STAGGER_S further into it than phone k - 3, and asks
for frames at its own rate from a random phase, in its own order of the seeded frames. Its device answers
are replayed (`bench/replay_device.py`); everything else is real. `DeafTransport` makes a phone that
ignores the server's load signal, as a client older than the signal does.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.policy import LinkLoop
from offload_client import OffloadClient, Where
from offload_client.policy import Policy
from offload_client.transport import Exchange, GrpcTransport, TransportError
from offload_core.proto import offload_pb2 as pb
from offload_tools.evaluation import score_frame
from offload_tools.linkem import LinkConfig, config_from_args
from offload_tools.sample import GroundTruth

# Phone k's link starts this many seconds further into its trace than phone k - 3 (three traces in turn).
STAGGER_S = 9.0
DEAF = "-deaf"  # a contender's suffix: the phone ignores the server's load signal


class DeafTransport(GrpcTransport):
    """A transport that drops the server's load signal, as a client older than the signal never reads it."""

    def submit(self, request: pb.InferRequest, timeout_s: float, patient: bool = False) -> Any:
        heard = super().submit(request, timeout_s, patient)
        out: Any = type(heard)()

        def done(f: Any) -> None:
            try:
                exchange: Exchange = f.result()
            except TransportError as exc:
                out.set_exception(TransportError(exc.code, str(exc), exc.retry_after_ms, None))
                return
            response = pb.InferResponse()
            response.CopyFrom(exchange.response)
            response.ClearField("load")
            out.set_result(Exchange(response, exchange.request_bytes, exchange.response_bytes))

        heard.add_done_callback(done)
        return out


@dataclass
class Answer:
    """One frame of one phone."""

    phone: int
    latency_ms: float
    where: Where
    words_correct: int
    words_total: int
    uplink_bytes: int
    sent_at: float = 0.0  # when the phone asked (time.monotonic)
    refused: bool = False  # the server refused it at arrival (it was reached, and answered at once)
    reason: str = ""  # the client's reason for where the frame went (why a fallback fell back)


def policy_of(contender: str) -> str | Policy:
    return contender.removesuffix(DEAF)


def phone(
    k: int, client: OffloadClient, frames: list[np.ndarray], truth: GroundTruth, order: list[int], start: float,
    interval_s: float, out: list[Answer], drop_behind: bool = False,
) -> None:  # fmt: skip
    """Phone k: a frame every `interval_s` from `start`; when behind, at once (every frame is asked for, as
    by an app that waited) or, with `drop_behind`, the frames whose time has passed are skipped (a camera
    at 30 fps does not wait for its app)."""
    for i, index in enumerate(order):
        wait = start + i * interval_s - time.monotonic()
        if drop_behind and wait < -interval_s:
            continue
        if wait > 0:
            time.sleep(wait)
        sent_at = time.monotonic()
        result = client.infer(frames[index])
        score = score_frame(truth.frames[index].words, result.boxes, result.texts)
        refused = result.error is not None and "RESOURCE_EXHAUSTED" in str(result.error)
        out.append(Answer(k, result.latency_ms, result.where, score.words_correct, score.words_total,
                          result.uplink_bytes, sent_at, refused, result.reason))  # fmt: skip


@contextlib.contextmanager
def phones(
    contenders: list[str], target: str, links: LinkLoop, pairs: list[tuple[Path, Path]], args: argparse.Namespace
) -> Iterator[list[OffloadClient]]:
    """One phone per contender named, each with its own link to `target`: phone k on trace k mod 3,
    STAGGER_S further into it than phone k - 3."""
    host, port = target.rsplit(":", 1)
    with contextlib.ExitStack() as stack:
        clients = []
        for k, contender in enumerate(contenders):
            up, down = pairs[k % len(pairs)]
            offset = args.trace_offset + (k // len(pairs)) * STAGGER_S
            config = config_from_args(str(up), str(down), args.delay_ms, LinkConfig.queue_packets, [], "stall", offset)
            link = stack.enter_context(links.link(config, (host, int(port))))
            address = f"127.0.0.1:{link.port}"
            transport = DeafTransport(address) if contender.endswith(DEAF) else None
            client = OffloadClient(
                address, model=args.model, policy=policy_of(contender), deadline_ms=args.deadline_ms,
                models_dir=args.models_dir, device_slowdown=args.device_slowdown, transport=transport,
            )  # fmt: skip
            clients.append(stack.enter_context(client))
        yield clients


def drive(
    clients: list[OffloadClient], rates: list[float], seconds: float, frames: list[np.ndarray], truth: GroundTruth,
    seed: int, drop_behind: bool = False,
) -> tuple[list[Answer], float]:  # fmt: skip
    """Phone k asks `rates[k]` frames a second for `seconds`, from a random phase; every answer, and the
    seconds from the first frame to the last answer. `drop_behind`: see `phone`."""
    rng = random.Random(seed)
    out: list[Answer] = []
    start = time.monotonic() + 0.5
    threads = []
    for k, (client, rate) in enumerate(zip(clients, rates, strict=True)):
        order = [(7 * k + i) % len(frames) for i in range(max(1, int(seconds * rate)))]
        args_k = (k, client, frames, truth, order, start + rng.uniform(0, 1 / rate), 1 / rate, out, drop_behind)
        threads.append(threading.Thread(target=phone, args=args_k, name=f"phone-{k}", daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, time.monotonic() - start
