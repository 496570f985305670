"""The wire contract's Python side: conversions between its messages and the shared types."""

from __future__ import annotations

import time

import numpy as np

from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.types import Box, ClassScore, Prediction, StageTimes, Tensor, TextItem, Timings

# The HTTP header in which the server gives the sha256 of a model file it serves; the client checks it.
SHA256_HEADER = "X-Offload-Sha256"


def box_to_pb(box: Box) -> pb.Box:
    return pb.Box(points=[pb.Point(x=x, y=y) for x, y in box.points], score=box.score, label=box.label)


def box_from_pb(msg: pb.Box) -> Box:
    return Box(points=[(p.x, p.y) for p in msg.points], score=msg.score, label=msg.label)


def prediction_to_pb(prediction: Prediction, response: pb.InferResponse) -> None:
    """Fill `response`'s metadata fields from a prediction."""
    response.boxes.extend(box_to_pb(b) for b in prediction.boxes)
    response.texts.extend(pb.TextItem(box=box_to_pb(t.box), text=t.text, score=t.score) for t in prediction.texts)
    response.classes.extend(pb.ClassScore(label=c.label, score=c.score) for c in prediction.classes)
    response.tensors.extend(
        pb.Tensor(name=t.name, dtype=t.dtype, shape=t.shape, data=t.data) for t in prediction.tensors
    )


def prediction_from_pb(msg: pb.InferResponse) -> Prediction:
    return Prediction(
        boxes=[box_from_pb(b) for b in msg.boxes],
        texts=[TextItem(box=box_from_pb(t.box), text=t.text, score=t.score) for t in msg.texts],
        classes=[ClassScore(label=c.label, score=c.score) for c in msg.classes],
        tensors=[Tensor(name=t.name, dtype=t.dtype, shape=list(t.shape), data=t.data) for t in msg.tensors],
    )


def server_timings_to_pb(
    decode_ms: float, queue_ms: float, stages: StageTimes, total_ms: float, batch_size: int = 1
) -> pb.ServerTimings:
    return pb.ServerTimings(
        decode_ms=decode_ms,
        queue_ms=queue_ms,
        inference_ms=stages.inference_ms,
        postprocess_ms=stages.preprocess_ms + stages.postprocess_ms,
        total_ms=total_ms,
        batch_size=batch_size,
    )


def timings_from_server(msg: pb.ServerTimings) -> Timings:
    return Timings(
        server_decode_ms=msg.decode_ms,
        server_queue_ms=msg.queue_ms,
        server_inference_ms=msg.inference_ms,
        server_postprocess_ms=msg.postprocess_ms,
    )


def jpeg_request(
    model: str, frame_id: int, frame: np.ndarray, quality: int, deadline_ms: float
) -> tuple[pb.InferRequest, float]:
    """`frame` as a JPEG inference request for `model`, and how long the encoding took (ms)."""
    start = time.perf_counter()
    encoded = pb.EncodedImage(data=encode_jpeg(frame, quality), format="jpeg")
    encode_ms = (time.perf_counter() - start) * 1000.0
    return pb.InferRequest(model=model, frame_id=frame_id, encoded=encoded, deadline_ms=int(deadline_ms)), encode_ms
