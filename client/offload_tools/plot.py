"""Pictures of a run: latency per frame over time, coloured by where each frame ran."""

from __future__ import annotations

from pathlib import Path

from offload_core.types import FrameResult, Where


def plot_latency(results: list[FrameResult], path: Path, title: str) -> Path | None:
    """Write a PNG; returns None when matplotlib is not installed (it is an optional extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(10, 4))
    for where, color in ((Where.LOCAL, "tab:blue"), (Where.REMOTE, "tab:orange")):
        xs = [r.frame_id for r in results if r.where == where]
        ys = [r.latency_ms for r in results if r.where == where]
        ax.scatter(xs, ys, s=12, color=color, label=f"{where} ({len(xs)})")
    fallbacks = [r for r in results if r.reason.startswith("fallback")]
    if fallbacks:
        ax.scatter(
            [r.frame_id for r in fallbacks],
            [r.latency_ms for r in fallbacks],
            s=40,
            facecolors="none",
            edgecolors="red",
            label=f"fallback ({len(fallbacks)})",
        )
    ax.set_xlabel("frame")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
