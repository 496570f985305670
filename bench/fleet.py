"""`make bench-fleet`: one server, many phones: the fleet's latency, words and the server's goodput as N grows.

N phones (1, 2, 4, ... 32) share one `offload-server` (on its own core). Each phone is a real
`OffloadClient` with its own link emulator on its own slice of a cellular trace (the three traces in
turn, staggered start), its own order of the seeded sample frames and its own random phase. The
server, the link emulator, gRPC and the SDK's decisions are real; the phones' CPUs are not this
machine's: each device answer is measured once up front and replayed after the phone's time for it
(the CPU time x the slowdown, `bench/replay_device.py`).

Contenders at each N (with the server's admission on: `deadline`; off: `none`):
`always-local`, `always-remote`, `adaptive-latency`, `adaptive-latency` deaf to the server's load signal
(a client that ignores `ServerLoad`, as one older than the signal does), and `always-remote` and
`adaptive-latency` against the server without deadline-aware admission.

Per run: the fleet's mean and p99 latency, frames answered in time, words read (and read in time),
where frames went, the server's goodput (answers delivered in time per second) against its capacity
alone (frames/s at 16 concurrent requests, no link), the server's work on answers that came late,
refusals, Jain's fairness index of the phones' in-time shares, bytes sent. The queueing model
(`bench/queueing.py`) predicts from one phone's run and the capacity alone where the server stops
paying; the run measures where it does. Results: bench/results/fleet.json and fleet.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bench.fleet_phones import Answer, drive, phones
from bench.fleet_scenarios import greedy_phone, restart
from bench.policy import DEVICE_CPUS, SERVER_CPUS, LinkLoop
from bench.queueing import crossover, predicted_crossover
from bench.record import settings_of
from bench.replay_device import ReplayDevice
from bench.seeds import CONFIRMING, role
from offload_client import Where
from offload_server.testing import server_process
from offload_tools.sample import GroundTruth, render_frames

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "bench" / "traces" / "mahimahi"
# (contender, the server's admission): run in this order at every N.
RUNS = (
    ("always-local", "deadline"),
    ("always-remote", "deadline"),
    ("always-remote", "none"),
    ("adaptive-latency", "deadline"),
    ("adaptive-accuracy", "deadline"),
    ("adaptive-accuracy-deaf", "deadline"),
    ("adaptive-accuracy", "none"),
)
console = Console(stderr=True)


def server_counters(http_url: str) -> dict[str, float]:
    """The server's counters that a run moves: requests by status, late answers, refusals, expiries, frames inferred."""
    text = urllib.request.urlopen(f"{http_url}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for name, labels, value in re.findall(r"^(offload_\w+_total)(\{[^}]*\})? (\S+)$", text, re.M):
        key = name + (re.sub(r'model="[^"]*",?', "", labels or "").replace("{}", "") if labels else "")
        out[key] = out.get(key, 0.0) + float(value)
    return out


def settle(http_url: str, timeout_s: float = 60.0) -> None:
    """Wait until the server has nothing in flight: one run's backlog must not be the next run's load."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        text = urllib.request.urlopen(f"{http_url}/metrics", timeout=10).read().decode()
        busy = re.search(r"^offload_in_flight_requests (\S+)$", text, re.M)
        if busy is None or float(busy.group(1)) == 0:
            return
        time.sleep(0.2)


def run_fleet(
    n: int, contender: str, target: str, links: LinkLoop, pairs: list[tuple[Path, Path]], frames: list[np.ndarray],
    truth: GroundTruth, args: argparse.Namespace,
) -> tuple[list[Answer], float]:  # fmt: skip
    """N phones of one contender, each on its own link to `target`."""
    with phones([contender] * n, target, links, pairs, args) as clients:
        return drive(clients, [args.fps] * n, args.duration, frames, truth, args.seed * 1000 + n)


def jain(shares: list[float]) -> float:
    """Jain's fairness index: 1 when every phone got the same, 1/n when one got everything."""
    total = sum(shares)
    return total * total / (len(shares) * sum(s * s for s in shares)) if total else 1.0


def fairness(answers: list[Answer], n: int, links: int, deadline_ms: float) -> float:
    """Jain's index of the phones' in-time shares among phones of equal demand and equal link (the same
    trace), the lowest over the traces: a phone on EVDO is slower than one on LTE whatever the server does."""
    shares: dict[int, list[float]] = {}
    for k in range(n):
        mine = [a.latency_ms <= deadline_ms for a in answers if a.phone == k]
        shares.setdefault(k % links, []).append(sum(mine) / len(mine) if mine else 0.0)
    return min((jain(group) for group in shares.values() if len(group) > 1), default=1.0)


def summarize(
    answers: list[Answer], seconds: float, n: int, links: int, deadline_ms: float, counters: Mapping[str, float]
) -> dict[str, Any]:
    lat = np.array([a.latency_ms for a in answers])
    in_time = lat <= deadline_ms
    words = sum(a.words_total for a in answers)
    remote_in_time = sum(1 for a, ok in zip(answers, in_time, strict=True) if ok and a.where == Where.REMOTE)
    computed = counters.get("offload_inference_total", 0.0)
    return {
        "frames": len(answers),
        "mean_ms": round(float(lat.mean()), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "in_time": round(float(in_time.mean()), 3),
        "unanswered": sum(1 for a in answers if a.where == Where.NONE),
        "words": round(sum(a.words_correct for a in answers) / words, 3) if words else None,
        "words_in_time": round(sum(a.words_correct for a, ok in zip(answers, in_time, strict=True) if ok) / words, 3)
        if words else None,
        "remote_share": round(sum(a.where == Where.REMOTE for a in answers) / len(answers), 3),
        "goodput_fps": round(remote_in_time / seconds, 2),
        # The server's frames whose answers did not serve their frame in time: work no phone could use
        # (late at the server, or late over the link on the way back, or beaten by the device in a race).
        "wasted": round(1 - remote_in_time / computed, 3) if computed else None,
        **server_side(counters, seconds),
        "fairness": round(fairness(answers, n, links, deadline_ms), 3),
        "uplink_kb": round(sum(a.uplink_bytes for a in answers) / 1024, 1),
        "server": counters,
    }  # fmt: skip


def server_side(counters: Mapping[str, float], seconds: float) -> dict[str, Any]:
    """What the server itself did, from its own counters: answers it finished before their frames'
    deadlines (per second), the share of admitted requests it still finished late, and the share of its
    deadline refusals that, replayed against the queue as it drained, would have been in time."""
    computed = counters.get("offload_inference_total", 0.0)
    late = counters.get("offload_late_answers_total", 0.0)
    refused = counters.get('offload_admission_refused_total{reason="deadline"}', 0.0)
    return {
        "server_in_time_fps": round((computed - late) / seconds, 2),
        "admitted_late": round(late / computed, 3) if computed else None,
        "refused_would_fit": round(counters.get("offload_refused_would_fit_total", 0.0) / refused, 3)
        if refused
        else None,
    }


def capacity_alone(target: str, frames: list[np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """The server's frames/s at 16 concurrent requests straight to it (no link, no deadline): `bench/loadgen.py`."""
    with tempfile.TemporaryDirectory() as folder:
        for i, frame in enumerate(frames):
            cv2.imwrite(str(Path(folder) / f"{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        cmd = [sys.executable, "-m", "bench.loadgen", "grpc-unary", target, "--frames", folder, "--concurrency", "16",
               "--duration", str(args.capacity_s), "--model", args.model, "--variant", ""]  # fmt: skip
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", default="1,2,4,8,16,32", help="fleet sizes, comma-separated")
    parser.add_argument("--fps", type=float, default=1.0, help="frames per second each phone asks for")
    parser.add_argument("--deadline-ms", type=float, default=1000.0, help="each frame's deadline")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds each run's phones send")
    parser.add_argument(
        "--device-slowdown", type=float, default=3.0, help="a phone's device runs ×X this machine's CPU time"
    )
    parser.add_argument("--seed", type=int, default=CONFIRMING["fleet"].seed, help="the frames' seed")
    parser.add_argument(
        "--frames", type=int, default=24, help="distinct frames; each phone takes them in its own order"
    )
    parser.add_argument(
        "--trace-offset",
        type=float,
        default=CONFIRMING["fleet"].trace_offset,
        help="seconds into the traces where phone 0 starts",
    )
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one-way propagation delay")
    parser.add_argument("--capacity-s", type=float, default=10.0, help="seconds the capacity alone is measured")
    parser.add_argument("--model", default="text-spotter")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--traces", type=Path, default=TRACES, help="folder of Mahimahi .up/.down pairs")
    parser.add_argument("--restart-phones", type=int, default=16, help="phones while the server is killed")
    parser.add_argument("--no-scenarios", dest="scenarios", action="store_false",
                        help="the sweep alone: no restart, no greedy phone")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    fleet = [int(x) for x in args.phones.split(",")]
    pairs = [(up, up.with_suffix(".down")) for up in sorted(args.traces.glob("*.up"))]
    frames, truth = render_frames(args.seed, args.frames, style="real")
    settings = settings_of(args)
    tuning = role("fleet", args.seed, args.trace_offset) == "tuning"
    settings.update(tuning=tuning, server_cpus=sorted(SERVER_CPUS or []),
                    traces=[up.stem for up, _ in pairs])  # fmt: skip
    console.print(f"settings: {settings}")
    if DEVICE_CPUS:
        os.sched_setaffinity(0, DEVICE_CPUS)
    console.print("measuring each device variant on every frame once (the phones replay them)")
    device_ms = ReplayDevice.measure(args.model, args.models_dir, frames, args.device_slowdown)
    console.print(f"device ms per variant (×{args.device_slowdown:g}): {device_ms}")
    server_args = ["--model", args.model, "--models-dir", str(args.models_dir)]
    results: dict[str, Any] = {"settings": settings, "device_ms": device_ms, "runs": {}}
    links = LinkLoop(DEVICE_CPUS)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    no_admission = {"OFFLOAD_DEADLINE_ADMISSION": "0"}
    quiet = not console.is_terminal  # CI logs get the one line per run, not a progress bar
    with server_process(server_args, SERVER_CPUS) as (deadline_target, deadline_http), \
            server_process(server_args, SERVER_CPUS, env=no_admission) as (none_target, none_http), \
            ReplayDevice.installed(), Progress(*columns, console=console, disable=quiet) as progress:  # fmt: skip
        servers = {"deadline": (deadline_target, deadline_http), "none": (none_target, none_http)}
        capacity = capacity_alone(deadline_target, frames, args)
        results["capacity"] = capacity
        console.print(f"capacity alone (16 concurrent, no link): {capacity['fps']} frames/s")
        job = progress.add_task("fleet", total=len(fleet) * len(RUNS))
        for n in fleet:
            for contender, admission in RUNS:
                target, http = servers[admission]
                progress.update(job, description=f"N={n} {contender} (admission {admission})")
                settle(http)
                before = server_counters(http)
                answers, seconds = run_fleet(n, contender, target, links, pairs, frames, truth, args)
                after = server_counters(http)
                moved = {k: round(v - before.get(k, 0.0)) for k, v in after.items() if v != before.get(k, 0.0)}
                row = summarize(answers, seconds, n, len(pairs), args.deadline_ms, moved)
                results["runs"].setdefault(str(n), {})[f"{contender}/{admission}"] = row
                if n == fleet[0] and (contender, admission) == ("always-remote", "none"):
                    results["one_phone"] = {  # what the queueing model predicts every larger fleet from
                        "latencies_ms": [round(a.latency_ms, 1) for a in answers],
                        "words": [a.words_correct for a in answers],
                        "total_words": sum(a.words_total for a in answers),
                    }
                console.print(f"N={n:>2} {contender:>16} {admission:>8}: {brief(row)}")
                progress.advance(job)
        if args.scenarios:
            progress.update(job, description="phones beside a greedy one")
            settle(deadline_http)
            # A scenario that fails is said in the results; the sweep's figures are kept.
            scenarios: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
                ("greedy_phone", lambda: greedy_phone(deadline_target, links, pairs, frames, truth, args)),
                # Inside the block: its phones replay their device answers too. (Outside it, the first confirming
                # run's 16 phones ran the real model, x3, on one core: their frames ran 90 s past the restart.)
                ("restart", lambda: restart(args.restart_phones, links, pairs, frames, truth, args)),
            )
            for name, scenario in scenarios:
                try:
                    results[name] = scenario()
                except Exception as exc:
                    results[f"{name}_failed"] = f"{type(exc).__name__}: {exc}"
                console.print(f"{name}: {results.get(name) or results[f'{name}_failed']}")
    links.close()
    results["verdicts"] = verdicts(results, fleet, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet.json").write_text(json.dumps(results, indent=2) + "\n")
    draw(results, fleet, args.out / "fleet.png")
    print(markdown(results))
    return 0


def brief(row: dict[str, Any]) -> str:
    return (
        f"mean {row['mean_ms']:.0f} ms, p99 {row['p99_ms']:.0f}, in time {row['in_time']:.0%}, "
        f"words {row['words']}, remote {row['remote_share']:.0%}, goodput {row['goodput_fps']}/s, "
        f"Jain {row['fairness']}, server {row['server']}"
    )


def verdicts(results: dict[str, Any], fleet: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """The issue's targets, judged on this run."""
    runs = {n: results["runs"][str(n)] for n in fleet}
    capacity = results["capacity"]["fps"]
    out: dict[str, Any] = {}
    rows = []
    for n in fleet:
        local, remote, adaptive = (runs[n][k] for k in ("always-local/deadline", "always-remote/deadline",
                                                        "adaptive-latency/deadline"))  # fmt: skip
        better = min((local, remote), key=lambda x: x["mean_ms"])
        rows.append({"N": n, "latency_ratio": round(adaptive["mean_ms"] / better["mean_ms"], 3),
                     "words_gap_points": round(100 * (adaptive["words"] - better["words"]), 1)})  # fmt: skip
    out["adaptive_vs_better_static"] = {
        "rows": rows,
        "met": all(x["latency_ratio"] <= 1.05 and x["words_gap_points"] >= -2.0 for x in rows),
    }
    # The accuracy objective, where the load signal matters (it is the policy that sends): with and without it.
    out["load_signal"] = {
        key: [runs[n][key]["words_in_time"] for n in fleet]
        for key in ("adaptive-accuracy/deadline", "adaptive-accuracy-deaf/deadline", "adaptive-accuracy/none")
    }
    judged = ("adaptive-latency/deadline", "adaptive-accuracy/deadline")
    unanswered = sum(v["unanswered"] for n in fleet for v in runs[n].values())
    out["deadline_99"] = {
        **{key: [runs[n][key]["in_time"] for n in fleet] for key in judged},
        "unanswered": unanswered,
        "met": all(runs[n][key]["in_time"] >= 0.99 for n in fleet for key in judged) and unanswered == 0,
    }
    # Overload: the N whose offered load (every frame sent) is nearest 4x the capacity alone.
    n4 = min(fleet, key=lambda n: abs(math.log(n * args.fps / capacity / 4.0)))
    remote = {adm: runs[n4][f"always-remote/{adm}"] for adm in ("deadline", "none")}
    # The server's goodput is what it finished in time by its own clock: a cellular link that makes an answer
    # late on the way back is not the server's to fix (the phones' in-time figures show that side).
    out["overload"] = {
        "N": n4,
        "offered_x_capacity": round(n4 * args.fps / capacity, 2),
        "goodput_share": {adm: round(r["server_in_time_fps"] / capacity, 3) for adm, r in remote.items()},
        "delivered_share": {adm: round(r["goodput_fps"] / capacity, 3) for adm, r in remote.items()},
        "admitted_late": {adm: r["admitted_late"] for adm, r in remote.items()},
        "refused_would_fit": remote["deadline"]["refused_would_fit"],
    }
    o = out["overload"]
    o["met"] = (
        o["goodput_share"]["deadline"] >= 0.9
        and (o["admitted_late"]["deadline"] or 0.0) <= 0.02
        and (o["refused_would_fit"] or 0.0) <= 0.05
    )
    fair = [runs[n]["always-remote/deadline"]["fairness"] for n in fleet]
    out["fairness"] = {"always-remote/deadline": fair, "met": min(fair) >= 0.9}
    out["crossover"] = crossovers(results, fleet, args)
    if "restart" in results:
        r = results["restart"]
        out["restart"] = {
            "lost": r["lost"], "spread_s": r["reconnect_spread_s"], "back_s": r["reached_share_back_after_s"],
            "met": r["lost"] == 0 and (r["reconnect_spread_s"] or 0) >= 1.0
            and r["reached_share_back_after_s"] is not None and r["reached_share_back_after_s"] <= 10.0,
        }  # fmt: skip
    if "greedy_phone" in results:
        out["greedy_phone"] = {"drop_points": results["greedy_phone"]["drop_points"],
                               "met": results["greedy_phone"]["met"]}  # fmt: skip
    return out


def crossovers(results: dict[str, Any], fleet: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Where always-remote's words read in time fall below always-local's: measured, and predicted from N=1 alone."""
    runs = results["runs"]
    gain = [
        runs[str(n)]["always-remote/none"]["words_in_time"] - runs[str(n)]["always-local/deadline"]["words_in_time"]
        for n in fleet
    ]
    measured = crossover(fleet, gain)
    one = results["one_phone"]
    device_words = runs[str(fleet[0])]["always-local/deadline"]["words_in_time"]
    predicted = predicted_crossover(
        one["latencies_ms"], one["words"], one["total_words"], device_words, args.fps, results["capacity"]["fps"],
        args.deadline_ms, max(fleet),
    )  # fmt: skip
    within: bool | None = (
        measured is not None and predicted is not None and abs(predicted - measured) <= 0.25 * measured
    )
    why = ""
    if measured is None:  # nothing to predict: the server never paid, or always did, over these sizes
        within = None
        why = "the device read more in time at every N" if gain[0] < 0 else "the server paid at every N"
    return {
        "measured_N": round(measured, 2) if measured else None,
        "predicted_N": round(predicted, 2) if predicted else None,
        "met": within,
        "why": why,
    }


LABELS = {
    "always-local/deadline": "always-local",
    "always-remote/deadline": "always-remote (admission)",
    "always-remote/none": "always-remote (no admission)",
    "adaptive-latency/deadline": "adaptive-latency (admission)",
    "adaptive-accuracy/deadline": "adaptive-accuracy (admission)",
    "adaptive-accuracy-deaf/deadline": "adaptive-accuracy, deaf to load (admission)",
    "adaptive-accuracy/none": "adaptive-accuracy (no admission)",
}


def sizes(results: dict[str, Any]) -> list[int]:
    return sorted(int(n) for n in results["runs"])


def targets_line(results: dict[str, Any]) -> str:
    """'k of m targets met', then the names of those not met: the README's headline."""
    judged = {name: v["met"] for name, v in results["verdicts"].items() if isinstance(v, dict) and "met" in v}
    missed = [name.replace("_", " ") for name, ok in judged.items() if ok is False]
    open_ = [name.replace("_", " ") for name, ok in judged.items() if ok is None]
    line = f"{sum(ok is True for ok in judged.values())} of {len(judged)} targets met"
    return (
        line
        + (f"; NOT met: {', '.join(missed)}" if missed else "")
        + (f"; unresolved: {', '.join(open_)}" if open_ else "")
    )


def pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def markdown(results: dict[str, Any]) -> str:
    fleet = sizes(results)
    cap = results["capacity"]["fps"]
    lines = [
        f"capacity alone: {cap} frames/s; phones at {results['settings']['fps']:g} fps, "
        f"deadline {results['settings']['deadline_ms']:g} ms",
        "",
        "| N | contender | mean ms | p99 ms | in time | words | words in time | remote | goodput/s "
        "| server: in time/s, late | Jain | KB sent |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in fleet:
        for key, row in results["runs"][str(n)].items():
            lines.append(
                f"| {n} | {LABELS[key]} | {row['mean_ms']:.0f} | {row['p99_ms']:.0f} | {row['in_time']:.1%} | "
                f"{row['words']} | {row['words_in_time']} | {row['remote_share']:.0%} | {row['goodput_fps']} | "
                f"{row.get('server_in_time_fps', '-')}, {pct(row.get('admitted_late'))} | "
                f"{row['fairness']} | {row['uplink_kb']:.0f} |"
            )
    v = results["verdicts"]
    met = {True: "met", False: "NOT met", None: "unresolved"}
    rows = ", ".join(
        f"N={x['N']}: x{x['latency_ratio']:.2f}, {x['words_gap_points']:+.1f}"
        for x in v["adaptive_vs_better_static"]["rows"]
    )
    o = v["overload"]
    c = v["crossover"]
    lines += [
        "",
        "| target | figure | verdict |",
        "|---|---|---|",
        f"| adaptive-latency ≤ 1.05x the better static's mean, words within 2 points | {rows} | "
        f"{met[v['adaptive_vs_better_static']['met']]} |",
        f"| deadline met on ≥ 99 % at every N (adaptive-latency; adaptive-accuracy), every frame answered | "
        f"{', '.join(f'{x:.1%}' for x in v['deadline_99']['adaptive-latency/deadline'])}; "
        f"{', '.join(f'{x:.1%}' for x in v['deadline_99']['adaptive-accuracy/deadline'])}; "
        f"{v['deadline_99']['unanswered']} unanswered | {met[v['deadline_99']['met']]} |",
        f"| overload (N={o['N']}, {o['offered_x_capacity']}x): the server's goodput ≥ 90 % of capacity, admitted "
        f"late ≤ 2 %, refused that would fit ≤ 5 % | admission {o['goodput_share']['deadline']:.0%}, "
        f"{pct(o['admitted_late']['deadline'])}, {pct(o['refused_would_fit'])}; none "
        f"{o['goodput_share']['none']:.0%}, {pct(o['admitted_late']['none'])} (delivered to the phones in time: "
        f"{o['delivered_share']['deadline']:.0%}; none {o['delivered_share']['none']:.0%}) | {met[o['met']]} |",
        f"| Jain's fairness ≥ 0.9 (always-remote) | min {min(v['fairness']['always-remote/deadline'])} | "
        f"{met[v['fairness']['met']]} |",
        f"| predicted crossover within 25 % of measured | predicted N={c['predicted_N']}, "
        f"measured N={c['measured_N']}{'; ' + c['why'] if c.get('why') else ''} | "
        f"{met[c['met']]} |",
    ]  # fmt: skip
    if "restart" in v:
        r = results["restart"]
        lines.append(
            f"| restart ({r['phones']} phones, down {r['down_s']} s): 0 lost, reconnections spread ≥ 1 s, the "
            f"fleet back on the server ≤ 10 s | {r['lost']} lost, spread {r['reconnect_spread_s']} s, back after "
            f"{r['reached_share_back_after_s']} s | {met[v['restart']['met']]} |"
        )
    if "greedy_phone" in v:
        g = results["greedy_phone"]
        lines.append(
            f"| a phone asking 30/s among {g['polite']}: their server answers in time fall ≤ 5 points | "
            f"{g['alone']['polite_served_in_time']:.1%} → {g['beside a greedy phone']['polite_served_in_time']:.1%} "
            f"({v['greedy_phone']['drop_points']:+.1f} points; the greedy phone got "
            f"{g['beside a greedy phone']['greedy_served']} of {g['beside a greedy phone']['greedy_asked']}) | "
            f"{met[v['greedy_phone']['met']]} |"
        )
    return "\n".join(lines)


def draw(results: dict[str, Any], fleet: list[int], path: Path) -> None:
    """Mean latency and words read in time against N, one line per contender: how many phones a server holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, words) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in LABELS.items():
        rows = [results["runs"][str(n)].get(key) for n in fleet]
        if not all(rows):
            continue
        lat.plot(fleet, [r["mean_ms"] for r in rows], marker="o", label=label)
        words.plot(fleet, [r["words_in_time"] for r in rows], marker="o", label=label)
    for ax, title in ((lat, "fleet mean latency (ms)"), (words, "words read in time")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(fleet, [str(n) for n in fleet])
        ax.set_xlabel("phones per server")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    lat.axhline(results["settings"]["deadline_ms"], color="grey", linestyle=":", label="deadline")
    c = results["verdicts"]["crossover"]
    for n, style in ((c["measured_N"], "--"), (c["predicted_N"], ":")):
        if n:
            words.axvline(n, color="black", linestyle=style, alpha=0.5)
    lat.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
