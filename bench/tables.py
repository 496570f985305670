"""The docs' tables of results, written from the results files: a figure in the docs is the file's figure.

Each table sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in README.md or a page of
docs/; `python -m bench.tables` rewrites them all from `bench/results/`, and a unit test fails when a
page and its results file disagree. Run it after a benchmark whose figures the docs quote.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fleet, roi, scale
from bench.policy import energy_targets, floor_of, radio_of, targets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)
TRACE_LABELS = {
    "ATT-LTE-driving-2016": "ATT LTE (1.9 Mbit/s)",
    "TMobile-LTE-short": "TMobile LTE (13 Mbit/s)",
    "Verizon-EVDO-driving": "Verizon EVDO (0.8 Mbit/s)",
    "TMobile-LTE-short+wifi": "TMobile's rates, Wi-Fi radio",
}


def _load(name: str) -> Any:
    return json.loads((RESULTS / name).read_text())


def policy_table() -> str:
    """Per trace: adaptive-latency against the oracle and the better static policy, adaptive-accuracy's words
    and misses, each with its verdict."""
    results, settings = _load("policy.json"), _load("policy_settings.json")
    rows = [
        "| trace (mean uplink) | `adaptive-latency` / oracle | vs the better static | "
        "`adaptive-accuracy` words (oracle-timing / oracle-accuracy) | vs oracle-timing | its misses vs oracle's |",
        "|---|---|---|---|---|---|",
    ]
    for trace, by in results.items():
        judged = targets(by, floor_of(settings, trace))
        ratio, static, words, timing, misses = judged.values()
        accuracy = f"{by['adaptive-accuracy']['accuracy']:.3f}"
        oracles = f"{by['oracle-timing']['accuracy']:.3f} / {by['oracle-accuracy']['accuracy']:.3f}"
        rows.append(
            f"| {TRACE_LABELS.get(trace, trace)} | {ratio['value']:.2f}× {ratio['verdict']} | "
            f"{static['value'] * 100:+.1f} % {static['verdict']} | {accuracy} ({oracles}) {words['verdict']} "
            f"| {-timing['value']:+.1f} points {timing['verdict']} "
            f"| {misses['value']:+.1f} points {misses['verdict']} |"
        )
    rows.append("")
    rows.append(
        f"Seed {settings['seed']}, {settings['trace_offset']:g} s into each trace, {settings['passes']} passes, "
        f"{settings['frames']} frames per pass, device ×{settings['device_slowdown']:g}, at {settings['commit']} "
        f"({'tuning' if settings['tuning'] else 'confirming: no code changed because of these frames'}; "
        "bench/seeds.py)."
    )
    held_out = settings.get("path_accuracy")
    if held_out:  # what the accuracy objective had to win: the paths' words on held-out frames
        gap = 100 * (held_out["remote"] - held_out["local"])
        rows.append(
            f"Words read on the held-out frames of seed {settings['held_out_seed']}: device {held_out['local']:.3f}, "
            f"device-accurate {held_out.get('device-accurate', float('nan')):.3f}, server {held_out['remote']:.3f} "
            f"(the server {gap:+.1f} points over the device: {'a hard' if gap >= 20 else 'an easy'} seed)."
        )
    return "\n".join(rows)


def accuracy_table() -> str:
    """`make bench-accuracy`: what each path reads on the real-photo sample, and the device's three targets."""
    r = _load("accuracy.json")
    rows = {row["contender"].split(" (")[0]: row for row in r["rows"]}
    server = rows["server"]
    shown = ["server", "rapidocr-onnxruntime", "device-accurate", "device-balanced", "device"]
    lines = ["| path | detection F1 | words read | ms/frame | model MB |", "|---|---|---|---|---|"]
    for row in r["rows"]:
        if row["contender"].split(" (")[0] in shown:
            lines.append(f"| {row['contender']} | {row['f1']:.3f} | {row['word_accuracy']:.3f} | "
                         f"{row['ms_per_frame']:.0f} | {row['model_bytes'] / 1e6:.2f} |")  # fmt: skip
    lines += ["", "| target | `device-balanced` | `device-accurate` |", "|---|---|---|"]

    def figures(d: dict[str, Any]) -> tuple[float, float, float]:
        return (
            (server["word_accuracy"] - d["word_accuracy"]) * 100,
            server["ms_per_frame"] / d["ms_per_frame"],
            server["model_bytes"] / d["model_bytes"],
        )

    goals = (
        ("words: ≤ 3 points below the server", 3.0, -1),
        ("speed: ≥ 2× the server's pipeline, one thread", 2.0, 1),
        ("download: ≥ 3× smaller than fp32", 3.0, 1),
    )
    for k, (label, goal, sign) in enumerate(goals):
        cells = []
        for name in ("device-balanced", "device-accurate"):
            v = figures(rows[name])[k]
            cells.append(f"{v:.2f}{'' if sign < 0 else '×'} {'met' if sign * (v - goal) >= 0 else 'NOT met'}")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    s = r["settings"]
    lines += ["", f"{s['words']} words on {s['frames']} frames per seed (seeds {s['seeds']}), {s['frame']}, "
              f"{s['intra_op_threads']} thread, at {s['commit']}."]  # fmt: skip
    return "\n".join(lines)


def server_table() -> str:
    """`make bench-server`'s verdicts, from server.json."""
    r = _load("server.json")
    return f"Latest run (at {r['settings']['commit']}): {targets_met(r['ratios'])}."


def policy_runs_table() -> str:
    """Every policy's figures per trace from `make bench-policy`'s latest run, and the run's setting."""
    results, settings = _load("policy.json"), _load("policy_settings.json")
    rows = ["| trace | policy | mean ms | misses | words | uplink KB | mJ/frame |", "|---|---|---|---|---|---|---|"]
    for trace, by in results.items():
        for policy, m in by.items():
            rows.append(
                f"| {TRACE_LABELS.get(trace, trace)} | {policy} | {m['mean_ms']} | {m['miss_rate'] * 100:.1f} % "
                f"| {m['accuracy']:.3f} | {m['uplink_bytes'] / 1000:.0f} | {m['mj_per_frame']:.0f} |"
            )
    held_out = ", ".join(f"{k.removeprefix('Where.').lower()} {v:.3f}" for k, v in settings["path_accuracy"].items())
    rows += [
        "",
        f"`{settings['command']}`: seed {settings['seed']}, {settings['trace_offset']:g} s into each trace, "
        f"{settings['passes']} passes of {settings['frames']} frames, device ×{settings['device_slowdown']:g}, "
        f"at {settings['commit']} ({'tuning' if settings['tuning'] else 'confirming'}). Held-out accuracy "
        f"(seed {settings['held_out_seed']}): {held_out}. {settings['energy_below_local']}.",
    ]
    return "\n".join(rows)


def energy_table() -> str:
    """Per trace: joules per frame of each policy, adaptive-energy against the energy oracle, with verdicts."""
    results, settings = _load("policy.json"), _load("policy_settings.json")
    rows = [
        "| trace (radio) | always-local | always-remote | adaptive-latency | `adaptive-energy` / oracle-energy "
        "| its misses vs adaptive-latency | below always-remote (LTE) |",
        "|---|---|---|---|---|---|---|",
    ]
    for trace, by in results.items():
        judged = energy_targets(by, floor_of(settings, trace), radio_of(trace))
        ratio, misses, *saved = judged.values()
        mj = {name: f"{by[name]['mj_per_frame'] / 1000:.2f} J" for name in by}
        below = f"{saved[0]['value'] * 100:.0f} % {saved[0]['verdict']}" if saved else "-"
        rows.append(
            f"| {TRACE_LABELS.get(trace, trace)} ({radio_of(trace)}) | {mj['always-local']} | {mj['always-remote']} "
            f"| {mj['adaptive-latency']} | {mj['adaptive-energy']} / {mj['oracle-energy']} = {ratio['value']:.2f}× "
            f"{ratio['verdict']} | {misses['value']:+.1f} points {misses['verdict']} | {below} |"
        )
    rows.append("")
    rows.append(f"Per frame, all {settings['passes']} passes pooled. {settings['energy_below_local']}.")
    return "\n".join(rows)


def redaction_table() -> str:
    """The painters `make bench-redact` compared, through the shipped redactor, judged by what did not paint."""
    r = _load("redaction.json")
    allow = r["painters"]["allow"]["word_accuracy"]
    promised = r["settings"].get("promised_face_px", 35)
    rows = [
        "| painting | clean on the first try | kept home | faces painted (ground truth) "
        f"| faces >= {promised} px left | sent with a face (fp32 judge) | words (allow: {allow}) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in r["painters"].items():
        if name != "allow":
            first = f"{p['clean_first_try']} of {p['frames']}"
            rows.append(
                f"| {name} | {first} | {p['kept_local']} | {p['face_rects_changed']} | {p['promised_faces_left']} "
                f"| {p['sent_with_face']} | {p['word_accuracy']} |"
            )
    left = r["painters"]["fill (shipped)"]["faces_left"]
    with_faces, without = r["cost_with_faces"], r["cost_without_faces"]
    rows += [
        "",
        "Faces the shipped painter left: "
        + (", ".join(f"{f['size_px']} px ({f['source']})" for f in left) or "none")
        + ". YuNet finds, at full resolution at 0.5, by face height: "
        + ", ".join(f"{k}: {v}" for k, v in r["found_at_full_resolution"].items())
        + f". One thread, 640x480: {without['median_ms']} ms median without a face, {with_faces['median_ms']} ms "
        "with one (detection, painting, verification).",
        "",
        "| target | measured | goal | verdict |",
        "|---|---|---|---|",
    ]
    rows += [f"| {name} | {v} | {g} | {j} |" for name, (v, g, j) in r["verdicts"].items()]
    rows.append("")
    rows.append(f"Seed {r['settings']['seed']}, {r['settings']['frames']} frames, at {r['settings']['commit']}.")
    return "\n".join(rows)


def faults_table() -> str:
    """`make bench-faults`: every fault's frames, the fuzz run, the cost of security, and the verdicts."""
    r = _load("faults.json")
    labels = {
        "kill -9 and restart": "`kill -9` of the server, restart on the same ports",
        "link outage 3 s": "3 s link outage (`offload linkem`)",
    }
    columns = ["fault", "frames handed over", "answered by the server / by the device", "lost", "remote again after"]
    rows = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for key, label in labels.items():
        f = r[key]
        back = "-" if f.get("remote_again_s") is None else f"{f['remote_again_s']} s"
        by_device = f["answered_by_a_fallback"]
        rows.append(
            f"| {label} | {f['frames_sent']} | {f['frames_answered'] - by_device} / {by_device} "
            f"| {f['frames_lost']} | {back} |"
        )
    raw, sdk = r["overload 64 streams"]["raw_streams"], r["overload 64 streams"]["sdk_client"]
    rows += [
        f"| overload: 64 raw gRPC streams (no device), ~8× capacity, queue of 8 | {raw['frames_sent']} "
        f"| {raw['answered_by_the_server']} / none: {raw['refused']} refused | {raw['frames_lost']} | - |",
        f"| overload: an SDK client beside them | {sdk['frames_sent']} | {sdk['answered_by_the_server']} / "
        f"{sdk['answered_by_the_device_after_a_refusal']} after a refusal | {sdk['frames_lost']} | - |",
    ]
    fz = r["fuzz"]
    statuses = ", ".join(f"{n} `{s}`" for s, n in sorted(fz["statuses"].items(), key=lambda kv: -kv[1]))
    rows += [
        "",
        f"{fz['cases']} fuzzed requests: {statuses}; {fz['crashes']} crashes, RSS +{fz['rss_growth_mb']} MB.",
        "",
    ]
    rows += ["| security, alternating rounds | c1 p50 ms | c16 frames/s |", "|---|---|---|"]
    rows += [
        f"| {n} | {r['security'][n]['c1_p50_ms']} | {r['security'][n]['c16_fps']} |"
        for n in ("plaintext", "tls", "tls+token")
    ]
    rows += ["", "| target | measured | goal | verdict |", "|---|---|---|---|"]
    rows += [f"| {name} | {v} | {g} | {j} |" for name, (v, g, j) in r["ratios"].items()]
    rows += ["", f"At {r['settings'].get('commit', 'an unrecorded commit')}."]
    return "\n".join(rows)


def scale_table() -> str:
    """`make bench-scale`: offload-server against Ray Serve, as bench/scale.py prints it."""
    r = _load("scale.json")
    return f"{scale.markdown(r)}\n\nAt {r['settings'].get('commit', 'an unrecorded commit')}."


def faces_table() -> str:
    """`make bench-accuracy MODEL=face-detector`: each contender's F1 (the task's accuracy) and time on faces."""
    r = _load("accuracy_face-detector.json")
    rows = ["| contender | F1 | ms/frame | MB |", "|---|---|---|---|"]
    for c in r["rows"]:
        size = f"{c['model_bytes'] / 1e6:.2f}" if c["model_bytes"] else "-"
        rows.append(f"| {c['contender']} | {c['accuracy']:.3f} | {c['ms_per_frame']:.0f} | {size} |")
    settings = r["settings"]
    rows.append(f"\n{settings['frames_total']} frames (seeds {settings['seeds']}), one thread, "
                f"at {settings.get('commit', 'an unrecorded commit')}.")  # fmt: skip
    return "\n".join(rows)


def continuous_table() -> str:
    """`make bench-continuous`: every contender on what is on screen, per trace, and each target's verdict."""
    r = _load("continuous.json")
    rows = [
        "| contender | link | p99 ms | answer age p50 ms | det F1 | words | uplink KB | key frames "
        "| new sign read after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in r["runs"].items():
        contender, _, trace = name.partition("/")
        label = "none needed"
        if trace:
            label = TRACE_LABELS.get(trace, trace)
        elif contender == "perfect-link":
            label = "none"
        elif "delay_frames" in run:  # the causal bound
            contender, label = f"{contender} (fastest answer {run['delay_frames']} frames)", "none"
        p99 = "-" if run["p99_ms"] is None else f"{run['p99_ms']:.0f}"
        age = "-" if run["p50_age_ms"] is None else f"{run['p50_age_ms']:.0f}"
        delay = run["read_delay_frames_median"]
        read = "never (median)" if delay is None else f"{delay:.0f} frames"
        rows.append(
            f"| {contender} | {label} | {p99} | {age} | {run['detection_f1']:.3f} | {run['word_accuracy']:.3f} | "
            f"{run['uplink_bytes'] / 1024:.0f} | {run['key_frame_share']:.0%} | {read} |"
        )
    settings = r["settings"]
    rows.append("")
    rows.append(
        f"Pan video seed {settings['seed']}, {settings['frames']} frames at {settings['fps']:g} fps in real time, "
        f"device ×{settings['device_slowdown']:g} on one core, {settings['trace_offset']:g} s into each trace, "
        f"at {settings['commit']} ({settings.get('role', 'tuning')} seed: bench/seeds.py). p99: from a frame's "
        "arrival to its own answer (per-frame policies: of the frames they inferred). Targets:"
    )
    rows.append("")
    rows += [f"- {what}: **{verdict}**" for what, verdict in settings["verdicts"].items()]
    rows += ["", gap_to_bound(r["runs"])]
    return "\n".join(rows)


def gap_to_bound(runs: dict[str, Any]) -> str:
    """How far continuous mode on the slowest link stands from the causal bound, and its wait for a key frame."""
    bound = runs["causal-bound"]
    mine = runs["continuous-adaptive/Verizon-EVDO-driving"]
    return (
        f"On Verizon EVDO `continuous-adaptive` is {(bound['detection_f1'] - mine['detection_f1']) * 100:.1f} points "
        f"of F1 and {(bound['word_accuracy'] - mine['word_accuracy']) * 100:.1f} of words below the causal bound; "
        f"a new sign waits {mine['read_delay_frames_median']:.0f} frames (median) against the bound's "
        f"{bound['read_delay_frames_median']:.0f}."
    )


def roi_table() -> str:
    """`make bench-roi`: key frames whole or as regions, per key frame and end to end, with the verdicts."""
    return roi.markdown(_load("roi.json"))


def fleet_table() -> str:
    """`make bench-fleet`: every contender at every fleet size, and the verdicts."""
    return fleet.markdown(_load("fleet.json"))


def targets_met(verdicts: dict[str, Any]) -> str:
    """'N of M targets met', then each target not met with its figure: verdicts as `[value, goal, verdict]`
    lists or as the verdict strings bench-continuous and bench-roi write."""
    judged = {k: v if isinstance(v, str) else f"{v[0]} (goal {v[1]}): {v[2]}" for k, v in verdicts.items()}
    met = [k for k, v in judged.items() if v.endswith("met") and not v.endswith("NOT met")]
    missed = []
    for key, value in judged.items():
        if "NOT met" in value:
            figure = value.removesuffix("NOT met").removesuffix(": ")
            missed.append(key.split(" (")[0] + (f": {figure}" if figure else ""))
    line = f"{len(met)} of {len(judged)} targets met"
    return line + (f"; NOT met: {'; '.join(missed)}" if missed else "")


def headlines_table() -> str:
    """The README's one row per benchmark: each figure from the benchmark's results file."""
    cont, roi_r = _load("continuous.json"), _load("roi.json")
    runs = cont["runs"]
    adaptive = [r for name, r in runs.items() if name.startswith("continuous-adaptive/")]
    evdo = runs["continuous-adaptive/Verizon-EVDO-driving"]
    bound, remote = runs["causal-bound"], runs["always-remote/Verizon-EVDO-driving"]
    p99 = [r["p99_ms"] for r in adaptive]
    reads = [r["read_delay_frames_median"] for r in adaptive if r["read_delay_frames_median"] is not None]
    faults, server, scale_r = _load("faults.json"), _load("server.json"), _load("scale.json")
    accuracy, redaction, probe = _load("accuracy.json"), _load("redaction.json"), _load("probe_cost.json")
    rows = {r["contender"].split(" (")[0]: r for r in accuracy["rows"]}
    devices = [r for name, r in rows.items() if name.startswith("device")]
    thumbs = [r for r in probe["rows"] if r["probe"] == "thumbnail"]
    cells = {
        "`make bench-continuous`": (
            f"continuous mode at 15 fps, device ×3 on one core: p99 {min(p99):.0f}-{max(p99):.0f} ms, a new sign read "
            f"after {min(reads):.0f}-{max(reads):.0f} frames; on Verizon EVDO F1 {evdo['detection_f1']:.3f}, words "
            f"{evdo['word_accuracy']:.3f} (per-frame `always-remote` {remote['word_accuracy']:.3f}; causal bound "
            f"{bound['word_accuracy']:.3f}); {targets_met(cont['settings']['verdicts'])}"
        ),
        "`make bench-roi`": f"key frames as regions vs whole: {targets_met(roi_r['settings']['verdicts'])}",
        "`make bench-fleet`": f"one server, 1 to 32 phones: {fleet.targets_line(_load('fleet.json'))}",
        "`make bench-faults`": f"kill -9, a link outage, overload, 5000 fuzzed requests, TLS: "
        f"{targets_met(faults['ratios'])}",
        "`make bench-server`": f"the gRPC server against the raw model and naive FastAPI servers: "
        f"{targets_met(server['ratios'])}",
        "`make bench-scale`": f"the same service on Ray Serve, 1 and 2 replicas, on 2 shared cores: "
        f"{targets_met(scale_r['ratios'])}",
        "`make bench-accuracy`": (
            f"real photographs with small words: the server reads {rows['server']['word_accuracy']:.3f} of the words "
            f"({rows['server']['ms_per_frame']:.0f} ms), the device variants "
            f"{min(r['word_accuracy'] for r in devices):.3f}-{max(r['word_accuracy'] for r in devices):.3f} "
            f"({min(r['ms_per_frame'] for r in devices):.0f}-{max(r['ms_per_frame'] for r in devices):.0f} ms, "
            f"{min(r['model_bytes'] for r in devices) / 1e6:.1f} MB and up)"
        ),
        "`make bench-redact`": f"privacy `redact`: {targets_met(redaction['verdicts'])}",
        "`make bench-probe`": (
            f"one probe as a thumbnail ({thumbs[0]['kb']} KB) costs a ×3 device "
            f"{min(r['cpu_ms_median'] for r in thumbs)}-{max(r['cpu_ms_median'] for r in thumbs)} ms of CPU: "
            f"{min(r['share_of_device_frame'] for r in thumbs):.1%}-"
            f"{max(r['share_of_device_frame'] for r in thumbs):.1%} of a device frame"
        ),
    }
    lines = ["| other benchmarks | headline |", "|---|---|"]
    lines += [f"| {name} | {cell} |" for name, cell in cells.items()]
    lines.append(
        "| `make compose-test` | docker kill / network disconnect / stop during a demo: every frame answered |"
    )
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "policy": policy_table, "energy": energy_table, "redaction": redaction_table, "faults": faults_table,
    "scale": scale_table, "faces": faces_table, "continuous": continuous_table, "roi": roi_table,
    "headlines": headlines_table, "policy-runs": policy_runs_table,
    "server": server_table, "accuracy": accuracy_table, "fleet": fleet_table,
}  # fmt: skip


def rendered(text: str) -> str:
    """`text` with every results block rewritten from the results files."""

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise KeyError(f"no results table named {name!r}; known: {sorted(TABLES)}")
        return f"{match.group(1)}{TABLES[name]()}\n{match.group(4)}"

    return BLOCK.sub(fill, text)


def main() -> int:
    for page in PAGES:
        text = page.read_text()
        if (new := rendered(text)) != text:
            page.write_text(new)
            print(f"rewrote the results tables of {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
