"""Smaller downloads over real HTTP, on the real device recognizer: the file compressed, a one-layer
update as a patch from the file the phone holds, and the plain file again whenever either does not
decode to the file the server promised, the old file serving meanwhile."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.model_update import int8_layers, retuned
from offload_client.model_sync import SyncResult, cached, sync_variant
from offload_core.engine.repository import sha256_of
from offload_core.model_transfer import HAVE_HEADER
from offload_server import Settings
from offload_server.model_downloads import PREVIOUS_FOLDER, WIRE_FOLDER
from offload_server.testing import serve_in_thread

pytestmark = pytest.mark.integration
MODEL, VARIANT, FILE = "text-recognizer", "int8-weights", "rec.int8-weights.onnx"


@pytest.fixture
def repo(models_dir: Path, tmp_path: Path) -> Path:
    """A copy of the recognizer's folder, which the test upgrades."""
    root = tmp_path / "models"
    shutil.copytree(models_dir / MODEL, root / MODEL, ignore=shutil.ignore_patterns(WIRE_FOLDER, PREVIOUS_FOLDER))
    return root


@pytest.fixture
def serving(repo: Path) -> Iterator[str]:
    with serve_in_thread(Settings(grpc_port=0, http_port=0, models_dir=repo, models=[MODEL], spin_wait=False)) as s:
        yield s.http_url


def upgrade(repo: Path) -> str:
    """Ship version 2 of the device file (one 230 KB layer retuned), keeping version 1 in `previous/`, as
    docs/models.md says; return the new file's sha256. The running server reads model.yaml at start,
    so a test starts a new one after this."""
    folder = repo / MODEL
    old = folder / FILE
    (folder / PREVIOUS_FOLDER).mkdir()
    layer = int8_layers(old)[1][0]  # the largest convolution
    new = retuned(old, layer)
    shutil.move(old, folder / PREVIOUS_FOLDER / FILE)
    old_sha = sha256_of(folder / PREVIOUS_FOLDER / FILE)
    old.write_bytes(new)
    spec = folder / "model.yaml"
    spec.write_text(spec.read_text().replace(old_sha, sha256_of(old)))
    return sha256_of(old)


def synced_v1(repo: Path, cache: Path) -> SyncResult:
    with serve_in_thread(Settings(grpc_port=0, http_port=0, models_dir=repo, models=[MODEL], spin_wait=False)) as s:
        return sync_variant(s.http_url, MODEL, VARIANT, cache=cache)


def test_the_device_file_comes_compressed_and_verified(serving: str, repo: Path, tmp_path: Path) -> None:
    result = sync_variant(serving, MODEL, VARIANT, cache=tmp_path)
    size = (repo / MODEL / FILE).stat().st_size
    assert result.downloaded and result.path.read_bytes() == (repo / MODEL / FILE).read_bytes()
    assert 0 < result.wire_bytes < 0.9 * size, (result.wire_bytes, size)
    plain = httpx.get(f"{serving}/v1/models/{MODEL}/variants/{VARIANT}", headers={"Accept-Encoding": "identity"})
    assert len(plain.content) == size  # a client that asks for nothing special gets the file, as before


def test_a_one_layer_update_downloads_a_patch_of_a_fifth_of_the_file_at_most(repo: Path, tmp_path: Path) -> None:
    v1 = synced_v1(repo, tmp_path / "cache")
    v2 = upgrade(repo)
    with serve_in_thread(Settings(grpc_port=0, http_port=0, models_dir=repo, models=[MODEL], spin_wait=False)) as s:
        result = sync_variant(s.http_url, MODEL, VARIANT, cache=tmp_path / "cache")
    size = (repo / MODEL / FILE).stat().st_size
    assert result.downloaded and result.sha256 == v2 != v1.sha256
    assert result.path.read_bytes() == (repo / MODEL / FILE).read_bytes()
    assert 0 < result.wire_bytes <= 0.2 * size, (result.wire_bytes, size)


def test_a_corrupted_compressed_file_is_replaced_by_the_plain_one(
    serving: str, repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = sync_variant(serving, MODEL, VARIANT, cache=tmp_path / "a")  # the server made its .zst
    [stored] = (repo / MODEL / WIRE_FOLDER).glob("*.zst")
    body = bytearray(stored.read_bytes())
    body[len(body) // 2] ^= 0xFF  # one flipped byte on the server's disk
    stored.write_bytes(bytes(body))
    with caplog.at_level(logging.WARNING, logger="offload_client.model_sync"):
        again = sync_variant(serving, MODEL, VARIANT, cache=tmp_path / "b")
    assert again.sha256 == first.sha256 and again.path.read_bytes() == (repo / MODEL / FILE).read_bytes()
    assert again.wire_bytes == (repo / MODEL / FILE).stat().st_size  # the plain file, verified
    assert "fetching the plain file instead" in caplog.text


def test_a_bad_patch_is_replaced_by_the_full_file_and_the_old_one_serves_meanwhile(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    v1 = synced_v1(repo, cache)
    v2 = upgrade(repo)
    with serve_in_thread(Settings(grpc_port=0, http_port=0, models_dir=repo, models=[MODEL], spin_wait=False)) as s:
        url = f"{s.http_url}/v1/models/{MODEL}/variants/{VARIANT}"
        assert httpx.get(url, headers={HAVE_HEADER: v1.sha256}).status_code == 200  # the server made its patch
        [stored] = (repo / MODEL / WIRE_FOLDER).glob("*.patch")
        body = bytearray(stored.read_bytes())
        body[len(body) // 2] ^= 0xFF
        stored.write_bytes(bytes(body))
        serving_meanwhile: list[str | None] = []

        def progress(received: int, total: int) -> None:
            now = cached(cache, MODEL, VARIANT)
            serving_meanwhile.append(now.sha256 if now else None)

        result = sync_variant(s.http_url, MODEL, VARIANT, cache=cache, on_progress=progress)
    assert result.sha256 == v2 and result.path.read_bytes() == (repo / MODEL / FILE).read_bytes()
    assert result.wire_bytes == (repo / MODEL / FILE).stat().st_size
    assert serving_meanwhile and set(serving_meanwhile) == {v1.sha256}  # v1 until v2 was verified
    now = cached(cache, MODEL, VARIANT)
    assert now is not None and now.sha256 == v2
