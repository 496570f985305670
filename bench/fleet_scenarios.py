"""`make bench-fleet`'s two scenarios beside the sweep: a server killed and restarted under a fleet, and a
phone that asks thirty times a second among phones that ask once.

Restart: N `always-remote` phones against a server on fixed ports; `kill -9` after `KILL_AT_S`, a new
server at once on the same ports. Frames lost must be 0 (the device answers), the phones come back to the
server spread over time (jittered back-off: a phone is back at its first frame the server answers or
refuses), and the share of frames that reach the server returns to what it was before the kill.

Greedy phone: 15 `always-remote` phones at 1 fps, alone and then beside one more that asks 30 times a
second. What the server gives the 15 (their answers from it in time) must not fall by more than 5 points.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.faults import server_on
from bench.fleet_phones import Answer, drive, phones
from bench.policy import SERVER_CPUS, LinkLoop
from offload_client import Where
from offload_server.testing import unused_port
from offload_tools.sample import GroundTruth

KILL_AT_S = 8.0
RESTART_RUN_S = 30.0
# The remote share is read over windows this long; "back" once a window reaches this share of the one before.
WINDOW_S = 2.0
BACK_AT = 0.8
# Long enough that the polite phones' share of the server is read to a few points.
GREEDY_RUN_S = 20.0


def share_reached(answers: list[Answer], start: float, end: float) -> float | None:
    """Of the frames asked between `start` and `end`, the share whose call reached a server (`reached_server`):
    an overloaded server answers few of them, but refuses the rest at once, so this is the fleet's contact."""
    asked = [a for a in answers if start <= a.sent_at < end]
    return sum(reached_server(a) for a in asked) / len(asked) if asked else None


def reached_server(a: Answer) -> bool:
    """The phone's call reached a server: it answered, or refused at arrival."""
    return a.where == Where.REMOTE or a.refused


def restart(
    n: int, links: LinkLoop, pairs: list[tuple[Path, Path]], frames: list[np.ndarray], truth: GroundTruth,
    args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    """N phones; the server killed with SIGKILL after KILL_AT_S and started again at once on the same ports."""
    grpc_port, http_port = unused_port(), unused_port()
    server_args = ("--models-dir", str(args.models_dir))
    marks: dict[str, float] = {}

    def kill_and_restart(first: Any) -> None:
        time.sleep(KILL_AT_S + 0.5)
        first.send_signal(signal.SIGKILL)
        first.wait()
        marks["killed"] = time.monotonic()
        try:
            with server_on(grpc_port, http_port, *server_args, cpus=SERVER_CPUS):
                marks["ready"] = time.monotonic()
                done.wait()
        except Exception as exc:  # said in the results, not lost in a thread
            failed.append(f"{type(exc).__name__}: {exc}")

    done = threading.Event()
    failed: list[str] = []
    with server_on(grpc_port, http_port, *server_args, cpus=SERVER_CPUS) as first:
        killer = threading.Thread(target=kill_and_restart, args=(first,), daemon=True)
        with phones(["always-remote"] * n, f"127.0.0.1:{grpc_port}", links, pairs, args) as clients:
            killer.start()
            answers, _ = drive(clients, [args.fps] * n, RESTART_RUN_S, frames, truth, args.seed * 1000 + 7)
        done.set()
        killer.join(60)
    if "ready" not in marks:
        raise RuntimeError(f"the restarted server did not come up: {failed or 'not within the run'}")
    start = min(a.sent_at for a in answers)
    before = share_reached(answers, start + 2.0, marks["killed"])
    ready = marks["ready"]
    back_s = None
    t = ready
    while t + WINDOW_S <= start + RESTART_RUN_S:
        now = share_reached(answers, t, t + WINDOW_S)
        if before and now is not None and now >= BACK_AT * before:
            back_s = round(t + WINDOW_S - ready, 1)
            break
        t += 0.5
    firsts = []
    for k in range(n):
        reached = [a.sent_at for a in answers if a.phone == k and a.sent_at >= ready and reached_server(a)]
        if reached:
            firsts.append(min(reached) - ready)
    return {
        "phones": n,
        "frames": len(answers),
        "lost": sum(1 for a in answers if a.where == Where.NONE),
        "down_s": round(ready - marks["killed"], 1),
        "reached_share_before": round(before, 3) if before is not None else None,
        "reached_share_back_after_s": back_s,
        "phones_back": len(firsts),
        "reconnect_spread_s": round(max(firsts) - min(firsts), 2) if len(firsts) > 1 else None,
        "reconnect_median_s": round(statistics.median(firsts), 2) if firsts else None,
        # Why the frames asked once the server was back went where they went: the first thing to read
        # when phones do not come back.
        "reasons_after_ready": dict(
            Counter(":".join(a.reason.split(":")[:2])[:60] for a in answers if a.sent_at >= ready).most_common(5)
        ),
    }


def greedy_phone(
    target: str, links: LinkLoop, pairs: list[tuple[Path, Path]], frames: list[np.ndarray], truth: GroundTruth,
    args: argparse.Namespace, polite: int = 15, greedy_fps: float = 30.0,
) -> dict[str, Any]:  # fmt: skip
    """The polite phones' server answers in time, alone and beside one phone asking `greedy_fps` a second."""
    out: dict[str, Any] = {"polite": polite}
    for label, greedy in (("alone", 0), ("beside a greedy phone", 1)):
        with phones(["always-remote"] * (polite + greedy), target, links, pairs, args) as clients:
            rates = [args.fps] * polite + [greedy_fps] * greedy
            answers, seconds = drive(clients, rates, GREEDY_RUN_S, frames, truth, args.seed * 1000 + 15, True)
        mine = [a for a in answers if a.phone < polite]
        served = [a for a in mine if a.where == Where.REMOTE and a.latency_ms <= args.deadline_ms]
        theirs = [a for a in answers if a.phone >= polite and a.where == Where.REMOTE]
        out[label] = {
            "polite_served_in_time": round(len(served) / len(mine), 3),
            "polite_in_time": round(sum(a.latency_ms <= args.deadline_ms for a in mine) / len(mine), 3),
            "greedy_asked": len(answers) - len(mine),
            "greedy_served": len(theirs),
            "server_answers_per_s": round((len(served) + len(theirs)) / seconds, 2),
        }
    drop = out["alone"]["polite_served_in_time"] - out["beside a greedy phone"]["polite_served_in_time"]
    out["drop_points"] = round(100 * drop, 1)
    out["met"] = drop <= 0.05
    return out
