"""Fakes for client tests that need no server: a classifier "server", slow links and a very slow device model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from offload_client._client_base import ClientBase
from offload_client.transport import Exchange, TransportError
from offload_core.proto import offload_pb2 as pb
from offload_core.types import StageTimes


def classify_remotely(request: pb.InferRequest) -> pb.InferResponse:
    response = pb.InferResponse(frame_id=request.frame_id, model=request.model, variant="remote-fp32")
    response.classes.add(label="remote", score=1.0)
    response.timings.total_ms = 1.0
    return response


def very_slow_device_model(client: ClientBase, seconds: float = 100.0) -> None:
    """The device model takes `seconds` a frame (cut short when the client stops it, as after a lost race);
    the rest of the device (encoding, sending) keeps its speed. `device_slowdown` would slow all of it."""
    run = client.local.run

    def slow(frame: np.ndarray, stop: threading.Event | None = None, variant: str | None = None) -> Any:
        prediction, stages = run(frame, stop, variant)
        (stop or threading.Event()).wait(seconds)
        return prediction, StageTimes(inference_ms=stages.inference_ms + seconds * 1000.0)

    client.local.run = slow  # type: ignore[method-assign]


def red_frame() -> np.ndarray:
    frame = np.zeros((16, 16, 3), np.uint8)
    frame[:, :] = (0, 0, 255)
    return frame


class ScriptedTransport:
    """Call n waits `script[n]` seconds, then answers (a positive time) or times out (negative): a link going dark.

    Calls past the script answer after `then_s`. `settle()` waits, instead of a sleep, until every
    call so far has ended and the client has taken it in.
    """

    def __init__(self, script: list[float], then_s: float = 0.05) -> None:
        self.script = list(script)
        self.then_s = then_s
        self._issued = 0
        self._ended = 0
        self._changed = threading.Condition()

    def submit(self, request: pb.InferRequest, timeout_s: float, patient: bool = False) -> Future[Exchange]:
        out: Future[Exchange] = Future()
        delay = self.script.pop(0) if self.script else self.then_s
        with self._changed:
            self._issued += 1
        if delay < 0:
            silence = TransportError("DEADLINE_EXCEEDED", "Deadline Exceeded")
            threading.Timer(-delay, self._end, [out.set_exception, silence]).start()
        else:
            answer = Exchange(classify_remotely(request), request.ByteSize(), 0)
            threading.Timer(delay, self._end, [out.set_result, answer]).start()
        return out

    def _end(self, finish: Callable[[Any], None], outcome: object) -> None:
        finish(outcome)  # runs the client's done-callbacks on this thread, before the call counts as ended
        with self._changed:
            self._ended += 1
            self._changed.notify_all()

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until every call submitted so far has answered or failed, and its callbacks have run."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._ended == self._issued, timeout_s), "a call never ended"

    def close(self) -> None:
        pass


class SlowTransport(ScriptedTransport):
    """Answers `classify_remotely` after `delay_s`, from another thread, as a slow link would."""

    def __init__(self, delay_s: float) -> None:
        super().__init__([], then_s=delay_s)


class SlowAsyncTransport:
    """The asyncio twin of `SlowTransport`."""

    def __init__(self, delay_s: float = 0.15) -> None:
        self.delay_s = delay_s

    async def infer(self, request: pb.InferRequest, timeout_s: float, patient: bool = False) -> Exchange:
        await asyncio.sleep(self.delay_s)
        return Exchange(classify_remotely(request), request.ByteSize(), 0)

    async def close(self) -> None:
        pass
