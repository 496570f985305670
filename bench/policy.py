"""`make bench-policy`: every policy against the per-frame oracle, over real cellular traces.

For each trace pair the harness runs the same sample-video frames, paced on the
same schedule, through a fresh link emulator (so every run sees the same
stretch of trace):

1. calibration: every frame on both paths — the local model (this run is
   `always-local` too: it sends nothing), twice, before and after the adaptive
   runs, and the remote path: each frame alone, on a fresh emulator started at
   the frame's moment of the trace, whatever became of the frames before it;
2. `always-remote`, `adaptive-latency`, `adaptive-accuracy`, each a real run
   (the accuracy objective gets each path's word accuracy, measured once up
   front on held-out frames of another seed: never on the frames it is scored on).

The noise floor is printed with the results: how far the two always-local runs
differ (the machine's drift from run to run), and two standard errors of their
per-frame differences (the same frame's device time varies by ±12-20 % from run
to run on this VM). Both come from one policy run twice, so no policy widens the
band by being erratic. A target missed by less than the noise floor is
"unresolved", with the number of passes that would resolve it; one missed by more
is "NOT met". Each adaptive run's device speed against always-local's, on the
frames it answered on the device alone (`device_speed`), is printed too.

With `--passes N` all of this runs N times over the same stretch, every other
pass in reverse order, and the frames of all passes are pooled: on a shared
machine whose speed drifts by 10-25% over minutes, one run after another
would otherwise compare the drift, not the policies.

The oracles are computed from the calibration: `oracle-latency` takes the
faster path per frame, `oracle-accuracy` the path that read the most words among
those that met the deadline (the faster when none did), and `oracle-timing` the
path with the best held-out accuracy among those (it knows every frame's times,
as `oracle-accuracy` does, but not its words, as no policy does). Results go to
bench/results/policy.json, a markdown table to stdout, one PNG per trace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bench.interference import interference
from bench.record import settings_of
from bench.seeds import CONFIRMING, TUNING, role
from offload_client import OffloadClient, Where
from offload_client.energy import PHONE_CPU, RADIOS, RadioProfile, charge
from offload_client.policy import Adaptive, AlwaysLocal, Policy
from offload_client.transport import GrpcTransport, TransportError
from offload_core.engine import ModelRepository
from offload_core.types import FrameResult, Prediction
from offload_core.wire import jpeg_request, prediction_from_pb
from offload_server.testing import child_process, server_process
from offload_tools.evaluation import Score, score_frame
from offload_tools.linkem import LinkConfig, LinkEmulator, Outage, Trace, config_from_args
from offload_tools.sample import DEFAULT_SIZE, STYLES, GroundTruth, Style, render_frames

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "bench" / "traces" / "mahimahi"
POLICIES = (
    "always-local",
    "always-remote",
    "adaptive-latency",
    "adaptive-accuracy",
    "adaptive-energy",
    "oracle-latency",
    "oracle-accuracy",
    "oracle-timing",
    "oracle-energy",
)
# Seeds (bench/seeds.py): the policy's constants were tuned on TUNING["policy"]; README and docs quote
# CONFIRMING["policy"]. The accuracy objective learns each path's accuracy from the frames of seed + 1.
# Each model's frames: photographs with words for the text spotter, real faces for the face detector.
MODEL_STYLES: dict[str, Style] = {"text-spotter": "real", "face-detector": "faces"}
# Every run sends its first frame this long after its link emulator came up, so that all runs of a trace
# see the very same stretch of it (building a client, which loads the device model, takes about a second).
LEAD_S = 2.0
# The calibration waits this long for a remote answer: its frames have no deadline to cut them short.
CALIBRATION_PATIENCE_S = 60.0
# The calibration connects to its emulator this long before the frame's moment.
CONNECT_S = 0.2
LINKEM_READY = r"listening on 127.0.0.1:(\d+)"
# Two machines on one: the device (this process) gets core 0; the server and the link emulator core 1.
_TWO_CORES = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
DEVICE_CPUS = {min(os.sched_getaffinity(0))} if _TWO_CORES else None
SERVER_CPUS = set(os.sched_getaffinity(0)) - (DEVICE_CPUS or set()) if _TWO_CORES else None
console = Console(stderr=True)


@dataclass
class Frame:
    """One frame's outcome on one path or under one policy."""

    latency_ms: float
    where: Where
    score: Score
    uplink_bytes: int
    mispredicted: bool | None = None
    reason: str = ""
    # What the policy expected of each path for this frame (None where it predicted nothing).
    predicted_local_ms: float | None = None
    predicted_remote_ms: float | None = None
    # The device model's share of the latency, where the device's answer served the frame.
    device_ms: float | None = None
    variant: str = ""  # the model variant that answered
    # The device's energy for the frame (mJ), and the radio's part (offload_client/energy.py).
    energy_mj: float = 0.0
    radio_mj: float = 0.0


def pace(
    progress: Progress, label: str, count: int, interval_s: float, step: Callable[[int], Frame], t0: float
) -> list[Frame]:
    """Call `step(i)` for frame i at t0 + i·interval (or at once when behind), with a progress bar."""
    job = progress.add_task(label, total=count)
    out = []
    for i in range(count):
        wait = t0 + i * interval_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        out.append(step(i))
        progress.advance(job)
    progress.remove_task(job)
    return out


class LinkLoop:
    """Link emulators in this process, on an event loop of their own: a fresh one costs no process start.

    The loop's thread runs on `cpus`, as the emulator process of every other run does (Linux pins threads).
    """

    def __init__(self, cpus: set[int] | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, args=(cpus,), name="linkem", daemon=True)
        self.thread.start()

    def _run(self, cpus: set[int] | None) -> None:
        if cpus:
            os.sched_setaffinity(threading.get_native_id(), cpus)
        self.loop.run_forever()

    @contextlib.contextmanager
    def link(self, config: LinkConfig, upstream: tuple[str, int]) -> Iterator[LinkEmulator]:
        link = LinkEmulator(config, ("127.0.0.1", 0), upstream)
        asyncio.run_coroutine_threadsafe(link.start(), self.loop).result()
        try:
            yield link
        finally:
            asyncio.run_coroutine_threadsafe(link.stop(), self.loop).result()

    def close(self) -> None:
        async def cancel_the_rest() -> None:  # connections a killed server left half-open: ended, not abandoned
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def calibrate_remote(
    progress: Progress, label: str, config: LinkConfig, upstream: tuple[str, int], frames: list[np.ndarray],
    truth: GroundTruth, args: argparse.Namespace,
) -> list[Frame]:  # fmt: skip
    """What each frame costs on the remote path, sent alone at its own moment of the trace.

    The oracle needs, per frame, what the remote path would have given it. Sent one after another
    on one link, a frame that waits out a stall pushes the next ones to later, faster stretches of
    the trace (answers in time that no policy could get); sent all at their times, they queue behind
    each other at the link and the server (a congestion of the calibration's own making). So each
    frame gets a fresh emulator started at the frame's moment of the trace, and an idle server.
    """
    out = []
    job = progress.add_task(label, total=len(frames))
    links = LinkLoop(SERVER_CPUS)
    try:
        for i, frame in enumerate(frames):
            # Where frame i meets the trace (and the outages) in every other run.
            moment_s = args.trace_offset + LEAD_S + i * args.frame_interval
            with links.link(replace(config, start_s=moment_s - CONNECT_S), upstream) as link:
                ready = time.monotonic()
                transport = GrpcTransport(f"127.0.0.1:{link.port}")
                try:  # connect before the frame's moment, as every other run's client is connected by then
                    with contextlib.suppress(grpc.FutureTimeoutError):
                        grpc.channel_ready_future(transport.channel).result(timeout=CONNECT_S)
                    time.sleep(max(0.0, ready + CONNECT_S - time.monotonic()))
                    start = time.monotonic()
                    request, _ = jpeg_request(args.model, i, frame, args.jpeg_quality, CALIBRATION_PATIENCE_S * 1000)
                    encode_ms = (time.monotonic() - start) * 1000 * args.device_slowdown  # on the emulated device
                    try:
                        call = transport.submit(request, CALIBRATION_PATIENCE_S, patient=True)
                        prediction = prediction_from_pb(call.result().response)
                        latency_ms = (time.monotonic() - start) * 1000
                    except TransportError:  # never answered (an outage): no path a policy could take
                        prediction, latency_ms = Prediction(), math.inf
                finally:
                    transport.close()
            score = score_frame(truth.frames[i].words, prediction.boxes, prediction.texts)
            # The device's encoding; the radio's share depends on the frames sent before it (`recharged`).
            encode_mj = PHONE_CPU.busy_mw * encode_ms / 1000
            out.append(Frame(latency_ms, Where.REMOTE, score, request.ByteSize(), energy_mj=encode_mj))
            progress.advance(job)
    finally:
        links.close()
        progress.remove_task(job)
    return out


def frame_of(result: FrameResult, truth: GroundTruth, i: int, mispredicted: bool | None = None) -> Frame:
    score = score_frame(truth.frames[i].words, result.boxes, result.texts)
    device_ms = result.timings.local_inference_ms if result.where == Where.LOCAL else None
    return Frame(
        result.latency_ms, result.where, score, result.uplink_bytes, mispredicted, result.reason,
        result.predicted_local_ms, result.predicted_remote_ms, device_ms, result.variant, result.energy_mj,
        result.radio_mj,
    )  # fmt: skip


def misprediction(result: FrameResult, deadline_ms: float) -> bool | None:
    """Was the chosen path predicted on the wrong side of the deadline? None when nothing was predicted.

    A raced frame chose both paths, and the first answer served it: the race predicted the faster of the two.
    """
    if result.raced:
        known = [p for p in (result.predicted_local_ms, result.predicted_remote_ms) if p is not None]
        return (min(known) <= deadline_ms) != (result.latency_ms <= deadline_ms) if known else None
    predicted = result.predicted_local_ms if result.where == Where.LOCAL else result.predicted_remote_ms
    if predicted is None or result.reason.startswith("fallback"):
        # A fallback's latency is the remote wait plus the local run: judge the remote prediction by it.
        predicted = result.predicted_remote_ms
    if predicted is None:
        return None
    return (predicted <= deadline_ms) != (result.latency_ms <= deadline_ms)


# A policy's figures: numbers, None where there is nothing to measure, and `device_speed`, one per pass.
Metrics = dict[str, Any]


def summarize(frames: list[Frame], deadline_ms: float) -> Metrics:
    lat = np.array([f.latency_ms for f in frames])
    correct = sum(f.score.words_correct for f in frames)
    total = sum(f.score.words_total for f in frames)
    judged = [f.mispredicted for f in frames if f.mispredicted is not None]
    return {
        "mean_ms": round(float(lat.mean()), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "miss_rate": round(float((lat > deadline_ms).mean()), 3),
        "accuracy": round(correct / total, 3) if total else 1.0,
        "uplink_bytes": int(sum(f.uplink_bytes for f in frames)),
        "remote_share": round(sum(f.where == Where.REMOTE for f in frames) / len(frames), 3),
        "mispredict_rate": round(sum(judged) / len(judged), 3) if judged else None,
        "mj_per_frame": round(sum(f.energy_mj for f in frames) / len(frames), 1),
        "radio_mj_per_frame": round(sum(f.radio_mj for f in frames) / len(frames), 1),
    }


def answered(f: Frame) -> bool:
    """A frame some path answered: only such a frame is a choice an oracle could make."""
    return f.where != Where.NONE and math.isfinite(f.latency_ms)


def oracle(
    local: list[Frame], remote: list[Frame], deadline_ms: float, objective: str, *others: list[Frame],
    expected: Callable[[Frame], float] = lambda f: 0.0,
) -> list[Frame]:  # fmt: skip
    """The best path per frame in hindsight: the device (`local`), the server (`remote`) or any frame of
    `others` (the other device variants' runs, and the policies' own runs: whatever a policy did with a
    frame, at whatever quality, raced or probed, the oracle may do too, so no policy can beat it).
    `latency`: the fastest; `accuracy`: the most words read in time, else the fastest; `timing`: among
    those in time, the one with the best `expected` accuracy (its path's held-out accuracy), else the fastest.

    `timing` knows each frame's time on every path but not its words: it has the held-out accuracies the
    policy has, so its gap to `accuracy` is what no policy that cannot see a frame's answers could close.
    """
    chosen = []
    for i, (lf, rf) in enumerate(zip(local, remote, strict=True)):
        paths = [f for f in (lf, *(run[i] for run in others), rf) if answered(f)] or [lf]
        faster = min(paths, key=lambda f: f.latency_ms)  # a tie goes to the device, listed first
        in_time = [f for f in paths if f.latency_ms <= deadline_ms]
        if objective == "latency" or not in_time:
            chosen.append(faster)
        elif objective == "timing":
            chosen.append(max(in_time, key=lambda f: (expected(f), -f.latency_ms)))
        else:
            chosen.append(max(in_time, key=lambda f: (f.score.words_correct, -f.latency_ms)))
    return chosen


def sent_on_schedule(
    f: Frame, i: int, interval_s: float, radio: RadioProfile, last_end: float | None
) -> tuple[Frame, float]:
    """Calibration frame `f` sent as frame i of a schedule (at i x interval, on the air until its answer),
    charged what it adds to a radio whose last transfer ended at `last_end`; and the radio's new last end."""
    start = i * interval_s
    end = start + min(f.latency_ms, CALIBRATION_PATIENCE_S * 1000) / 1000
    radio_mj = charge(radio, last_end, start, end, f.uplink_bytes, 0).total_mj
    sent = replace(f, energy_mj=f.energy_mj - f.radio_mj + radio_mj, radio_mj=radio_mj)
    return sent, end if last_end is None else max(last_end, end)


def recharged(frames: list[Frame], interval_s: float, radio: RadioProfile) -> list[Frame]:
    """An oracle's frames, their radio energy charged again on the schedule it chose.

    A frame it sends comes from the calibration, where each frame went alone; on the oracle's schedule
    it pays the radio what it adds to the frames sent before it (`sent_on_schedule`). Frames on the
    device keep their energy.
    """
    out, last_end = [], None
    for i, f in enumerate(frames):
        if f.where == Where.REMOTE and f.uplink_bytes:
            f, last_end = sent_on_schedule(f, i, interval_s, radio, last_end)
        out.append(f)
    return out


def energy_oracle(
    local: list[Frame], remote: list[Frame], deadline_ms: float, interval_s: float, radio: RadioProfile,
    *others: list[Frame],
) -> list[Frame]:  # fmt: skip
    """The least energy in hindsight: per frame any path of `local`, `remote` or `others` (the device variants'
    runs and the policies' own: every choice a policy had), among those in time (the fastest when none is),
    the whole schedule cheapest. A frame that sent bytes pays the radio on the schedule chosen; one that sent
    none keeps its energy.

    Not frame by frame: what a frame sent costs depends on when the last one went (the radio's tail), so
    the choice is a shortest path over (frame, when the radio's last transfer ended): exact, and quadratic
    in the frames at most (one state per frame sent).
    """
    # Per end of the radio's last transfer (None: nothing sent yet), the cheapest schedule so far and its energy.
    best: dict[float | None, tuple[float, list[Frame]]] = {None: (0.0, [])}
    for i, lf in enumerate(local):
        paths = [f for f in (lf, *(run[i] for run in others), remote[i]) if answered(f)] or [lf]
        in_time = [f for f in paths if f.latency_ms <= deadline_ms] or [min(paths, key=lambda f: f.latency_ms)]
        devices = [f for f in in_time if not f.uplink_bytes]
        device = min(devices, key=lambda f: f.energy_mj) if devices else None  # the radio's state stays
        sent_ones = [f for f in in_time if f.uplink_bytes]
        moves: list[tuple[float | None, float, list[Frame]]] = []
        for last_end, (energy, chosen) in best.items():
            if device is not None:
                moves.append((last_end, energy + device.energy_mj, [*chosen, device]))
            for f in sent_ones:
                sent, new_end = sent_on_schedule(f, i, interval_s, radio, last_end)
                moves.append((new_end, energy + sent.energy_mj, [*chosen, sent]))
        step: dict[float | None, tuple[float, list[Frame]]] = {}
        for last_end, energy, chosen in moves:  # per state, the cheapest way there
            if last_end not in step or energy < step[last_end][0]:
                step[last_end] = (energy, chosen)
        best = step
    return min(best.values(), key=lambda b: b[0])[1]


def expected_of(measured: dict[Where | str, float]) -> Callable[[Frame], float]:
    """A frame's held-out accuracy by the path and variant that answered it (what `oracle-timing` may know)."""

    def of(f: Frame) -> float:
        return measured[Where.REMOTE] if f.where == Where.REMOTE else measured.get(f.variant, measured[Where.LOCAL])

    return of


def device_speed(run: list[Frame], references: list[list[Frame]]) -> float | None:
    """How many times as long the device model took in `run` as in the reference runs, on the same frames.

    Only frames `run` answered on the device alone (nothing sent: no encoding, no call beside it), with the
    variant the reference ran (adaptive-accuracy's larger ones take longer by design), count,
    so the ratio measures the machine, not the policy: on this shared VM the same frames run up to 15 %
    slower or faster from one 11-second run to the next, more than most differences between policies.
    The median over frames, so that one hiccup does not make a run look slow; None with under 5 frames.
    """
    ratios = []
    for i, f in enumerate(run):
        reference = [ms for r in references if (ms := r[i].device_ms) and r[i].variant == f.variant]
        if f.device_ms and f.uplink_bytes == 0 and reference:
            ratios.append(f.device_ms / float(np.mean(reference)))
    return float(np.median(ratios)) if len(ratios) >= 5 else None


def references(one: dict[str, list[Frame]], name: str) -> list[list[Frame]]:
    """The runs of `name` in one pass, frame by frame: always-local ran twice, and each oracle on each of them."""
    if name == "always-local":
        return [one["always-local"], one["always-local-again"]]
    count = len(one["always-local"])
    return [one[name][k : k + count] for k in range(0, len(one[name]), count)]


def paired_differences(
    policy: list[Frame], reference_runs: list[list[Frame]], value: Callable[[Frame], float]
) -> list[float]:
    """Per frame, `value` under `policy` minus its mean over the reference runs of the same frames."""
    return [value(f) - float(np.mean([value(run[i]) for run in reference_runs])) for i, f in enumerate(policy)]


def two_standard_errors(differences: list[float]) -> float:
    """Two standard errors of the mean of `differences` (about a 95 % interval); 0 with fewer than two."""
    if len(differences) < 2:
        return 0.0
    return 2 * float(np.std(differences, ddof=1)) / math.sqrt(len(differences))


# The runs of one pass, in the order of odd passes; even passes run them in reverse, so that a machine
# slowing down or speeding up over minutes (these are shared machines) weighs on every run alike. The
# adaptive runs sit between two always-local runs, the static policy they must beat on most links: the
# pair brackets them in time (a drift over the pass cancels in their average), and how far the pair
# differ is the measured noise floor of a comparison on this machine.
# The runs whose frames are the policies' own choices: the oracles may choose each of them too.
PLAYED = ("always-remote", "adaptive-latency", "adaptive-accuracy", "adaptive-energy")
RUNS = ("always-local", "adaptive-latency", "adaptive-accuracy", "adaptive-energy", "always-local-again",
        "calibration-remote", "always-remote", "calibration-device-ladder")  # fmt: skip


def path_accuracy(
    frames: list[np.ndarray], truth: GroundTruth, target: str, args: argparse.Namespace
) -> dict[Where | str, float]:
    """Each path's word accuracy on `frames`, measured once (it does not depend on the link): the
    default device variant's (Where.LOCAL), the server's (Where.REMOTE) and each other device variant's.

    The caller passes held-out frames: a policy told the accuracy of the frames it is scored on
    would be reading the answer key.
    """
    accuracy: dict[Where | str, float] = {}
    ladder = ModelRepository(args.models_dir).spec(args.model).device_ladder
    paths: list[tuple[Where | str, str | Policy]] = [(Where.LOCAL, "always-local"), (Where.REMOTE, "always-remote")]
    paths += [(variant, AlwaysLocal(device_variant=variant)) for variant in ladder[1:]]
    for where, policy in paths:
        with OffloadClient(
            target, model=args.model, policy=policy, deadline_ms=60_000, models_dir=args.models_dir,
            jpeg_quality=args.jpeg_quality,
        ) as oc:  # fmt: skip
            results = [oc.infer(f) for f in frames]
        scores = [score_frame(t.words, r.boxes, r.texts) for r, t in zip(results, truth.frames, strict=True)]
        accuracy[where] = sum(s.words_correct for s in scores) / max(1, sum(s.words_total for s in scores))
    return accuracy


Summary = dict[str, Metrics]


def linkem_command(
    upstream: str, up: Path, down: Path, delay_ms: float, outages: Sequence[str] = (), offset_s: float = 0.0
) -> list[str]:
    """`offload linkem` between a client and `upstream`, replaying a Mahimahi trace pair (a free port) from
    `offset_s` seconds into it; `outages` count from the emulator's start."""
    return [str(Path(sys.executable).parent / "offload"), "linkem", "--listen", "127.0.0.1:0",
            "--upstream", upstream, "--uplink", str(up), "--downlink", str(down), "--delay-ms", str(delay_ms),
            "--start-at", str(offset_s)] + [f"--outage={o}" for o in shifted(outages, offset_s)]  # fmt: skip


def shifted(outages: Sequence[str], offset_s: float) -> list[str]:
    """Outages given from the run's start, on the emulator's clock, which starts `offset_s` into the trace."""
    return [f"{o.start_s + offset_s}+{o.length_s}" for o in map(Outage.parse, outages)]


# A trace's rates, with the energy model's Wi-Fi radio (`--wifi`): what the same link would cost on Wi-Fi.
WIFI_SUFFIX = "+wifi"


def radio_of(trace: str) -> str:
    """The energy model's radio for a trace: Verizon's EVDO is 3G; the others are LTE; `--wifi` runs Wi-Fi."""
    if trace.endswith(WIFI_SUFFIX):
        return "wifi"
    return "3g" if "EVDO" in trace else "lte"


def run_trace(
    name: str, up: Path, down: Path, args: argparse.Namespace, target: tuple[str, int], frames: list[np.ndarray],
    truth: GroundTruth, progress: Progress, measured: dict[Where | str, float],
) -> tuple[Summary, dict[str, list[Frame]], dict[str, list[Frame]], NoiseFloor]:  # fmt: skip
    """Summaries per policy, every frame per run (all passes pooled), the first pass alone (for the plot),
    and the noise floor (how far the two always-local runs differ)."""
    deadline = 1000.0 / args.fps
    linkem = linkem_command(f"{target[0]}:{target[1]}", up, down, args.delay_ms, args.outage, args.trace_offset)
    count = len(frames)
    ladder = ModelRepository(args.models_dir).spec(args.model).device_ladder  # the device variants, fastest first

    def through_link(label: str, policy: str | Policy | None, judge: bool = False) -> list[Frame]:
        """One run through a fresh emulator; `policy` None: the per-frame calibration of the remote path."""
        # The emulator runs beside the server, on the server's core: the device's core is the app's alone.
        if policy is None:
            queue = LinkConfig.queue_packets  # the emulator's default, as in every other run
            outages = shifted(args.outage, args.trace_offset)
            config = config_from_args(str(up), str(down), args.delay_ms, queue, outages, "stall")
            return calibrate_remote(progress, f"{name}: {label}", config, target, frames, truth, args)
        with child_process(linkem, LINKEM_READY, SERVER_CPUS) as link:
            t0 = time.monotonic() + LEAD_S  # the emulator's trace clock started just now
            with OffloadClient(
                f"127.0.0.1:{link.group(1)}", model=args.model, policy=policy, deadline_ms=deadline,
                models_dir=args.models_dir, radio=radio_of(name),
                device_slowdown=args.device_slowdown, jpeg_quality=args.jpeg_quality,
            ) as oc:  # fmt: skip

                def step(i: int) -> Frame:
                    result = oc.infer(frames[i])
                    return frame_of(result, truth, i, misprediction(result, deadline) if judge else None)

                return pace(progress, f"{name}: {label}", count, args.frame_interval, step, t0)

    passes: list[dict[str, list[Frame]]] = []
    for n in range(args.passes):
        runs: dict[str, list[Frame]] = {}
        for run in RUNS if n % 2 == 0 else RUNS[::-1]:
            label = f"{run} (pass {n + 1}/{args.passes})"
            if run.startswith("always-local"):  # also the oracle's local calibration: it sends nothing
                runs[run] = through_link(label, "always-local")
            elif run == "calibration-device-ladder":  # the other device variants, for the oracle to choose from
                for variant in ladder[1:]:
                    runs[f"calibration-{variant}"] = through_link(f"{variant} {label}", AlwaysLocal(variant))
            elif run == "calibration-remote":  # every frame remote, at its own time, with no deadline
                runs[run] = through_link(label, None)
            elif run == "always-remote":
                runs[run] = through_link(label, run, judge=True)
            else:
                policy = Adaptive(objective=run.removeprefix("adaptive-"), accuracy=measured)
                runs[run] = through_link(label, policy, judge=True)
        radio, others = RADIOS[radio_of(name)], [runs[f"calibration-{variant}"] for variant in ladder[1:]]
        others += [runs[played] for played in PLAYED]  # every choice the policies made is the oracles' too
        for objective in ("latency", "accuracy", "timing"):  # one oracle per local run, pooled like the runs
            runs[f"oracle-{objective}"] = [
                f for local in ("always-local", "always-local-again")
                for f in recharged(oracle(runs[local], runs["calibration-remote"], deadline, objective, *others,
                                          expected=expected_of(measured)), args.frame_interval, radio)
            ]  # fmt: skip
        runs["oracle-energy"] = [
            f for local in ("always-local", "always-local-again")
            for f in energy_oracle(runs[local], runs["calibration-remote"], deadline, args.frame_interval, radio,
                                   *others)
        ]  # fmt: skip
        passes.append(runs)
    pooled = {run: [f for one in passes for f in one[run]] for run in passes[0]}
    local_runs = [[f.latency_ms for one in passes for f in one[run]] for run in ("always-local", "always-local-again")]
    pooled["always-local"] += pooled.pop("always-local-again")
    summary = {p: summarize(pooled[p], deadline) for p in POLICIES}
    # What the machine's drift did to each adaptive run's device.
    for name in ("adaptive-latency", "adaptive-accuracy", "adaptive-energy"):
        speeds = [device_speed(one[name], references(one, "always-local")) for one in passes]
        summary[name]["device_speed"] = [None if v is None else round(v, 3) for v in speeds]
    # The noise of single frames: the same frames, the same policy, run twice. It is the machine's,
    # not a policy's, so an erratic policy cannot widen the band that judges it.
    best = min(("always-local", "always-remote"), key=lambda name: summary[name]["mean_ms"])
    again = [[one["always-local-again"]] for one in passes]
    latency = [
        d for one, ref in zip(passes, again, strict=True)
        for d in paired_differences(one["always-local"], ref, lambda f: f.latency_ms)
    ]  # fmt: skip
    misses = [
        d for one, ref in zip(passes, again, strict=True)
        for d in paired_differences(one["always-local"], ref, lambda f: 100.0 * (f.latency_ms > deadline))
    ]  # fmt: skip
    local_mj = [
        float(np.mean([f.energy_mj for one in passes for f in one[run]]))
        for run in ("always-local", "always-local-again")
    ]
    floor = replace(
        noise_floor(local_runs[0], local_runs[1], deadline),
        latency_band=two_standard_errors(latency) / summary[best]["mean_ms"],
        miss_band=two_standard_errors(misses),
        passes=args.passes,
        energy_share=abs(local_mj[0] - local_mj[1]) / min(local_mj),
    )
    return summary, pooled, passes[0], floor


@dataclass(frozen=True)
class NoiseFloor:
    """What one run of the benchmark on this machine can resolve.

    `mean_share` and `miss_points`: how far the two always-local runs (the same frames, the same
    policy) differ in mean latency (a share of the lower) and in miss rate (points), the drift from
    run to run. `latency_band` and `miss_band`: two standard errors of the per-frame differences
    between those two runs (latency as a share of the better static policy's mean; misses in points),
    the noise of single frames. `passes`: how many passes the figures pool (the bands shrink as
    one over its square root).
    """

    mean_share: float
    miss_points: float
    latency_band: float = 0.0
    miss_band: float = 0.0
    passes: int = 1
    # How far the two always-local runs differ in mJ per frame (a share of the lower): the device's energy
    # drifts with the machine's speed.
    energy_share: float = 0.0

    @property
    def latency(self) -> float:
        return max(self.mean_share, self.latency_band)

    @property
    def misses(self) -> float:
        return max(self.miss_points, self.miss_band)


def noise_floor(first: list[float], second: list[float], deadline_ms: float) -> NoiseFloor:
    a, b = float(np.mean(first)), float(np.mean(second))
    misses = [float((np.array(run) > deadline_ms).mean()) for run in (first, second)]
    return NoiseFloor(abs(a - b) / min(a, b), abs(misses[0] - misses[1]) * 100)


def against_bound(ratio: float, noise: float) -> str | None:
    """A policy's ratio to its oracle under 1.00: never a win. Within the run's noise it says so; beyond it,
    the oracle or the measurement is wrong. None at 1.00 or above (then the target's own verdict)."""
    if ratio >= 1.0:
        return None
    return "within noise (an oracle is a bound)" if 1.0 - ratio <= noise else "oracle beaten: a measurement is wrong"


def verdict(value: float, target: float, noise: float, passes: int = 1) -> str:
    """'met', 'NOT met', or, when the miss is smaller than the noise, 'unresolved: N passes needed'.

    A miss inside the noise is not called a pass: the run cannot tell. The noise of a mean shrinks as
    one over the square root of the frames pooled, so `passes` x (noise / miss)^2 passes resolve it.
    """
    if value <= target:
        return "met"
    if value > target + noise:
        return "NOT met"
    needed = math.ceil(passes * (noise / (value - target)) ** 2)
    return f"unresolved: {needed} passes needed"


def plot_trace(name: str, up: Path, runs: dict[str, list[Frame]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_energy, ax_rate) = plt.subplots(
        3, 1, figsize=(11, 8.5), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    t = np.arange(len(runs["always-local"])) * args.frame_interval
    styles = {"always-local": ("tab:blue", "-"), "always-remote": ("tab:orange", "-"), "oracle-latency": ("grey", ":")}
    for policy, (color, ls) in styles.items():
        frames = runs[policy][: len(t)]  # the oracle of the first always-local run
        ax.plot(t, [f.latency_ms for f in frames], ls, color=color, alpha=0.5, lw=1, label=policy)
    for policy, marker in (("adaptive-latency", "o"), ("adaptive-accuracy", "D")):
        adaptive = runs[policy]
        for where, color in ((Where.LOCAL, "tab:blue"), (Where.REMOTE, "tab:orange")):
            idx = [i for i, f in enumerate(adaptive) if f.where == where]
            ax.scatter(t[idx], [adaptive[i].latency_ms for i in idx], color=color, s=24, marker=marker,
                       edgecolors="black", zorder=3, label=f"{policy}: {where} ({len(idx)})")  # fmt: skip
    ax.axhline(1000 / args.fps, color="red", lw=0.8, ls="--", label=f"deadline {1000 / args.fps:.0f} ms")
    ax.set_ylabel("latency (ms)")
    title = f"{name}: latency per frame (device slowdown ×{args.device_slowdown}, delay {args.delay_ms} ms)"
    ax.set_title(title + (f", pass 1 of {args.passes}" if args.passes > 1 else ""))
    ax.grid(alpha=0.3)
    # Frame i meets the trace LEAD_S + i·interval seconds in: the rate and the outages are drawn on the frames' clock.
    trace = Trace.load(up)
    edges = np.arange(0, t[-1] * 1000 + 1000, 500)
    first_ms = (args.trace_offset + LEAD_S) * 1000
    rate = [trace.opportunities(first_ms + a, first_ms + a + 500) * 1500 * 8 / 0.5 / 1e6 for a in edges]
    for outage in (Outage.parse(o) for o in args.outage):
        for axis in (ax, ax_rate):
            start = outage.start_s - LEAD_S
            axis.axvspan(
                start, start + outage.length_s, color="grey", alpha=0.2, label="outage" if axis is ax else None
            )
    plot_energy(ax_energy, t, runs, radio_of(name))
    ax_rate.step(edges / 1000, rate, where="post", color="tab:green")
    ax.legend(fontsize=8, ncol=2)
    ax_rate.set_ylabel("uplink Mbit/s")
    ax_rate.set_xlabel("time (s)")
    ax_rate.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_energy(ax: Any, t: np.ndarray, runs: dict[str, list[Frame]], radio: str) -> None:
    """Energy per frame over the trace: the static policies as lines, adaptive-energy's frames coloured by path."""
    for policy, color in (("always-local", "tab:blue"), ("always-remote", "tab:orange"), ("oracle-energy", "grey")):
        frames = runs[policy][: len(t)]
        ax.plot(t, [f.energy_mj for f in frames], "-" if policy.startswith("always") else ":", color=color, alpha=0.5,
                lw=1, label=f"{policy}: {np.mean([f.energy_mj for f in frames]):.0f} mJ a frame")  # fmt: skip
    adaptive = runs["adaptive-energy"]
    for where, color in ((Where.LOCAL, "tab:blue"), (Where.REMOTE, "tab:orange")):
        idx = [i for i, f in enumerate(adaptive) if f.where == where]
        ax.scatter(t[idx], [adaptive[i].energy_mj for i in idx], color=color, s=24, marker="s", edgecolors="black",
                   zorder=3, label=f"adaptive-energy: {where} ({len(idx)})")  # fmt: skip
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")  # a wake-up's 12 J and a frame's 0.1 J on one axis
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(f"energy (mJ), {radio} radio")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)


def markdown(results: dict[str, Summary], noise: dict[str, NoiseFloor]) -> str:
    cols = ("mean_ms", "p95_ms", "miss_rate", "accuracy", "uplink_bytes", "remote_share", "mispredict_rate",
            "mj_per_frame")  # fmt: skip
    lines = ["| trace | policy | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for trace, by_policy in results.items():
        for policy, m in by_policy.items():
            cells = ["-" if m.get(c) is None else str(m[c]) for c in cols]
            lines.append(f"| {trace} | {policy} | " + " | ".join(cells) + " |")
    lines.append("")
    for trace, by in results.items():
        lines.append(f"- {trace}:")
        lines.extend(f"  - {line}" for line in target_lines(by, noise[trace]))
        lines.extend(f"  - {line}" for line in energy_lines(by, noise[trace], radio_of(trace)))
    lines.append(f"- {below_local(results, noise)}")
    return "\n".join(lines)


def targets(by: Summary, floor: NoiseFloor) -> dict[str, dict[str, Any]]:
    """Each target of one trace: its measured value, its goal and the verdict (noise-aware where it can be)."""
    latency, accuracy = by["adaptive-latency"], by["adaptive-accuracy"]
    best_static = min(by["always-local"]["mean_ms"], by["always-remote"]["mean_ms"])
    ratio, over_static = latency["mean_ms"] / by["oracle-latency"]["mean_ms"], latency["mean_ms"] / best_static - 1
    acc_gap = (by["oracle-accuracy"]["accuracy"] - accuracy["accuracy"]) * 100
    # oracle-timing knows each frame's times, not its words: the bound for a policy that cannot see answers.
    timing_gap = (by["oracle-timing"]["accuracy"] - accuracy["accuracy"]) * 100
    miss_gap = (accuracy["miss_rate"] - by["oracle-accuracy"]["miss_rate"]) * 100
    static_noise, miss_noise = (floor.latency, floor.passes), (floor.misses, floor.passes)
    rows = [
        ("adaptive-latency / oracle-latency", round(ratio, 3), "<= 1.15",
         against_bound(ratio, floor.latency) or verdict(ratio, 1.15, 0.0)),
        ("adaptive-latency vs the better static policy", round(over_static, 4), "<= 0",
         verdict(over_static, 0.0, *static_noise)),
        ("adaptive-accuracy words below oracle-accuracy (points)", round(acc_gap, 1), "<= 3",
         verdict(acc_gap, 3.0, 0.0)),
        ("adaptive-accuracy words below oracle-timing (points)", round(timing_gap, 1), "<= 3",
         verdict(timing_gap, 3.0, 0.0)),
        ("adaptive-accuracy misses vs oracle-accuracy (points)", round(miss_gap, 1), "<= +3",
         verdict(miss_gap, 3.0, *miss_noise)),
    ]  # fmt: skip
    return {name: {"value": value, "goal": goal, "verdict": judged} for name, value, goal, judged in rows}


def energy_targets(by: Summary, floor: NoiseFloor, radio: str) -> dict[str, dict[str, Any]]:
    """The energy targets of one trace: adaptive-energy against the energy oracle, its misses against
    adaptive-latency's, and (on LTE) its saving against always-remote. The device's energy drifts with the
    machine's speed, as its latency does: the ratio is judged against the latency noise floor."""
    energy = by["adaptive-energy"]
    ratio = energy["mj_per_frame"] / by["oracle-energy"]["mj_per_frame"]
    misses = (energy["miss_rate"] - by["adaptive-latency"]["miss_rate"]) * 100
    rows = [
        ("adaptive-energy / oracle-energy (mJ per frame)", round(ratio, 3), "<= 1.10",
         against_bound(ratio, max(floor.latency, floor.energy_share))
         or verdict(ratio, 1.10, floor.latency, floor.passes)),
        ("adaptive-energy misses vs adaptive-latency (points)", round(misses, 1), "<= +3",
         verdict(misses, 3.0, floor.misses, floor.passes)),
    ]  # fmt: skip
    if radio == "lte":
        saved = 1 - energy["mj_per_frame"] / by["always-remote"]["mj_per_frame"]
        rows.append(("adaptive-energy saves vs always-remote", round(saved, 3), ">= 0.40", verdict(-saved, -0.40, 0.0)))
    return {name: {"value": value, "goal": goal, "verdict": judged} for name, value, goal, judged in rows}


def energy_lines(by: Summary, floor: NoiseFloor, radio: str) -> list[str]:
    """The energy targets, one line: joules per frame and each verdict."""
    judged = energy_targets(by, floor, radio)
    names = ("adaptive-energy", "oracle-energy", "always-local", "always-remote")
    mj = {name: by[name]["mj_per_frame"] for name in names}
    ratio, misses, *saved = judged.values()
    line = (
        f"energy ({radio} radio): adaptive-energy {mj['adaptive-energy']} mJ a frame = {ratio['value']:.2f}× "
        f"oracle-energy's {mj['oracle-energy']} (target ≤ 1.10: {ratio['verdict']}), misses {misses['value']:+.1f} "
        f"points vs adaptive-latency (target ≤ +3: {misses['verdict']}); always-local {mj['always-local']}, "
        f"always-remote {mj['always-remote']}"
    )
    if saved:
        line += f"; {saved[0]['value'] * 100:.0f} % below always-remote (target ≥ 40 %: {saved[0]['verdict']})"
    return [line]


def below_local(results: dict[str, Summary], noise: dict[str, NoiseFloor]) -> str:
    """The cross-trace target: adaptive-energy spends less than always-local on at least one trace, by more
    than the run's own noise (the two always-local runs' spread in mJ, or in latency, whichever is wider),
    and by sending some frames: with none sent it ran what always-local ran, and any difference is noise."""
    below: list[str] = []
    within: list[str] = []
    for trace, by in results.items():
        adaptive, local = by["adaptive-energy"]["mj_per_frame"], by["always-local"]["mj_per_frame"]
        if adaptive >= local:
            continue
        beyond = adaptive < local * (1 - max(noise[trace].latency, noise[trace].energy_share))
        (below if beyond and by["adaptive-energy"]["remote_share"] > 0 else within).append(trace)
    judged = "met" if below else "unresolved" if within else "NOT met"
    line = f"adaptive-energy below always-local beyond the noise on: {', '.join(below) or 'no trace'}"
    if within:
        line += f"; below within the noise (or by running the same path) on: {', '.join(within)}"
    return f"{line} (target: at least one: {judged})"


def target_lines(by: Summary, floor: NoiseFloor) -> list[str]:
    """The noise floor, the adaptive runs' device speed, then each target's figures and verdict."""
    latency, accuracy = by["adaptive-latency"], by["adaptive-accuracy"]
    best_static = min(by["always-local"]["mean_ms"], by["always-remote"]["mean_ms"])
    judged = {name: t["verdict"] for name, t in targets(by, floor).items()}
    ratio, over_static = latency["mean_ms"] / by["oracle-latency"]["mean_ms"], latency["mean_ms"] / best_static - 1
    acc_gap = by["oracle-accuracy"]["accuracy"] - accuracy["accuracy"]
    timing_gap = by["oracle-timing"]["accuracy"] - accuracy["accuracy"]
    miss_gap = (accuracy["miss_rate"] - by["oracle-accuracy"]["miss_rate"]) * 100
    return [
        f"noise floor: the two always-local runs differ by {floor.mean_share * 100:.1f}% in mean latency and "
        f"{floor.miss_points:.1f} points in miss rate; single frames' noise (two standard errors of their per-frame "
        f"differences) is ±{floor.latency_band * 100:.1f}% in mean latency and ±{floor.miss_band:.1f} points "
        f"in miss rate over {floor.passes} pass(es)",
        f"device speed vs always-local on the frames answered on the device alone, per pass: adaptive-latency "
        f"{speeds(latency)}, adaptive-accuracy {speeds(accuracy)}",
        f"adaptive-latency mean {latency['mean_ms']} ms = {ratio:.2f}× oracle-latency (target ≤ 1.15: "
        f"{judged['adaptive-latency / oracle-latency']}), {over_static * 100:+.1f}% vs the better static policy "
        f"({best_static} ms) (target ≤ 0: {judged['adaptive-latency vs the better static policy']})",
        f"adaptive-accuracy {acc_gap * 100:+.1f} points below oracle-accuracy in accuracy (target ≤ 3: "
        f"{judged['adaptive-accuracy words below oracle-accuracy (points)']}), miss rate {accuracy['miss_rate']}: "
        f"{miss_gap:+.1f} points from oracle-accuracy's {by['oracle-accuracy']['miss_rate']} "
        f"(target ≤ +3: {judged['adaptive-accuracy misses vs oracle-accuracy (points)']})",
        f"oracle-timing (each frame's time on every path, not its words) reads {by['oracle-timing']['accuracy']}: "
        f"adaptive-accuracy {timing_gap * 100:+.1f} points below it (target ≤ 3: "
        f"{judged['adaptive-accuracy words below oracle-timing (points)']}), oracle-accuracy "
        f"{(by['oracle-accuracy']['accuracy'] - by['oracle-timing']['accuracy']) * 100:+.1f} above it "
        "(what knowing each frame's answers adds)",
    ]


def predictor_spread(runs: dict[str, list[Frame]]) -> dict[str, dict[str, float | int]]:
    """How well the adaptive policies predicted each frame's time, per path, against the plain average.

    On the frames a path answered alone (no race, no fallback): the mean absolute residual of the policy's
    prediction made before the frame, beside the mean absolute deviation of the times from their own mean
    (what predicting every frame as the average frame would leave). A ratio below 1 is spread explained.
    """
    out: dict[str, dict[str, float | int]] = {}
    for path, where in (("device", Where.LOCAL), ("server", Where.REMOTE)):
        pairs = []
        for run in ("adaptive-latency", "adaptive-accuracy"):
            for f in runs.get(run, []):
                predicted = f.predicted_local_ms if where == Where.LOCAL else f.predicted_remote_ms
                alone = not f.reason.startswith("fallback") and "racing" not in f.reason
                if f.where == where and predicted is not None and alone:
                    pairs.append((f.latency_ms, predicted))
        if len(pairs) < 3:
            continue
        times = np.array([t for t, _ in pairs])
        residual = float(np.mean([abs(t - p) for t, p in pairs]))
        plain = float(np.mean(np.abs(times - times.mean())))
        out[path] = {"frames": len(pairs), "residual_ms": round(residual, 1), "average_spread_ms": round(plain, 1),
                     "ratio": round(residual / plain, 2) if plain else 0.0}  # fmt: skip
    return out


def floor_of(settings: dict[str, Any], trace: str) -> NoiseFloor:
    """A trace's noise floor as `policy_settings.json` recorded it."""
    return NoiseFloor(**settings["noise_floor"][trace], passes=settings["passes"])


def speeds(metrics: Metrics) -> str:
    """'×1.15 / ×0.98' (one per pass; '?' where too few frames ran on the device alone)."""
    return " / ".join("?" if v is None else f"×{v:.2f}" for v in metrics["device_speed"])


def _frame_record(f: Frame) -> dict[str, object]:
    record: dict[str, object] = {
        "ms": round(f.latency_ms, 1) if math.isfinite(f.latency_ms) else None,  # None: never answered
        "where": f.where.value,
        "reason": f.reason,
        "words": f"{f.score.words_correct}/{f.score.words_total}",
        "variant": f.variant,
        "mj": round(f.energy_mj, 1),
    }
    optional = (("predicted_local_ms", f.predicted_local_ms), ("predicted_remote_ms", f.predicted_remote_ms),
                ("device_ms", f.device_ms))  # fmt: skip
    for key, value in optional:
        if value is not None:
            record[key] = round(value, 1)
    return record


def trace_pairs(args: argparse.Namespace) -> list[tuple[str, Path, Path]]:
    pairs = []
    if args.uplink and args.downlink:
        pairs.append((args.uplink.stem, args.uplink, args.downlink))
    if not args.only_given:
        for up in sorted(args.traces.glob("*.up")):
            down = up.with_suffix(".down")
            if down.exists():
                pairs.append((up.stem, up, down))
    if not pairs:
        raise SystemExit(f"no trace pairs in {args.traces}; give --uplink FILE --downlink FILE")
    for name in args.wifi:
        found = [pair for pair in pairs if pair[0] == name]
        if not found:
            raise SystemExit(f"--wifi {name}: no such trace; use one of {', '.join(p[0] for p in pairs)}")
        pairs.append((name + WIFI_SUFFIX, *found[0][1:]))
    return pairs


def frame_size(text: str) -> tuple[int, int]:
    """'960x540' -> (960, 540)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame size must look like 960x540, not {text!r}") from None
    if width < 64 or height < 64:
        raise argparse.ArgumentTypeError(f"frame size {text} is too small (at least 64x64)")
    return width, height


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=Path, default=TRACES, help="folder of Mahimahi .up/.down pairs")
    parser.add_argument("--uplink", type=Path, help="an extra trace pair: uplink file")
    parser.add_argument("--downlink", type=Path, help="an extra trace pair: downlink file")
    parser.add_argument("--only-given", action="store_true", help="run only the --uplink/--downlink pair")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate; the deadline is one frame time")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of trace each run covers")
    parser.add_argument(
        "--passes", type=int, default=1,
        help="run every policy this many times over the same stretch, in alternating order, and pool the frames",
    )  # fmt: skip
    parser.add_argument("--frame-interval", type=float, default=1.0, help="seconds between frames on the trace")
    parser.add_argument("--model", choices=sorted(MODEL_STYLES), default="text-spotter", help="the model offloaded")
    parser.add_argument(
        "--style", choices=STYLES,
        help="the frames: real (photographs, words down to 8 px), street (the synthetic scene of earlier runs), "
        "faces (real faces in street frames); default: the model's (real, or faces for the face detector)",
    )  # fmt: skip
    parser.add_argument(
        "--frame-size", type=frame_size, metavar="WxH",
        help="size of the rendered frames (default: the style's, 640x480 or 640x360); the device detects at 480 px",
    )  # fmt: skip
    parser.add_argument(
        "--jpeg-quality", type=int, default=90,
        help="JPEG quality of always-remote and of the oracle's remote path (adaptive picks its own from a ladder)",
    )  # fmt: skip
    parser.add_argument("--device-slowdown", type=float, default=3.0, help="device model runs ×X slower")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one-way propagation delay")
    parser.add_argument(
        "--server-threads", type=int, default=1,
        help="server intra-op threads; 1 gives client and server a core each, as on two machines",
    )  # fmt: skip
    parser.add_argument("--outage", action="append", default=[], help="START+LENGTH seconds, repeatable")
    parser.add_argument(
        "--wifi", action="append", default=[], metavar="TRACE",
        help="also run this trace (its name, e.g. TMobile-LTE-short) with the energy model's Wi-Fi radio: "
        "the same rates, Wi-Fi's power; repeatable",
    )  # fmt: skip
    confirming, tuning = CONFIRMING["policy"], TUNING["policy"][0]
    parser.add_argument(
        "--seed", type=int, default=tuning.seed,
        help=f"the frames' seed: {tuning.seed} tunes the policy; quote runs on {confirming.seed} (bench/seeds.py)",
    )  # fmt: skip
    parser.add_argument(
        "--trace-offset", type=float, default=tuning.trace_offset,
        help=f"seconds into every trace where the runs begin (confirming runs: {confirming.trace_offset:g})",
    )  # fmt: skip
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--out", type=Path, help="default: bench/results (another model: bench/results/MODEL)")
    args = parser.parse_args()
    args.style = args.style or MODEL_STYLES[args.model]
    args.out = args.out or ROOT / "bench" / "results" / ("" if args.model == "text-spotter" else args.model)
    args.frame_size = args.frame_size or DEFAULT_SIZE[args.style]

    args.out.mkdir(parents=True, exist_ok=True)
    count = max(2, int(args.duration / args.frame_interval))
    frames, truth = render_frames(args.seed, count, args.frame_size[0], args.frame_size[1], args.style)
    settings = settings_of(args)
    settings.update(frames=count, deadline_ms=1000 / args.fps, held_out_seed=args.seed + 1,
                    tuning=role("policy", args.seed, args.trace_offset) == "tuning",
                    device_cpus=sorted(DEVICE_CPUS or []), server_cpus=sorted(SERVER_CPUS or []))  # fmt: skip
    console.print(f"settings: {settings}")
    results: dict[str, Summary] = {}
    noise: dict[str, NoiseFloor] = {}
    decisions: dict[str, dict[str, list[dict[str, object]]]] = {}  # every frame of every run, for a closer look
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    server_args = ["--model", args.model, "--models-dir", str(args.models_dir)]
    server_args += ["--intra-op-threads", str(args.server_threads)]
    if DEVICE_CPUS:
        os.sched_setaffinity(0, DEVICE_CPUS)
    with server_process(server_args, SERVER_CPUS) as (grpc_target, _), \
            Progress(*columns, console=console) as progress:  # fmt: skip
        host, port = grpc_target.rsplit(":", 1)
        measured = path_accuracy(
            *render_frames(args.seed + 1, count, args.frame_size[0], args.frame_size[1], args.style), grpc_target, args
        )
        console.print(
            "word accuracy on held-out frames: "
            + ", ".join(
                f"{'device' if k == Where.LOCAL else 'server' if k == Where.REMOTE else k} {v:.3f}"
                for k, v in measured.items()
            )
        )
        settings["path_accuracy"] = {str(k): round(v, 4) for k, v in measured.items()}
        settings["interference"] = interference(args.model, args.models_dir, grpc_target, frames[:8], SERVER_CPUS)
        console.print(f"the device beside a busy server (same frames, one thread): {settings['interference']}")
        for name, up, down in trace_pairs(args):
            results[name], runs, first, noise[name] = run_trace(
                name, up, down, args, (host, int(port)), frames, truth, progress, measured
            )
            plot_trace(name, up, first, args, args.out / f"policy_{name}.png")
            decisions[name] = {run: [_frame_record(f) for f in frames_] for run, frames_ in runs.items()}
            settings.setdefault("time_predictor", {})[name] = predictor_spread(runs)
            # Every frame of every run, for a closer look; compressed (results are kept lean).
            (args.out / "policy_frames.json.gz").write_bytes(gzip.compress(json.dumps(decisions).encode(), mtime=0))
            (args.out / "policy.json").write_text(json.dumps(results, indent=2))
    settings["noise_floor"] = {
        name: {"mean_share": round(n.mean_share, 4), "miss_points": round(n.miss_points, 1),
               "latency_band": round(n.latency_band, 4), "miss_band": round(n.miss_band, 1),
               "energy_share": round(n.energy_share, 4)}
        for name, n in noise.items()
    }  # fmt: skip
    settings["verdicts"] = {
        name: targets(results[name], floor) | energy_targets(results[name], floor, radio_of(name))
        for name, floor in noise.items()
    }
    settings["energy_below_local"] = below_local(results, noise)
    (args.out / "policy_settings.json").write_text(json.dumps(settings, indent=2))
    print(
        f"\nsettings: {args.style} {args.frame_size[0]}x{args.frame_size[1]} frames, fps {args.fps} (deadline "
        f"{1000 / args.fps:.0f} ms), remote JPEG q{args.jpeg_quality}, device slowdown ×{args.device_slowdown}, "
        f"delay {args.delay_ms} ms, {count} frames every {args.frame_interval} s, {args.passes} pass(es), "
        f"outages {args.outage or 'none'}\n"
    )
    print(markdown(results, noise))
    print(f"\nwrote {args.out / 'policy.json'} and one PNG per trace in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
