"""What may leave the device for one frame, and how: the privacy gate, redaction, scaling, the JPEG.

Every byte a frame sends is made here, so privacy is checked in one place: `local-only` sends
nothing, `redact` sends only a frame painted over and verified clean, and both fail closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import numpy as np

from offload_client.device_speed import DeviceSpeed
from offload_client.pending import Pending
from offload_client.privacy import Privacy
from offload_client.redaction import Redaction
from offload_client.region_plan import READ_QUALITY, RegionPlan, TextFinder, layered
from offload_core.engine.image import decode_image, shrink
from offload_core.proto import offload_pb2 as pb
from offload_core.regions import READ_REGIONS, REGIONS, region_request
from offload_core.wire import jpeg_request


class Redact(Protocol):
    """What privacy `redact` needs: paint a frame over and verify it; tell whether an image shows a face."""

    def __call__(self, frame: np.ndarray, quality: int = 90) -> Redaction: ...

    def shows_face(self, image: np.ndarray) -> bool: ...


class Uplink:
    """Builds a frame's request under the privacy mode; `blocked()` says when nothing may be sent."""

    def __init__(self, model: str, privacy: Privacy, device: DeviceSpeed, clock: Callable[[], float]) -> None:
        self.model = model
        self.privacy = privacy
        self._device = device
        self._clock = clock
        # Privacy `redact`: paints faces over and verifies the frame before it is encoded. None: no detector
        # (`_redact_missing` says why), and then nothing leaves: the mode fails closed.
        self._redact: Redact | None = None
        self._redact_missing = "the face detector is not loaded"
        # What the server said it takes besides whole frames (its last answer's `accepts`).
        self.accepts: frozenset[str] = frozenset()
        # The device's text detector, for looks at a whole key frame (`layered`); None: the model has none.
        self.finder: TextFinder | None = None

    def takes(self, plan: RegionPlan | None) -> bool:
        """Whether the server takes `plan`'s regions (an older server gets whole frames)."""
        if plan is None or REGIONS not in self.accepts:
            return False
        return READ_REGIONS in self.accepts or not any(c.read for c in plan.crops)

    def redaction_ready(self, redact: Redact | None, missing: str = "") -> None:
        self._redact = redact
        self._redact_missing = missing or self._redact_missing

    @property
    def has_redaction(self) -> bool:
        return self._redact is not None

    def blocked(self) -> str:
        """Why the privacy mode lets nothing leave now, or ""."""
        if self.privacy == Privacy.LOCAL_ONLY:
            return "privacy: local-only"
        if self.privacy == Privacy.REDACT and self._redact is None:
            return f"privacy: redact, but {self._redact_missing}: frames stay on the device"
        return ""

    def request(self, pending: Pending, image: np.ndarray, scale: float, deadline_ms: float) -> pb.InferRequest:
        """`image` as a JPEG request at `pending.quality` (in `redact`, painted over and verified first,
        then scaled by `scale`), or as `pending.plan`'s regions of it (cut from the painted frame, so no
        crop holds a face); the device's time for it goes to `pending.encode_ms`.

        PermissionError: the frame must not leave (the mode forbids it, or a face remained).
        """
        start = self._clock()
        with self._device.paying():  # the device's own work: redaction, scaling, JPEG, the request
            if self.privacy == Privacy.REDACT:
                # On the full frame: a face too small to find in a thumbnail still shows in it.
                image = self._redacted(image, pending)
            elif self.privacy != Privacy.ALLOW:  # defence in depth: never encode a frame that may not leave
                raise PermissionError(f"privacy mode {self.privacy} forbids sending frames")
            if pending.plan is None:
                if scale < 1.0:
                    image = shrink(image, scale)
                request, _ = jpeg_request(self.model, pending.frame_id, image, pending.quality, deadline_ms)
            else:
                layering = pending.plan.look and self.finder is not None
                request = self._regions(pending, image, deadline_ms)
                if layering:
                    whole, _ = jpeg_request(self.model, pending.frame_id, image, pending.quality, deadline_ms)
                    if whole.ByteSize() <= request.ByteSize():
                        # A look that costs more than the whole frame (a page of text: a sharp crop on every
                        # line) goes as the whole frame at the key frame's quality, in fewer bytes.
                        pending.plan, request = None, whole
            if self.privacy == Privacy.REDACT and (pending.plan is not None or scale < 1.0):
                request = self._verified(pending, image, request, deadline_ms)
        pending.encode_ms = (self._clock() - start) * 1000.0
        return request

    def _verified(
        self, pending: Pending, image: np.ndarray, request: pb.InferRequest, deadline_ms: float
    ) -> pb.InferRequest:
        """`request` if no image in it shows a face as the server will decode it; else the painted frame whole.

        The frame was verified at full resolution; a view of it is not that frame. A look's coarse base or a
        thumbnail, smaller, can show a face the full frame did not (a painted head's edge, a face at the
        detector's smallest size): seen on a pan with faces walking in, a look's base at half scale. PermissionError
        when even the painted frame, whole, shows one.
        """
        assert self._redact is not None
        if not self._shows_face(request):
            return request
        pending.plan = None
        whole, _ = jpeg_request(self.model, pending.frame_id, image, pending.quality, deadline_ms)
        if self._shows_face(whole):
            raise PermissionError("privacy: redact, a face showed in the frame as sent: it stays on the device")
        return whole

    def _shows_face(self, request: pb.InferRequest) -> bool:
        assert self._redact is not None
        images = [request.encoded.data] if request.encoded.data else []
        images += [region.image.data for region in request.regions]
        return any(self._redact.shows_face(decode_image(data)) for data in images)

    def _regions(self, pending: Pending, image: np.ndarray, deadline_ms: float) -> pb.InferRequest:
        """`pending.plan`'s crops of `image` as a request; a look made `layered` where the device finds text."""
        assert pending.plan is not None
        if pending.plan.look and self.finder is not None:
            # A look: coarse, and sharp where the device finds words (each crop at its own quality).
            height, width = image.shape[:2]
            pending.plan = layered(width, height, self.finder(image))
            return region_request(self.model, pending.frame_id, image, pending.plan.crops, deadline_ms)[0]
        # Crops of new area at the key frame's quality (a crop's own is a cap); sharp ones (READ crops, a word
        # found again) at their own: they are there to be read.
        crops = [
            c if c.quality == READ_QUALITY else replace(c, quality=min(c.quality, pending.quality))
            for c in pending.plan.crops
        ]
        return region_request(self.model, pending.frame_id, image, crops, deadline_ms)[0]

    def _redacted(self, image: np.ndarray, pending: Pending) -> np.ndarray:
        """`image` painted over and verified; PermissionError (it must not leave) if that cannot be done."""
        if self._redact is None:
            raise PermissionError(f"privacy: redact, but {self._redact_missing}: the frame stays on the device")
        try:
            pending.redaction = self._redact(image, pending.quality)
        except Exception as exc:
            self._redact, self._redact_missing = None, f"the face detector failed ({type(exc).__name__}: {exc})"
            raise PermissionError(
                f"privacy: redact, but {self._redact_missing}: the frame stays on the device"
            ) from exc
        if pending.redaction.image is None:
            raise PermissionError(
                f"privacy: redact, a face remained after painting twice (score {pending.redaction.score:.2f}): "
                "the frame stays on the device"
            )
        return pending.redaction.image
