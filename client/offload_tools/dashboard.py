"""A live dashboard for `offload run --dashboard`: the trade-off, frame by frame, in a browser.

A FastAPI app on localhost (uvicorn in a background thread) pushes one event per frame over
Server-Sent Events: where the frame ran and why, its latency against the deadline, uplink bytes,
the link's estimated RTT and uplink rate, accuracy so far per path, and the privacy mode. The
current frame, with its boxes and words drawn, is at /frame.jpg. A switch on the page changes the
privacy mode of the running client through its public `privacy` setter. The page is one file with
no build step and no CDN: charts are drawn on canvases (dashboard.html).

It needs the `dashboard` extra (FastAPI, uvicorn): `pip install 'offload-client[dashboard]'`.

Example:
    >>> with Dashboard(client, port=8765) as board:        # doctest: +SKIP
    ...     board.publish(frame, client.infer(frame))     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from importlib.resources import files
from typing import Any

import cv2
import numpy as np

from offload_client._client_base import ClientBase
from offload_client.policy.estimators import LinkEstimate
from offload_core.types import FrameResult, Source, Where
from offload_tools.evaluation import Score
from offload_tools.linkem import Trace


def page() -> str:
    """The dashboard's HTML (also the body of `offload report`)."""
    return files("offload_tools").joinpath("dashboard.html").read_text()


def record_of(
    result: FrameResult,
    totals: dict[str, Score],
    link: LinkEstimate | None = None,
    trace_mbit_s: float | None = None,
    at_s: float | None = None,
) -> dict[str, Any]:
    """One frame as the page draws it; `link`: the client's link estimates then (not in telemetry);
    `trace_mbit_s`: what the emulated link's uplink trace delivered at that moment, when known; `at_s`:
    seconds since the run began (the battery's drain per minute is reckoned on it)."""
    rtt = link.rtt_ms if link is not None else None
    uplink = link.uplink_mbit_s if link is not None else None
    return {
        "trace_mbit_s": None if trace_mbit_s is None else round(trace_mbit_s, 2),
        "frame_id": result.frame_id,
        "where": result.where.value,
        "reason": result.reason,
        "latency_ms": round(result.latency_ms, 1),
        "deadline_ms": result.deadline_ms,
        "uplink_bytes": result.uplink_bytes,
        "energy_mj": round(result.energy_mj, 1),
        "radio_mj": round(result.radio_mj, 1),
        "at_s": None if at_s is None else round(at_s, 3),
        "words": result.words,
        "source": None if result.source is None else result.source.value,
        "age_ms": None if result.age_ms is None else round(result.age_ms),
        "privacy": result.privacy,
        "rtt_ms": None if rtt is None else round(rtt, 1),
        "uplink_mbit_s": None if uplink is None else round(uplink, 2),
        "accuracy": {where: round(s.word_accuracy, 3) for where, s in totals.items() if s.words_total},
    }


def annotated(frame: np.ndarray, result: FrameResult) -> bytes:
    """The frame as JPEG with its boxes (blue: device, orange: server) and words drawn. In continuous
    mode a box carried by the tracker is drawn thin and green, a fresh one as above."""
    image = frame.copy()
    color = (255, 128, 0) if result.where == Where.LOCAL else (0, 140, 255)
    tracked = result.source == Source.TRACKED
    if tracked:
        color = (60, 200, 60)
    for item in result.texts:
        points = np.array(item.box.points, dtype=np.int32)
        cv2.polylines(image, [points], True, color, 1 if tracked else 2)
        x, y = points.min(axis=0)
        cv2.putText(image, item.text, (int(x), max(12, int(y) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return bytes(data.tobytes()) if ok else b""


class Dashboard:
    """Serves the page and the event stream for one running client."""

    def __init__(
        self, client: ClientBase[Any], port: int = 8765, host: str = "127.0.0.1", uplink_trace: Trace | None = None
    ) -> None:
        import uvicorn  # the dashboard extra: imported only when a dashboard is asked for

        self.client = client
        # The trace the link emulator replays on the uplink (its clock starts with the run), to draw
        # what the link delivered against what the client estimated.
        self.uplink_trace = uplink_trace
        self.started = time.monotonic()
        self.records: list[dict[str, Any]] = []
        self.frame_jpeg = b""
        self.totals: dict[str, Score] = {}
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        config = uvicorn.Config(self._app(), host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="offload-dashboard", daemon=True)

    @property
    def url(self) -> str:
        config = self._server.config
        return f"http://{config.host}:{config.port}/"

    def _app(self) -> Any:
        from fastapi import FastAPI, HTTPException
        from fastapi.responses import HTMLResponse, Response, StreamingResponse

        app = FastAPI(title="offload dashboard")

        @app.get("/", response_class=HTMLResponse)
        def index() -> str:
            return page()

        @app.get("/frame.jpg")
        def frame() -> Response:
            return Response(self.frame_jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

        @app.get("/events")
        async def events() -> StreamingResponse:
            queue: asyncio.Queue[str] = asyncio.Queue()
            for record in self.records:  # a page opened late catches up
                queue.put_nowait(json.dumps(record))
            self._subscribers.add(queue)

            async def stream() -> Any:
                try:
                    while True:
                        yield f"data: {await queue.get()}\n\n"
                finally:
                    self._subscribers.discard(queue)

            return StreamingResponse(stream(), media_type="text/event-stream")

        @app.post("/privacy/{mode}")
        def privacy(mode: str) -> dict[str, str]:
            try:
                self.client.privacy = mode  # the SDK's public setter: from the next frame on
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
            return {"privacy": self.client.privacy.value}

        return app

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._server.serve())

    def __enter__(self) -> Dashboard:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise OSError(f"the dashboard could not start on {self.url} (is the port taken?)")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def publish(self, frame: np.ndarray, result: FrameResult, score: Score | None = None) -> None:
        """Show one frame's result (call from the thread that runs the client)."""
        if score is not None:
            key = result.where.value
            self.totals[key] = self.totals.get(key, Score()) + score
        delivered, at_s = None, time.monotonic() - self.started
        if self.uplink_trace is not None:
            delivered = self.uplink_trace.rate_mbit_s(at_s)
        record = record_of(result, self.totals, self.client.estimates.link, delivered, at_s)
        self.records.append(record)
        self.frame_jpeg = annotated(frame, result)
        message = json.dumps(record)
        if self._loop is not None:
            for queue in list(self._subscribers):
                with contextlib.suppress(RuntimeError):  # the loop closed as the run ended
                    self._loop.call_soon_threadsafe(queue.put_nowait, message)
