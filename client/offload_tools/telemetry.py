"""Per-frame records on disk (JSON Lines) and the summary people read."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import numpy as np
from pydantic import BaseModel

from offload_core.types import FrameResult, Source, Where
from offload_tools.evaluation import Score


class TelemetryWriter:
    """Appends one JSON object per frame to `path`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("w")

    def write(self, result: FrameResult) -> None:
        self._file.write(result.model_dump_json() + "\n")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_telemetry(path: Path) -> list[FrameResult]:
    return [FrameResult.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


class Summary(BaseModel):
    """What a run did, in the numbers that matter for the local-vs-remote trade-off."""

    frames: int
    local: int
    remote: int
    fallbacks: int
    # Frames no path answered (no device model yet, and the server failed too): they still got a result.
    unanswered: int = 0
    p50_ms: float
    p95_ms: float
    mean_ms: float
    uplink_bytes: int
    # Privacy `redact`: frames painted a second time, and frames kept on the device because a face remained.
    redact_repainted: int = 0
    redact_kept_local: int = 0
    detection_f1: float | None = None
    word_accuracy: float | None = None
    # Continuous mode: frames sent for inference, frames answered by tracking, and the answers' age.
    key_frames: int | None = None
    tracked: int | None = None
    p50_age_ms: float | None = None
    # The device's energy per frame (mJ): all of it, and the radio's part (offload_client/energy.py).
    energy_mj_per_frame: float = 0.0
    radio_mj_per_frame: float = 0.0

    @classmethod
    def of(cls, results: Iterable[FrameResult], score: Score | None = None, words: bool = True) -> Summary:
        """The run's figures; `words=False` for ground truth with nothing to read (faces): no word accuracy."""
        rs = list(results)
        lat = np.array([r.latency_ms for r in rs]) if rs else np.zeros(1)
        continuous = any(r.source is not None for r in rs)
        ages = [r.age_ms for r in rs if r.age_ms is not None]
        return cls(
            frames=len(rs),
            local=sum(r.where == Where.LOCAL for r in rs),
            remote=sum(r.where == Where.REMOTE for r in rs),
            fallbacks=sum(r.reason.startswith("fallback") for r in rs),
            unanswered=sum(r.where == Where.NONE for r in rs),
            p50_ms=float(np.percentile(lat, 50)),
            p95_ms=float(np.percentile(lat, 95)),
            mean_ms=float(lat.mean()),
            uplink_bytes=sum(r.uplink_bytes for r in rs),
            redact_repainted=sum(r.redact_repainted for r in rs),
            redact_kept_local=sum(r.redact_kept_local for r in rs),
            detection_f1=score.f1 if score else None,
            word_accuracy=score.word_accuracy if score and words else None,
            key_frames=sum(r.key_frame for r in rs) if continuous else None,
            tracked=sum(r.source == Source.TRACKED for r in rs) if continuous else None,
            p50_age_ms=float(np.percentile(ages, 50)) if ages else None,
            energy_mj_per_frame=sum(r.energy_mj for r in rs) / max(1, len(rs)),
            radio_mj_per_frame=sum(r.radio_mj for r in rs) / max(1, len(rs)),
        )
