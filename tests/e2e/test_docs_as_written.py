"""Every shell line README.md and docs/ ask a user to type: run here, run by a named test, or why not.

`test_every_shell_line_has_a_place` fails on a line nobody placed, so a new command in the docs
needs a runner or a stated reason. The SDK's install lines, its `models pull` and the README's SDK
snippet run here letter by letter, in a fresh venv and a home of their own, outside the checkout;
only a host name such as `gpu-box:50051` becomes the address of a real server started for the test.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from offload_server.testing import server_process
from tests.unit.test_docs import PAGES, blocks

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
HERE = "run here"
BENCH = "a benchmark of minutes: run by hand; its results file records the command; tests/unit/test_bench_* drive it"
# Each line, by the words it starts with, and where it runs. The first prefix that matches places it.
PLACES: list[tuple[str, str]] = [
    ("make demo", HERE),
    ("make test-unit", "make test runs the unit tests among the rest"),
    ("make test", "CI (.ci/run), on a clean clone"),
    ("make compose-test", "CI (.ci/run)"),
    ("docker compose --profile gpu", "not here: needs an NVIDIA GPU and its container toolkit"),
    ("docker compose up", "make compose-test (CI): builds the images, `up`, kill, disconnect, stop"),
    ("docker compose --profile demo", "make compose-test (CI): the demo client against the server, through faults"),
    ("docker compose --profile", "make compose-test (CI) checks the file (`config`), starts none of these"),
    ("make lint", "a developer's check before each commit; ruff and mypy run on every change"),
    ("make proto", "tests/unit/test_sample_and_proto.py fails when the committed stubs differ from a fresh run"),
    ("make wheels", "tests/e2e/test_wheel_install.py builds the same three wheels and installs the client alone"),
    ("make bench-", BENCH),
    ("PYTHONPATH=/path/to/your/app make bench-accuracy", BENCH),
    ("pip install ./core ./client './server[ray]'", "make install installs the same (the Makefile): ray is ~1 GB"),
    ("pip install ./core ./client", HERE),
    ("serve run", "not here: a Ray cluster; tests/integration/test_ray_serve.py serves the same app in-process"),
    ("offload models pull", HERE),
    ("offload sample-video", HERE),
    ("offload run --sample --server localhost:50051 --dashboard", "tests/e2e/test_dashboard.py, in Chromium"),
    ("offload report", "tests/e2e/test_dashboard.py"),
    ("offload run --sample", "tests/e2e/test_commands.py (the sample, telemetry, summary and plot)"),
    ("offload run VIDEO --mode continuous", "tests/e2e/test_commands.py (a video at its camera rate)"),
    ("offload run my_video.mp4", "tests/e2e/test_commands.py (a video file)"),
    ("offload-server --grpc-port", "every test's server: offload_server.testing.server_process, on free ports"),
    ("offload linkem", "tests/integration/test_linkem.py (the same traces, delay and outage)"),
    ("scripts/gpu_wheels.sh", "not here: its wheelhouse is for a GPU host's Python (~400 MB of downloads)"),
    ("scripts/gpu_bench.sh", "not here: needs an NVIDIA GPU"),
    ("python bench/gpu_check.py", "not here: needs an NVIDIA GPU"),
    ("python make_model.py", "tests/e2e/test_your_model.py"),
    ("PYTHONPATH=. ", "tests/e2e/test_your_model.py"),
]


def shell_lines() -> list[str]:
    """Every command line of every bash block, comments dropped, as the user would type it."""
    lines = []
    for page in PAGES:
        for body in blocks(page, "bash"):
            lines += [shlex.join(words) for words in commands_with_assignments(body)]
    return lines


def commands_with_assignments(body: str) -> list[list[str]]:
    """A block's command lines, split, continuations joined; unlike test_docs.commands, `VAR=x` kept."""
    lines = (shlex.split(line, comments=True) for line in body.replace("\\\n", " ").splitlines())
    return [words for words in lines if words]


def place(line: str) -> str | None:
    return next((where for prefix, where in PLACES if line.startswith(prefix)), None)


def test_every_shell_line_has_a_place() -> None:
    unplaced = [line for line in shell_lines() if place(line) is None]
    assert not unplaced, f"say where these run, or why they cannot (PLACES): {unplaced}"
    assert [line for line in shell_lines() if place(line) == HERE], "nothing runs here"


def run(words: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(words)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def lines_starting(prefix: str) -> list[list[str]]:
    """The docs' lines that start with `prefix`, split into words, each distinct line once."""
    seen = dict.fromkeys(line for line in shell_lines() if line.startswith(prefix))
    return [shlex.split(line) for line in seen]


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh venv and home outside the checkout, with the SDK installed by the docs' own line."""
    where = tmp_path_factory.mktemp("user")
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True)
    bin_dir = where / "venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFLOAD_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(where / "home"), XDG_CACHE_HOME=str(where / "home" / ".cache"), PATH=f"{bin_dir}:/usr/bin:/bin")
    installs = [words for words in lines_starting("pip install") if place(shlex.join(words)) == HERE]
    assert installs, "the docs no longer say how to install the SDK"
    for words in installs:
        run([str(bin_dir / "pip"), *words[1:]], cwd=ROOT, env=env)  # `./core` is relative to the checkout
    yield bin_dir, env


def test_the_sdk_installs_pulls_and_runs_as_the_readme_says(
    user: tuple[Path, dict[str, str]], models_dir: Path, tmp_path: Path
) -> None:
    bin_dir, env = user
    app = tmp_path / "app"
    (app / "frames").mkdir(parents=True)
    from offload_tools.sample import render_frames

    frames, _ = render_frames(seed=19, frames=3)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(app / "frames" / f"{i}.png"), frame)
    readme = (ROOT / "README.md").read_text()
    (snippet,) = [b for b in blocks(ROOT / "README.md", "python") if "OffloadClient(" in b]
    assert snippet in readme
    with server_process(["--model", "text-spotter", "--models-dir", str(models_dir)]) as (grpc_target, http_url):
        hosts = {"http://gpu-box:8000": http_url, "gpu-box:50051": grpc_target}

        def real(text: str) -> str:
            for name, address in hosts.items():
                text = text.replace(name, address)
            return text

        (pull,) = lines_starting("offload models pull")
        out = run([str(bin_dir / "offload"), *shlex.split(real(shlex.join(pull)))[1:]], cwd=app, env=env)
        assert "device file(s) verified" in out, out
        frames_in = "import glob\nimport cv2\nframes = [cv2.imread(p) for p in sorted(glob.glob('frames/*.png'))]\n"
        report = "\nprint(result.where.value, len(result.words), oc.privacy)\n"
        (app / "app.py").write_text(frames_in + real(snippet) + report)
        said = run([str(bin_dir / "python"), "app.py"], cwd=app, env=env, timeout=300).split()
    assert said[0] in {"local", "remote"} and int(said[1]) > 0 and said[2].endswith("local-only"), said


def test_the_sample_video_commands_write_frames_and_truth(tmp_path: Path) -> None:
    """`offload sample-video` needs the cli extra: the checkout's venv has it, as docs/benchmarks.md assumes."""
    made = lines_starting("offload sample-video")
    assert len(made) >= 2, made
    for words in made:
        run([str(Path(sys.executable).parent / "offload"), *words[1:]], cwd=tmp_path, env=dict(os.environ))
        out = tmp_path / words[words.index("--out") + 1]
        assert (out / "sample.avi").stat().st_size > 0 and (out / "ground_truth.json").is_file(), words


def test_make_demo_runs_as_a_newcomer_types_it() -> None:
    """`make demo` in this checkout (its venv and models already built by `make test`)."""
    out = run(["make", "demo"], cwd=ROOT, env=dict(os.environ), timeout=600)
    assert "server stopped" in out, out[-2000:]
    telemetry = (ROOT / "out" / "demo" / "telemetry.jsonl").read_text().splitlines()
    assert len(telemetry) == 100, len(telemetry)  # every frame of the sample answered
