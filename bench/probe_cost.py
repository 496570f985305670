"""`make bench-probe`: what one probe of the remote path costs the device, a whole frame against a thumbnail.

A probe's price on the device is uplink bytes and CPU time on the core the device model runs on
(the JPEG encode, gRPC's work for the call). This process plays the device, pinned to one core;
the server and the link emulator (a real cellular trace) run on the other. For each trace, whole
frames and thumbnails (`THUMBNAIL_SCALE`) alternate in rounds, so that the machine's drift hits
both: bytes, this process's CPU time per probe (encode + the call, start to answer) and the round
trip. Writes bench/results/probe_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.interference import interference
from bench.policy import DEVICE_CPUS, LINKEM_READY, SERVER_CPUS, TRACES, linkem_command
from bench.record import relative, settings_of
from offload_client.device_speed import DeviceSpeed
from offload_client.local import LocalEngine
from offload_client.policy.base import THUMBNAIL_SCALE
from offload_client.transport import GrpcTransport
from offload_core.engine.image import shrink
from offload_core.wire import jpeg_request
from offload_server.testing import child_process, server_process
from offload_tools.sample import render_frames

ROOT = Path(__file__).resolve().parents[1]


def probe(
    transport: GrpcTransport,
    frame: Any,
    frame_id: int,
    scale: float,
    quality: int,
    device: DeviceSpeed,
    patient: bool = False,
) -> tuple[float, float, int]:
    """One probe, waited for: (this process's CPU ms, round trip ms, bytes sent). The device pays its
    slowdown for the encoding, as the client does; gRPC's own threads run at this machine's speed."""
    cpu, wall = time.process_time(), time.perf_counter()
    with device.paying():
        small = shrink(frame, scale) if scale < 1 else frame
        request, _ = jpeg_request("text-spotter", frame_id, small, quality, 10_000)
    transport.submit(request, 30.0, patient=patient).result()
    return (time.process_time() - cpu) * 1000.0, (time.perf_counter() - wall) * 1000.0, request.ByteSize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", nargs="+", default=["Verizon-EVDO-driving", "TMobile-LTE-short"])
    parser.add_argument("--frames", type=int, default=10, help="probes per kind and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quality", type=int, default=35, help="JPEG quality (the ladder's lowest: probes go small)")
    parser.add_argument("--device-slowdown", type=float, default=3.0, help="the emulated device, as in bench-policy")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "probe_cost.json")
    args = parser.parse_args()
    if DEVICE_CPUS:
        os.sched_setaffinity(0, DEVICE_CPUS)
    frames, _ = render_frames(22, args.frames, style="real")
    server_args = ["--model", "text-spotter", "--models-dir", str(ROOT / "models"), "--intra-op-threads", "1"]
    rows: list[dict[str, Any]] = []
    engine = LocalEngine("text-spotter", ROOT / "models", threads=1, slowdown=args.device_slowdown)
    engine.load_all()
    device = engine.device
    # What the probes are weighed against: one frame of the device model, as slow as the device.
    device_frame_ms = statistics.median(engine.run(f)[1].total_ms for f in frames)
    with server_process(server_args, SERVER_CPUS) as (target, _):
        alone_vs_busy = interference("text-spotter", ROOT / "models", target, frames[:6], SERVER_CPUS)
        for trace in args.traces:
            linkem = linkem_command(target, TRACES / f"{trace}.up", TRACES / f"{trace}.down", 20.0)
            with child_process(linkem, LINKEM_READY, SERVER_CPUS) as link:
                transport = GrpcTransport(f"127.0.0.1:{link.group(1)}")
                probe(transport, frames[0], 0, 1.0, args.quality, device, patient=True)  # connects: not counted
                measured: dict[str, list[tuple[float, float, int]]] = {"frame": [], "thumbnail": []}
                for _ in range(args.rounds):
                    for kind, scale in (("frame", 1.0), ("thumbnail", THUMBNAIL_SCALE)):
                        measured[kind] += [
                            probe(transport, f, i, scale, args.quality, device) for i, f in enumerate(frames)
                        ]
                transport.close()
            for kind, runs in measured.items():
                rows.append(
                    {
                        "trace": trace,
                        "probe": kind,
                        "kb": round(statistics.mean(r[2] for r in runs) / 1000, 1),
                        "cpu_ms_median": round(statistics.median(r[0] for r in runs), 2),
                        "share_of_device_frame": round(statistics.median(r[0] for r in runs) / device_frame_ms, 4),
                        "round_trip_ms_median": round(statistics.median(r[1] for r in runs)),
                    }
                )
    print(f"\none probe at JPEG q{args.quality}, 640x480 frames, {args.frames * args.rounds} of each kind per trace,")
    print(f"on a device x{args.device_slowdown:g} slower than this core: one device frame {device_frame_ms:.0f} ms\n")
    print("| trace | probe | KB sent | device CPU per probe (ms) | share of a device frame | round trip (ms) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["trace"], r["probe"], r["kb"], r["cpu_ms_median"], f"{100 * r['share_of_device_frame']:.1f} %"]
        print("| " + " | ".join(map(str, [*cells, r["round_trip_ms_median"]])) + " |")
    print(f"\nthe device beside a busy server (same frames, this core's speed): {alone_vs_busy}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {**settings_of(args), "device_cpus": sorted(DEVICE_CPUS or []), "server_cpus": sorted(SERVER_CPUS or [])}
    result = {"rows": rows, "device_frame_ms": round(device_frame_ms, 1), "interference": alone_vs_busy}
    args.out.write_text(json.dumps({**result, "settings": settings}, indent=2) + "\n")
    print(f"\nwrote {relative(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
