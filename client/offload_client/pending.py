"""One frame between the policy's decision and its result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offload_client.policy import Decision
from offload_client.redaction import Redaction
from offload_client.region_plan import RegionPlan
from offload_client.transport import TransportError
from offload_core.proto import offload_pb2 as pb
from offload_core.types import Prediction, StageTimes


@dataclass
class Pending:
    """A frame in flight; `request` is set when it is sent (as the frame, or as a probe)."""

    frame_id: int
    decision: Decision
    started: float  # on the router's clock
    request: pb.InferRequest | None = None
    quality: int = 0
    encode_ms: float = 0.0
    # When to stop waiting for the remote answer and start the device model (seconds after `started`).
    hedge_s: float = 0.0
    # The gRPC deadline of the call itself: longer, so that late answers still teach.
    timeout_s: float = 0.0
    # Sent only to measure the remote path; the device answers the frame.
    shadow: bool = False
    # Waits for a reconnecting channel (a breaker's probe) instead of failing at once.
    patient: bool = False
    # What privacy `redact` did to the frame before it could be sent (None: not redacted).
    redaction: Redaction | None = None
    # Why the remote path did not serve the frame, once it failed or lost its race.
    failure: TransportError | None = None
    # The device's own result, while the frame still waits for the more accurate remote one.
    device: tuple[Prediction, StageTimes, str] | None = None
    # When the device model started on the frame in a race (on the router's clock; None: it did not).
    device_since: float | None = None
    # Its call outlives the frame and its outcome teaches the estimators (`FrameRouter.late`).
    followed: bool = False
    # The app's frame, until its result: a device model that fails can still send it.
    image: np.ndarray | None = None
    # Why the device model could not answer (it raised), once it did.
    device_error: str | None = None
    # Continuous mode: what of the frame to send, when the server takes regions (None: all of it).
    plan: RegionPlan | None = None

    @property
    def thumbnail(self) -> bool:
        """A probe sent scaled down (`Decision.probe_scale`): it measures the link only."""
        return self.request is not None and self.decision.shadow and self.decision.probe_scale < 1.0

    @property
    def image_bytes(self) -> int:
        """The encoded pixels sent: the frame's JPEG, or its regions' (0 before it was sent)."""
        if self.request is None:
            return 0
        return len(self.request.encoded.data) + sum(len(r.image.data) for r in self.request.regions)

    @property
    def uplink_bytes(self) -> int:
        return self.request.ByteSize() if self.request is not None else 0
