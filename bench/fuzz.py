"""Fuzzed requests over real gRPC: every answer must be a documented status, and the server must live on.

Hypothesis generates the cases: random and truncated JPEG/PNG/WebP bytes, raw pixels with wrong
shapes, dtypes and sizes, huge declared dimensions, random `params`, `format`s, unknown models and
variants, and random bytes as the whole message. Each goes to `Infer` on a real channel; the
answer is recorded by status. `INTERNAL`, `UNKNOWN`, `UNAVAILABLE` (a dropped connection) or a
crash are failures. Used by tests/integration/test_fuzz.py (a few hundred cases) and by
`make bench-faults` (thousands).
"""

from __future__ import annotations

import collections
import struct
import time
import zlib
from dataclasses import dataclass, field

import cv2
import grpc
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from offload_core.proto import offload_pb2 as pb

# What a bad request may be answered with: the statuses the protocol documents for the caller's mistakes.
# A DEADLINE_EXCEEDED this late is the client's timeout running out, not the server's answer.
CLIENT_TIMEOUT_SHARE = 0.95
DOCUMENTED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}
MODELS = ["text-spotter", "text-detector", "text-recognizer", "text-orientation"]
INFER = "/offload.v1.Offload/Infer"


def _encoded(kind: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (int(rng.integers(8, 200)), int(rng.integers(8, 200)), 3), dtype=np.uint8)
    ok, data = cv2.imencode(f".{kind}", image)
    assert ok
    return bytes(data.tobytes())


def _huge_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring `width` x `height`, then a truncated body: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 64


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["jpg", "png", "webp", "huge", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    if kind == "huge":
        side = st.integers(1, 2**31 - 1)
        return _huge_png(draw(side), draw(side))
    data = _encoded(kind, draw(st.integers(0, 2**16)))
    cut = draw(st.sampled_from(["whole", "truncated", "flipped"]))
    if cut == "truncated":
        return data[: draw(st.integers(0, len(data) - 1))]
    if cut == "flipped":
        pos = draw(st.integers(0, len(data) - 1))
        return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]
    return data


@st.composite
def infer_request(draw: st.DrawFn) -> bytes:
    """The serialized bytes of one request: a (mostly) well-formed message with bad contents, or noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=2048))  # random bytes as the whole message
    # Mostly served models, so that the cases reach the decoding and checks behind the name.
    unknown_model = draw(st.integers(0, 9)) == 0
    request = pb.InferRequest(
        model=draw(st.text(max_size=300)) if unknown_model else draw(st.sampled_from(MODELS)),
        frame_id=draw(st.integers(0, 2**64 - 1)),
        deadline_ms=draw(st.sampled_from([0, 1, 50, 2000, 2**32 - 1])),
    )
    if draw(st.integers(0, 9)) == 0:
        request.variant = draw(st.sampled_from(["server", "device", "fp32", "int4"]) | st.text(max_size=50))
    if draw(st.integers(0, 4)) == 0:
        request.params.update(draw(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=3)))
    which = draw(st.sampled_from(["encoded", "raw", "none"]))
    if which == "encoded":
        request.encoded.data = draw(image_bytes())
        request.encoded.format = draw(st.sampled_from(["", "jpeg", "png", "webp", "gif"]) | st.text(max_size=10))
    elif which == "raw":
        shape = draw(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 64), max_size=4))
        request.raw.shape.extend(shape)
        request.raw.dtype = draw(st.sampled_from(["", "uint8", "float32", "int64"]) | st.text(max_size=8))
        request.raw.data = draw(st.binary(max_size=4096))
    serialized: bytes = request.SerializeToString()
    return serialized


@dataclass
class Report:
    cases: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    undocumented: list[tuple[str, str]] = field(default_factory=list)  # (status, details), first few

    def record(self, status: str, details: str) -> None:
        self.cases += 1
        self.statuses[status] += 1
        if status not in DOCUMENTED and len(self.undocumented) < 10:
            self.undocumented.append((status, details[:300]))


def fuzz(target: str, cases: int, timeout_s: float = 30.0) -> Report:
    """Send `cases` generated requests (the same ones every run) to `target` (host:port); report their statuses."""
    report = Report()
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = channel.unary_unary(INFER, request_serializer=None, response_deserializer=None)

        @settings(
            max_examples=cases, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck), phases=[Phase.generate],
        )  # fmt: skip
        @given(infer_request())
        def send(data: bytes) -> None:
            started = time.monotonic()
            try:
                call(data, timeout=timeout_s)
                report.record("OK", "")
            except grpc.RpcError as exc:
                status = exc.code().name
                if status == "DEADLINE_EXCEEDED" and time.monotonic() - started >= CLIENT_TIMEOUT_SHARE * timeout_s:
                    # Our own timeout, not the server's answer: a server that hangs must not pass as documented.
                    status = "CLIENT_TIMEOUT"
                report.record(status, exc.details() or "")

        send()
    return report
