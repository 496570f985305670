"""Serving a region request's READ regions: known lines of text, read by the recognizer alone.

The FIND regions ran the model as a frame does (`InferenceService.decode` rebuilds the frame from
them); here the READ crops are read and their words replace whatever the FIND pass found there.
"""

from __future__ import annotations

import grpc
import numpy as np

from offload_core.engine.geometry import centre_inside
from offload_core.engine.image import ImageError
from offload_core.engine.tasks.base import Task
from offload_core.engine.tasks.text_spotter import TextSpotter
from offload_core.proto import offload_pb2 as pb
from offload_core.regions import read_crops, rect_quad
from offload_core.types import Box, Prediction, StageTimes
from offload_server.errors import ServiceError


def _centre_in(box: Box, regions: list[pb.Region]) -> bool:
    return any(centre_inside(np.asarray(box.points), r.x, r.y, r.width, r.height) for r in regions)


def read_regions(
    task: Task, request: pb.InferRequest, found: Prediction, max_pixels: int
) -> tuple[Prediction, StageTimes]:
    """`found` (the FIND pass's answer) with the READ regions' words in place of what it found there."""
    if not isinstance(task, TextSpotter):  # `_check_regions` refused READ for every other task
        raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"model {request.model!r} cannot READ a region")
    try:
        crops = read_crops(request, max_pixels)
    except ImageError as exc:
        raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"bad region request: {exc}") from None
    read, stages = task.read([(Box(points=rect_quad(region), label="text"), pixels) for region, pixels in crops])
    regions = [region for region, _ in crops]
    texts = [t for t in found.texts if not _centre_in(t.box, regions)] + read.texts
    boxes = [b for b in found.boxes if not _centre_in(b, regions)] + read.boxes
    return Prediction(boxes=boxes, texts=texts, classes=found.classes, tensors=found.tensors), stages
