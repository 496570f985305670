"""Load generator for `make bench-server`: one kind of client at one concurrency, in its own process.

Closed loop (each of N workers sends a frame, waits for the answer, sends the next)
for the throughput points; open loop for `overload` (N streams each offering frames
at a fixed rate whatever the server does). Prints one JSON object on stdout.

    python -m bench.loadgen grpc-unary 127.0.0.1:50051 --frames DIR --concurrency 16 --duration 8
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np

from offload_core.engine.image import decode_image
from offload_core.engine.repository import ModelRepository
from offload_core.engine.tasks.text_detection import detection_input
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc

KINDS = ("grpc-unary", "grpc-stream", "b64_jpeg", "json_tensor", "overload")
SERVER_STAGES = ("decode_ms", "queue_ms", "inference_ms", "postprocess_ms", "total_ms", "batch_size")
MAX_MESSAGE = 64 * 1024 * 1024


class Recorder:
    """Latencies of answers completed inside the measuring window (after the warm-up)."""

    def __init__(self, warmup_s: float, duration_s: float) -> None:
        self.start = time.perf_counter() + warmup_s
        self.end = self.start + duration_s
        self.latencies_ms: list[float] = []
        self.errors = 0
        # What the server says each answer cost it: where the time went when throughput disappoints.
        self.server: dict[str, list[float]] = {stage: [] for stage in SERVER_STAGES}

    def running(self) -> bool:
        return time.perf_counter() < self.end

    def record(self, sent_at: float, timings: pb.ServerTimings | None = None) -> None:
        now = time.perf_counter()
        if self.start <= now <= self.end:
            self.latencies_ms.append((now - sent_at) * 1000.0)
            if timings is not None:
                for stage in SERVER_STAGES:
                    self.server[stage].append(float(getattr(timings, stage)))

    def summary(self, bytes_per_frame: int, raw: bool = False) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        window = self.end - self.start
        out: dict[str, Any] = {
            "p50_ms": round(statistics.median(lat), 2) if lat else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat else None,
            "fps": round(len(lat) / window, 2),
            "answered": len(lat),
            "errors": self.errors,
            "bytes_per_frame": bytes_per_frame,
        }
        if self.server["total_ms"]:
            out["server_p50"] = {stage: round(statistics.median(v), 2) for stage, v in self.server.items()}
        if raw:
            out["latencies_ms"] = self.latencies_ms
        return out


def requests_of(frames: list[bytes], args: argparse.Namespace) -> list[pb.InferRequest]:
    return [
        pb.InferRequest(model=args.model, variant=args.variant, frame_id=i, encoded=pb.EncodedImage(data=f))
        for i, f in enumerate(frames)
    ]


def channel(target: str, tls_ca: Path | None = None) -> grpc.aio.Channel:
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    if tls_ca is not None:
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(tls_ca.read_bytes()), options=options)
    return grpc.aio.insecure_channel(target, options=options)


async def grpc_unary(args: argparse.Namespace, frames: list[bytes], rec: Recorder) -> int:
    requests = requests_of(frames, args)
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else None
    async with channel(args.target, args.tls_ca) as ch:
        stub = pb_grpc.OffloadStub(ch)

        async def worker(w: int) -> None:
            i = w
            while rec.running():
                sent = time.perf_counter()
                try:
                    response = await stub.Infer(requests[i % len(requests)], timeout=60, metadata=metadata)
                    rec.record(sent, response.timings)
                except grpc.aio.AioRpcError:
                    rec.errors += 1
                i += args.concurrency

        await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
    return int(requests[0].ByteSize())


async def grpc_stream(args: argparse.Namespace, frames: list[bytes], rec: Recorder) -> int:
    requests = requests_of(frames, args)
    async with channel(args.target) as ch:
        stub = pb_grpc.OffloadStub(ch)

        async def worker(w: int) -> None:
            call = stub.InferStream(timeout=args.duration + args.warmup + 60)
            i = w
            while rec.running():
                sent = time.perf_counter()
                await call.write(requests[i % len(requests)])
                response = await call.read()
                if response is grpc.aio.EOF or response.HasField("error"):
                    rec.errors += 1
                else:
                    rec.record(sent, response.timings)
                i += args.concurrency
            await call.done_writing()

        await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
    return int(requests[0].ByteSize())


def naive_bodies(kind: str, frames: list[bytes], variant: str) -> list[bytes]:
    """What the two naive clients send: base64 JPEG in JSON, or the pre-processed tensor as a JSON array."""
    if kind == "b64_jpeg":
        return [json.dumps({"image_b64": base64.b64encode(f).decode()}).encode() for f in frames]
    spec = ModelRepository().spec("text-detector")
    input_size = spec.variant(variant).input_size or 640
    bodies = []
    for f in frames:
        image = decode_image(f)
        tensor = detection_input(image, input_size, spec)
        body = {"instances": tensor.round(4).tolist(), "height": image.shape[0], "width": image.shape[1]}
        bodies.append(json.dumps(body).encode())
    return bodies


async def naive_http(args: argparse.Namespace, bodies: list[bytes], rec: Recorder) -> int:
    url = f"{args.target}/{args.kind}"
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker(w: int) -> None:
            i = w
            while rec.running():
                sent = time.perf_counter()
                body = bodies[i % len(bodies)]
                response = await client.post(url, content=body, headers={"content-type": "application/json"})
                if response.status_code == 200:
                    rec.record(sent)
                else:
                    rec.errors += 1
                i += args.concurrency

        await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
    return len(bodies[0])


async def overload(args: argparse.Namespace, frames: list[bytes]) -> dict[str, Any]:
    """N streams offering `rate` frames/s each; every frame must come back as a result or RESOURCE_EXHAUSTED."""
    requests = requests_of(frames, args)
    sent_at: dict[int, float] = {}
    counts = {"sent": 0, "answered": 0, "rejected": 0, "errors": 0}
    reject_ms: list[float] = []
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    next_id = iter(range(1, 1 << 62))
    async with channel(args.target) as ch:
        stub = pb_grpc.OffloadStub(ch)

        async def stream(w: int) -> None:
            call = stub.InferStream(timeout=args.duration + 120)
            mine: set[int] = set()

            async def send() -> None:
                end = time.perf_counter() + args.duration
                tick = time.perf_counter() + w / (args.rate * args.concurrency)  # spread the streams' phases
                while tick < end:
                    await asyncio.sleep(max(0.0, tick - time.perf_counter()))
                    frame_id = next(next_id)
                    request = pb.InferRequest()
                    request.CopyFrom(requests[frame_id % len(requests)])
                    request.frame_id = frame_id
                    sent_at[frame_id] = time.perf_counter()
                    mine.add(frame_id)
                    await call.write(request)
                    counts["sent"] += 1
                    tick += 1.0 / args.rate
                await call.done_writing()

            async def receive() -> None:
                async for response in call:
                    now = time.perf_counter()
                    mine.discard(response.frame_id)
                    if not response.HasField("error"):
                        counts["answered"] += 1
                    elif response.error.code == exhausted:
                        counts["rejected"] += 1
                        reject_ms.append((now - sent_at[response.frame_id]) * 1000.0)
                    else:
                        counts["errors"] += 1

            with contextlib.suppress(grpc.aio.AioRpcError):  # a broken stream shows as its unanswered frames
                await asyncio.gather(send(), receive())
            counts["errors"] += len(mine)  # a frame never answered is an error too

        started = time.perf_counter()
        await asyncio.gather(*(stream(w) for w in range(args.concurrency)))
    return {
        "seconds": round(time.perf_counter() - started, 1),
        **counts,
        "max_reject_ms": round(max(reject_ms), 1) if reject_ms else 0.0,
        "p99_reject_ms": round(float(np.percentile(reject_ms, 99)), 1) if reject_ms else 0.0,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    frames = [p.read_bytes() for p in sorted(args.frames.glob("*.jpg"))]
    if not frames:
        raise SystemExit(f"no *.jpg frames in {args.frames}")
    if args.kind == "overload":
        return await overload(args, frames)
    if args.kind in ("grpc-unary", "grpc-stream"):
        rec = Recorder(args.warmup, args.duration)
        grpc_kind = grpc_unary if args.kind == "grpc-unary" else grpc_stream
        return rec.summary(await grpc_kind(args, frames, rec), args.raw)
    # The very frames the gRPC contenders cycle; their JSON bodies (14.7 MB each as tensors) are made
    # before the clock starts, or making them would eat the measuring window.
    bodies = naive_bodies(args.kind, frames, args.variant)
    rec = Recorder(args.warmup, args.duration)
    return rec.summary(await naive_http(args, bodies, rec), args.raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("target", help="host:port for gRPC, http://host:port for the naive HTTP servers")
    parser.add_argument("--frames", type=Path, required=True, help="a folder of pre-encoded *.jpg frames")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--rate", type=float, default=10.0, help="overload: frames/s offered by each stream")
    parser.add_argument("--raw", action="store_true", help="also print every latency measured")
    parser.add_argument("--model", default="text-detector")
    parser.add_argument("--variant", default="fp32-640")
    parser.add_argument("--tls-ca", type=Path, help="grpc-unary over TLS, trusting this CA")
    parser.add_argument("--token", help="grpc-unary with this bearer token")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
