"""The shared vocabulary: what a model returns and what a frame's result holds.

These models cross boundaries (the wire, telemetry files), so they are pydantic.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Point = tuple[float, float]


class Box(BaseModel):
    """A quadrilateral, clockwise from top-left, in the frame's pixel space.

    Example:
        >>> Box(points=[(0, 0), (10, 0), (10, 5), (0, 5)], score=0.9, label="face").points[2]
        (10.0, 5.0)
    """

    model_config = ConfigDict(frozen=True)

    points: list[Point]
    score: float = 0.0
    label: str = ""
    # Continuous mode: the same thing keeps its id from frame to frame while it is tracked.
    track_id: int | None = None


class TextItem(BaseModel):
    """A piece of recognized text and where it is.

    Example:
        >>> TextItem(box=Box(points=[(0, 0), (40, 0), (40, 12), (0, 12)]), text="EXIT", score=0.98).text
        'EXIT'
    """

    model_config = ConfigDict(frozen=True)

    box: Box
    text: str
    score: float = 0.0

    @property
    def track_id(self) -> int | None:
        """Continuous mode: the word's id while it is tracked (its box's)."""
        return self.box.track_id


class ClassScore(BaseModel):
    """One label of a classifier's answer and its probability.

    Example:
        >>> ClassScore(label="180", score=0.93).label
        '180'
    """

    model_config = ConfigDict(frozen=True)

    label: str
    score: float


class Tensor(BaseModel):
    """A named array a task returns as it is: a mask, an embedding, raw scores.

    It crosses the wire as bytes and telemetry files as base64; `array()` gives it back.

    Example:
        >>> mask = Tensor.of("mask", np.eye(2, dtype=np.uint8))
        >>> mask.shape, mask.array().tolist()
        ([2, 2], [[1, 0], [0, 1]])
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    name: str
    dtype: str
    shape: list[int]
    data: bytes

    @classmethod
    def of(cls, name: str, array: np.ndarray) -> Tensor:
        """`array` (any numeric numpy dtype) under `name`."""
        contiguous = np.ascontiguousarray(array)
        little = contiguous.astype(contiguous.dtype.newbyteorder("<"), copy=False)
        return cls(name=name, dtype=little.dtype.name, shape=list(little.shape), data=little.tobytes())

    def array(self) -> np.ndarray:
        """The array back, shape and dtype as sent."""
        dtype = np.dtype(self.dtype).newbyteorder("<")
        return np.frombuffer(self.data, dtype=dtype).reshape(self.shape)


class Prediction(BaseModel):
    """A model's metadata for one frame; which fields are filled depends on the task.

    Example:
        >>> Prediction(classes=[ClassScore(label="cat", score=0.8)]).classes[0].label
        'cat'
    """

    boxes: list[Box] = Field(default_factory=list)
    texts: list[TextItem] = Field(default_factory=list)
    classes: list[ClassScore] = Field(default_factory=list)
    tensors: list[Tensor] = Field(default_factory=list)


class StageTimes(BaseModel):
    """Where the time of one local model run went, in milliseconds."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0

    def __add__(self, other: StageTimes) -> StageTimes:
        return StageTimes(
            preprocess_ms=self.preprocess_ms + other.preprocess_ms,
            inference_ms=self.inference_ms + other.inference_ms,
            postprocess_ms=self.postprocess_ms + other.postprocess_ms,
        )

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


class Where(StrEnum):
    """Which path answered a frame; `NONE` only when there is no device model yet and the server failed too.

    Example:
        >>> Where("remote") is Where.REMOTE, str(Where.LOCAL)
        (True, 'local')
    """

    LOCAL = "local"
    REMOTE = "remote"
    NONE = "none"


class Source(StrEnum):
    """Continuous mode: where a frame's answer came from.

    `FRESH_*`: an inference on this very frame; `TRACKED`: an earlier frame's answer carried to this
    one by the tracker (`age_ms` says how old); `NONE`: nothing to show yet (first frames, after a cut).
    """

    FRESH_REMOTE = "fresh-remote"
    FRESH_LOCAL = "fresh-local"
    TRACKED = "tracked"
    NONE = "none"


class Timings(BaseModel):
    """Per-frame latency breakdown in milliseconds; fields of the path not taken stay 0.

    `encode_ms` is the device's work before sending (redaction included); `network_ms` is the round
    trip minus that and the server's own time.

    Example:
        >>> t = Timings(encode_ms=4.0, network_ms=60.0, server_inference_ms=30.0, total_ms=98.0)
        >>> t.total_ms - t.encode_ms - t.network_ms
        34.0
    """

    encode_ms: float = 0.0
    network_ms: float = 0.0
    server_decode_ms: float = 0.0
    server_queue_ms: float = 0.0
    server_inference_ms: float = 0.0
    server_postprocess_ms: float = 0.0
    local_inference_ms: float = 0.0
    total_ms: float = 0.0


class FrameResult(BaseModel):
    """Everything the client knows about one frame: the answer and why it came from where it did.

    Example:
        >>> r = oc.infer(frame)                                                    # doctest: +SKIP
        >>> r.where, r.reason, round(r.latency_ms), r.uplink_bytes, r.words       # doctest: +SKIP
        (<Where.REMOTE: 'remote'>, 'adaptive: local ~612 ms vs remote ~290 ms at q70', 291, 48120, ['BANK'])
    """

    frame_id: int
    where: Where
    reason: str
    latency_ms: float
    timings: Timings
    model: str
    variant: str
    privacy: str
    policy: str
    uplink_bytes: int = 0
    jpeg_quality: int | None = None
    deadline_ms: float | None = None
    predicted_local_ms: float | None = None
    predicted_remote_ms: float | None = None
    # The device and the server raced for this frame from the start; the first answer served it.
    raced: bool = False
    # Privacy `redact`: the first painting left a face and the frame was painted again; or a face
    # remained even then, and the frame stayed on the device (`reason` says so).
    redact_repainted: bool = False
    redact_kept_local: bool = False
    error: str | None = None
    # Continuous mode only (None in per-frame mode). `key_frame_id`: the frame whose inference is
    # shown; `age_ms`: how long ago that frame arrived; `key_frame`: this frame was sent for inference
    # (`reason` says why); `tracker_ms`: the device's tracking work for this frame. A key frame's
    # uplink bytes count on the frame its answer lands on.
    source: Source | None = None
    age_ms: float | None = None
    key_frame_id: int | None = None
    key_frame: bool = False
    tracker_ms: float | None = None
    # The device's energy for this frame (mJ; offload_client/energy.py): the radio for what it sent
    # (promotion, transfer, the tail it extends) and the compute (busy power x the device's time). In
    # continuous mode a key frame's energy counts once, on the frame its answer lands on.
    energy_mj: float = 0.0
    radio_mj: float = 0.0
    compute_mj: float = 0.0
    boxes: list[Box] = Field(default_factory=list)
    texts: list[TextItem] = Field(default_factory=list)
    classes: list[ClassScore] = Field(default_factory=list)
    tensors: list[Tensor] = Field(default_factory=list)

    @property
    def words(self) -> list[str]:
        """The recognized strings, in reading order."""
        return [t.text for t in self.texts]
