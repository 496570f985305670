"""The repository stands alone: nothing in it points outside it, and committed results carry no machine's paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
# Built from parts so that this file does not match itself.
OUTSIDE = re.compile("|".join([re.escape(".." + "/shared"), "DESIGN" + r"\.md", "DESIGN" + " §"]))
ABSOLUTE = re.compile(r"(?<![\w.])/(?:work|root|home|tmp|Users|private)/")


def tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        return None


def test_no_file_refers_to_anything_outside_the_repository() -> None:
    hits = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in tracked()
        if (body := text(path)) is not None
        for match in [OUTSIDE.search(body)]
        if match
    ]
    assert not hits, hits


def test_committed_results_hold_no_absolute_paths() -> None:
    results = [p for p in tracked() if p.is_relative_to(ROOT / "bench" / "results")]
    assert results, "no committed results found"
    hits = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in results
        if (body := text(path)) is not None
        for match in [ABSOLUTE.search(body)]
        if match
    ]
    assert not hits, hits


def test_licence_notices_and_traces_are_in_the_repository() -> None:
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    notice = (ROOT / "NOTICE.md").read_text()
    for third_party in ("PP-OCR", "YuNet", "Mahimahi", "scikit-image", "Labeled Faces in the Wild"):
        assert third_party in notice, third_party
    traces = ROOT / "bench" / "traces" / "mahimahi"
    pairs = [(up, up.with_suffix(".down")) for up in sorted(traces.glob("*.up"))]
    assert len(pairs) == 3 and all(down.is_file() for _, down in pairs), pairs
    assert "NSDI 2013" in (ROOT / "bench" / "traces" / "README.md").read_text()


# The project speaks of itself only: a GPU host is any air-gapped host with a wheelhouse, never the
# tool or service one run of ours happened to borrow. Built from parts so that this file does not match itself.
BORROWED = re.compile(
    "|".join(["KINDS" + r"\.md", "device" + " tool", r"\$" + "OUT" + r"\b", "was" + " lent", "carry" + r" \["])
)


def test_no_file_speaks_of_where_a_machine_came_from() -> None:
    hits = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in tracked()
        if path.suffix in {".md", ".sh", ".py", ".yml", ".yaml", ""} and (body := text(path)) is not None
        for match in [BORROWED.search(body)]
        if match
    ]
    assert not hits, hits


def test_scripts_leave_git_s_own_files_alone() -> None:
    """A script that writes into .git/ changes a user's checkout behind their back (an exclude, a hook)."""
    hits = [p.name for p in (ROOT / "scripts").iterdir() if p.is_file() and ".git/" in (text(p) or "")]
    assert not hits, hits


def test_a_benchmark_s_commit_covers_every_distribution_s_code() -> None:
    """bench/record.py marks a result "+changes" when code it depends on differs: every package counts."""
    from bench.record import CODE

    packages = {p.parent.name for p in ROOT.glob("*/pyproject.toml")}
    assert packages and packages <= set(CODE), sorted(packages - set(CODE))


def test_no_sdk_module_needs_more_than_450_lines() -> None:
    """One concept per file: a module past this has two, and its seams are where to split it."""
    sdk = ROOT / "client" / "offload_client"
    long = {str(p.relative_to(sdk)): n for p in sdk.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long
