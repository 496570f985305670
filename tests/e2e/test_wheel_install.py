"""The SDK as an app uses it: both wheels built, the client wheel alone in a fresh venv far from the checkout.

Dependencies resolve from the declared ranges (no constraints file), as a user's `pip install` does.
The server runs from its own wheel in a second venv; the app has no access to the checkout's models/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload_server.testing import server_process

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
APP = Path(__file__).with_name("app_script.py")


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def venv(path: Path, *requirements: str, find_links: Path) -> Path:
    """A fresh virtual environment with `requirements` installed from the index (wheels from `find_links`)."""
    run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--find-links", str(find_links)]
    run([*pip, *requirements], cwd=path.parent)
    return path / "bin"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    for project in ("core", "client", "server"):
        run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT / project)], cwd=ROOT)
    return dist


@pytest.fixture(scope="module")
def app_env(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The client wheel alone, in a venv and a home of its own, outside the repository."""
    where = tmp_path_factory.mktemp("app")
    (client,) = wheels.glob("offload_client-*.whl")
    bin_dir = venv(where / "venv", str(client), find_links=wheels)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFLOAD_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(where / "home"), XDG_CACHE_HOME=str(where / "home" / ".cache"), PATH=f"{bin_dir}:/usr/bin:/bin")
    yield bin_dir, env


def wheel_files(wheels: Path, name: str) -> tuple[list[str], str]:
    """The files in distribution `name`'s wheel, and its METADATA."""
    import zipfile

    (wheel,) = wheels.glob(f"{name}-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        return names, z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()


def requirements(meta: str) -> list[str]:
    """The distributions METADATA requires without an extra (a Python-version marker is no extra)."""
    return sorted(re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)(?![^\n]*extra ==)", meta, re.M))


def test_the_wheels_carry_their_metadata_types_and_one_version(wheels: Path) -> None:
    """Three distributions, one job each: the shared core, the SDK (with its tools behind an extra), the server."""
    version = re.search(r'__version__ = "([^"]+)"', (ROOT / "client/offload_client/__init__.py").read_text())
    assert version
    core_files, core = wheel_files(wheels, "offload_core")
    assert "offload_core/py.typed" in core_files and "offload_core/proto/offload_pb2.pyi" in core_files
    assert requirements(core) == sorted(
        [
            "grpcio",
            "protobuf",
            "numpy",
            "onnxruntime",
            "opencv-python-headless",
            "pyclipper",
            "shapely",
            "pydantic",
            "pyyaml",
            "backports.zstd",
        ]
    )
    client_files, client = wheel_files(wheels, "offload_client")
    assert "offload_client/py.typed" in client_files and "offload_tools/dashboard.html" in client_files
    assert not any(f.startswith("offload_core/") for f in client_files)  # the engine ships once, in the core
    assert requirements(client) == ["offload-core"] and f"Requires-Dist: offload-core=={version.group(1)}" in client
    assert re.search(r"^Requires-Dist: rich.*extra == \"cli\"$", client, re.M)
    server_files, server = wheel_files(wheels, "offload_server")
    assert "offload_server/py.typed" in server_files
    for meta in (core, client, server):
        assert re.search(r"^Version: (\S+)$", meta, re.M).group(1) == version.group(1)  # type: ignore[union-attr]
    assert f"Requires-Dist: offload-core=={version.group(1)}" in server
    # A server that only serves needs no SDK: the tools' sample frames come with the `quantize` extra.
    assert "offload-client" not in requirements(server)
    assert re.search(r"^Requires-Dist: offload-client\[cli\].*extra == \"quantize\"$", server, re.M), server


def site_packages_mb(bin_dir: Path) -> dict[str, float]:
    """What the venv's packages take on disk, in MB, by top-level name (pip and setuptools left out)."""
    (site,) = (bin_dir.parent / "lib").glob("python3*/site-packages")
    sizes: dict[str, float] = {}
    for entry in site.iterdir():
        name = entry.name.split("-")[0].split(".")[0].lower()
        if name in ("pip", "setuptools", "_distutils_hack", "__pycache__"):
            continue
        files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
        sizes[name] = sizes.get(name, 0.0) + sum(f.stat().st_size for f in files) / 1e6
    return sizes


def test_the_sdk_alone_takes_what_the_readme_says(app_env: tuple[Path, dict[str, str]]) -> None:
    """README: "Installed alone, the SDK takes N MB (...)": measured here, in the app's fresh venv."""
    bin_dir, _ = app_env
    sizes = site_packages_mb(bin_dir)
    total = sum(sizes.values())
    claim = re.search(r"Installed alone, the SDK takes (\d+) MB", (ROOT / "README.md").read_text())
    assert claim, "the README no longer says what the SDK takes"
    biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
    # Versions resolve afresh on every install: within 15 % of the figure the README gives.
    assert abs(total - int(claim.group(1))) <= 0.15 * int(claim.group(1)), (round(total), biggest)
    assert "torch" not in sizes and "offload_server" not in sizes  # the SDK pulls no server or training stack


def test_an_app_offloads_pulls_its_device_model_then_runs_offline(
    wheels: Path, app_env: tuple[Path, dict[str, str]], tmp_path: Path, models_dir: Path
) -> None:
    bin_dir, env = app_env
    (server_wheel,) = wheels.glob("offload_server-*.whl")
    server_bin = venv(tmp_path / "server-venv", str(server_wheel), find_links=wheels)
    server = server_process(
        ["--model", "text-spotter", "--models-dir", str(models_dir)], exe=server_bin / "offload-server"
    )
    with server as (grpc_target, http_url):
        app = tmp_path / "app"
        app.mkdir()
        shutil.copy(APP, app / "app.py")  # far from the checkout: nothing of it on the path
        online = json.loads(run([str(bin_dir / "python"), "app.py", "online", grpc_target, http_url,
                                 str(DATA / "public_api.txt")], cwd=app, env=env))  # fmt: skip
        pulled = tmp_path / "pulled"
        out = run(
            [str(bin_dir / "offload"), "models", "pull", "--from", http_url, "--models-dir", str(pulled)], app, env
        )
        no_extra = subprocess.run([str(bin_dir / "offload"), "run", "--sample"], cwd=app, env=env,
                                  capture_output=True, text=True)  # fmt: skip
        # The server wheel alone serves (above) but cannot score the built-in models: it says what to install.
        no_tools = subprocess.run([str(server_bin / "offload-server"), "quantize", "--dry-run", "--models-dir",
                                   str(models_dir), "text-detector"], capture_output=True, text=True)  # fmt: skip
        assert no_tools.returncode != 0 and "offload-server[quantize]" in no_tools.stderr, no_tools.stderr[-2000:]
    where, reason, words = online["first"]
    assert where == "remote" and reason.startswith("no device model yet: pulling text-spotter") and words
    assert online["ready"] is True
    assert online["private"][:2] == ["local", 0] and online["private"][2]
    assert online["undeclared"] == [] and online["tools_loaded"] == []
    assert "device file(s) verified" in out and (pulled / "text-detector" / "model.yaml").is_file()
    assert no_extra.returncode != 0 and "pip install 'offload-client[cli]'" in no_extra.stderr

    # The server is gone: the device model the app pulled (in its per-user cache) answers every frame.
    offline = json.loads(run([str(bin_dir / "python"), "app.py", "offline", grpc_target], cwd=app, env=env))
    assert offline["all_local"], offline
    assert offline["adaptive"][0][2]  # it read the frame's words
    assert offline["local_only"] == [["local", 0], ["local", 0]]
    assert all(source == "tracked" and words for source, words in offline["continuous"]), offline["continuous"]
    cache = Path(env["XDG_CACHE_HOME"]) / "offload" / "models"
    assert (cache / "text-spotter" / "model.yaml").is_file()
