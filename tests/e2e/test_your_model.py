"""docs/your-model.md, run as written: a model and task this repository has never seen, end to end.

Every block whose first line is `# <path>` is saved under that path in a fresh folder; the page's
commands then run there: build the model, serve it, run the app with the server up and with it
gone, and quantize it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from offload_server.testing import server_process

pytestmark = pytest.mark.e2e
PAGE = Path(__file__).resolve().parents[2] / "docs" / "your-model.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
BIN = Path(sys.executable).parent


def page_files() -> dict[str, str]:
    files = {}
    for _, body in FENCE.findall(PAGE.read_text()):
        if named := re.match(r"# ([\w./-]+\.(?:py|yaml))\n", body):
            files[named.group(1)] = body
    return files


def page_commands() -> list[list[str]]:
    """The page's shell lines, split; `PYTHONPATH=.` and the like left in place."""
    lines = []
    for lang, body in FENCE.findall(PAGE.read_text()):
        if lang == "bash":
            lines += [shlex.split(line) for line in body.splitlines() if line.strip()]
    return lines


def command(prefix: str) -> list[str]:
    """The page's first command that starts with `prefix` (its `VAR=value` words dropped)."""
    want = prefix.split()
    for words in page_commands():
        program = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]
        if program[: len(want)] == want:
            return program
    raise AssertionError(f"docs/your-model.md has no `{prefix}` command")


def run(words: list[str], cwd: Path, timeout: float = 300) -> str:
    program = {"python": sys.executable}.get(words[0], str(BIN / words[0]))
    # The page's `PYTHONPATH=.`; and a home of its own, so that no cache under the real one (models pulled
    # by another test, a telemetry folder) is shared with the rest of the suite.
    home = cwd / "home"
    env = {**os.environ, "PYTHONPATH": str(cwd), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    done = subprocess.run([program, *words[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(words)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def answers(out: str) -> list[tuple[str, int, str, str]]:
    """The app's lines: (policy, brightness level, where, label)."""
    return [
        (policy, int(level), where, label) for policy, level, where, label in (ln.split() for ln in out.splitlines())
    ]


def test_the_tutorial_serves_pulls_runs_offline_and_quantizes_a_model_from_outside(tmp_path: Path) -> None:
    for name, body in page_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    assert (tmp_path / "my_app" / "tasks.py").is_file() and (tmp_path / "app.py").is_file()
    run(command("python make_model.py"), tmp_path)

    serve = command("offload-server --models-dir")
    truth = {30: "dark", 220: "bright", 90: "dark", 180: "bright"}
    home = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache")}
    with server_process(serve[1:], env={"PYTHONPATH": str(tmp_path), **home}, cwd=tmp_path) as (target, http_url):
        online = answers(run([*command("python app.py"), target, http_url], tmp_path))
        served = httpx.get(f"{http_url}/metrics", timeout=10).text
    policies = ("always-remote", "adaptive")
    assert [(p, level, label) for p, level, _, label in online] == [(p, *t) for p in policies for t in truth.items()]
    # The server answered every frame always-remote sent, and the metrics counted each once.
    remote = [where for p, _, where, _ in online if p == "always-remote"]
    assert remote == ["remote"] * len(truth), online
    sent = sum(where == "remote" for _, _, where, _ in online)
    counted = re.search(r'^offload_requests_total\{model="brightness",status="OK"\} (\S+)$', served, re.M)
    # Adaptive's probes are answered too: they refresh its estimates while the device answers the frame.
    assert counted and float(counted.group(1)) >= sent, (sent, [ln for ln in served.splitlines() if "requests" in ln])
    pulled = tmp_path / "device-models" / "brightness"
    assert (pulled / "model.yaml").is_file() and (pulled / "brightness.onnx").is_file()

    # The server is gone: the device model the app pulled answers every frame, whatever the policy.
    offline = answers(run([*command("python app.py"), target, http_url], tmp_path))
    assert offline == [(p, level, "local", label) for p in policies for level, label in truth.items()]

    out = run(command("offload-server quantize"), tmp_path, timeout=600)
    assert "int8" in out, out
    spec = yaml.safe_load((tmp_path / "models" / "brightness" / "model.yaml").read_text())
    assert spec["device_variant"] in {v["name"] for v in spec["variants"]}
    assert spec["task"] == "my_app.tasks:Brightness"  # the toolchain kept the file's own lines
