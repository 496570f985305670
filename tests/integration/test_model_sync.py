"""Model sync over real HTTP: download + verify + cache, 304, refusals, cut-off downloads, offline use."""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from offload_client.local import LocalEngine
from offload_client.model_sync import ModelSyncError, SyncResult, cached, sync_variant
from offload_core.engine.repository import sha256_of
from offload_server import OffloadServer, Settings
from offload_server.testing import serve_in_thread, unused_port

pytestmark = pytest.mark.integration


def same_file(a: SyncResult | None, b: SyncResult) -> bool:
    return a is not None and (a.path, a.sha256) == (b.path, b.sha256)


@pytest.fixture(scope="module")
def tiny_server(tiny_repo: Path) -> Iterator[OffloadServer]:
    with serve_in_thread(Settings(grpc_port=0, http_port=0, models_dir=tiny_repo, models=["tiny"])) as server:
        yield server


def test_download_is_verified_cached_and_then_answered_304(
    tiny_server: OffloadServer, tiny_repo: Path, tmp_path: Path
) -> None:
    source = tiny_repo / "tiny" / "model.onnx"
    first = sync_variant(tiny_server.http_url, "tiny", "fp32", cache=tmp_path)
    assert first.downloaded and first.sha256 == sha256_of(source)
    assert first.path.read_bytes() == source.read_bytes()

    seen: list[int] = []
    again = sync_variant(tiny_server.http_url, "tiny", "fp32", cache=tmp_path, on_progress=lambda r, t: seen.append(r))
    assert not again.downloaded and again.path == first.path and seen == []  # 304: not one body byte

    response = httpx.get(
        f"{tiny_server.http_url}/v1/models/tiny/variants/fp32", headers={"If-None-Match": f'"{first.sha256}"'}
    )
    assert response.status_code == 304 and response.content == b""


def test_unknown_variants_get_a_clear_404(tiny_server: OffloadServer) -> None:
    response = httpx.get(f"{tiny_server.http_url}/v1/models/tiny/variants/int4")
    assert response.status_code == 404
    assert "has no variant 'int4'" in response.text and "fp32" in response.text


def _one_shot_server(body: bytes, promised_sha256: str, cut: bool = False) -> tuple[str, threading.Thread]:
    """An HTTP server that answers one GET with `body`, promising `promised_sha256` and its whole length.

    With `cut` it hangs up halfway through the body, as a dropped cellular link does.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        head = (
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
            f"content-length: {len(body)}\r\nX-Offload-Sha256: {promised_sha256}\r\nconnection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + (body[: len(body) // 2] if cut else body))
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}", thread


def test_a_body_that_does_not_hash_to_the_promise_is_refused_and_the_old_file_stays(
    tiny_server: OffloadServer, tiny_repo: Path, tmp_path: Path
) -> None:
    good = sync_variant(tiny_server.http_url, "tiny", "fp32", cache=tmp_path)
    # A server (or a proxy on the way) promises the real file's sha256 but sends other bytes.
    tampered = (tiny_repo / "tiny" / "model.onnx").read_bytes() + b"tampered"
    url, thread = _one_shot_server(tampered, promised_sha256=good.sha256)
    with pytest.raises(ModelSyncError, match="refused, the previous file stays in use"):
        sync_variant(url, "tiny", "fp32", cache=tmp_path)
    thread.join(5)
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [good.path.name, "fp32.json"]  # nothing else
    assert same_file(cached(tmp_path, "tiny", "fp32"), good)


def test_a_file_other_than_the_one_the_client_expects_is_refused(tiny_server: OffloadServer, tmp_path: Path) -> None:
    good = sync_variant(tiny_server.http_url, "tiny", "fp32", cache=tmp_path)
    (tmp_path / "tiny" / "fp32.json").unlink()  # forget the cached copy, so that the client downloads again
    with pytest.raises(ModelSyncError, match="refusing it"):
        sync_variant(tiny_server.http_url, "tiny", "fp32", expected_sha256="0" * 64, cache=tmp_path)
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [good.path.name]


def test_a_download_cut_off_leaves_no_partial_file_and_the_old_variant_in_use(
    tiny_server: OffloadServer, tiny_repo: Path, tmp_path: Path
) -> None:
    old = sync_variant(tiny_server.http_url, "tiny", "fp32", cache=tmp_path)
    new_body = (tiny_repo / "tiny" / "model.onnx").read_bytes() + b"\0" * 1_000_000  # a "newer" file
    received: list[int] = []
    url, thread = _one_shot_server(new_body, hashlib.sha256(new_body).hexdigest(), cut=True)
    # The cut-off server does not know the cached ETag: it sends a (broken) new file.
    result = sync_variant(url, "tiny", "fp32", cache=tmp_path, on_progress=lambda r, t: received.append(r))
    thread.join(5)
    assert received and 0 < received[-1] < len(new_body)  # a temporary file was really being written
    assert same_file(result, old) and not result.downloaded  # offline_ok: the previous good file serves
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [old.path.name, "fp32.json"]
    assert same_file(cached(tmp_path, "tiny", "fp32"), old)

    url, thread = _one_shot_server(new_body, hashlib.sha256(new_body).hexdigest(), cut=True)
    with pytest.raises(ModelSyncError):
        sync_variant(url, "tiny", "fp32", cache=tmp_path / "empty")
    thread.join(5)
    assert list((tmp_path / "empty" / "tiny").iterdir()) == []


def test_a_cached_file_changed_on_disk_is_no_cache_hit(tiny_server: OffloadServer, tmp_path: Path) -> None:
    good = sync_variant(tiny_server.http_url, "tiny", "fp32", cache=tmp_path)
    good.path.write_bytes(good.path.read_bytes()[:-1] + b"x")
    assert cached(tmp_path, "tiny", "fp32") is None
    again = sync_variant(tiny_server.http_url, "tiny", "fp32", cache=tmp_path)  # fetched afresh, not 304
    assert again.downloaded and same_file(cached(tmp_path, "tiny", "fp32"), again)


def test_offline_the_cache_serves(tiny_server: OffloadServer, tmp_path: Path) -> None:
    good = sync_variant(tiny_server.http_url, "tiny", "fp32", cache=tmp_path)
    offline = sync_variant(f"http://127.0.0.1:{unused_port()}", "tiny", "fp32", cache=tmp_path, timeout_s=2)
    assert same_file(offline, good)
    with pytest.raises(ModelSyncError, match="cannot fetch"):
        sync_variant(f"http://127.0.0.1:{unused_port()}", "tiny", "fp32", cache=tmp_path / "none", timeout_s=2)


def _stale_copy(tiny_repo: Path, root: Path) -> Path:
    """The client's own repository, holding an older "tiny" whose weights pick the wrong colour."""
    shutil.copytree(tiny_repo, root)
    path = root / "tiny" / "model.onnx"
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if t.name == "w")
    weight.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(weight), "w"))
    onnx.save(model, str(path))
    spec = root / "tiny" / "model.yaml"
    spec.write_text(spec.read_text().replace(sha256_of(tiny_repo / "tiny" / "model.onnx"), sha256_of(path)))
    return root


def test_the_device_model_is_replaced_by_the_servers_in_the_background_and_cached(
    tiny_server: OffloadServer, tiny_repo: Path, tmp_path: Path
) -> None:
    models = _stale_copy(tiny_repo, tmp_path / "client-models")
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 2] = 255  # BGR
    assert LocalEngine("tiny", models).run(red)[0].classes[0].label != "red"  # the stale bundled model

    engine = LocalEngine("tiny", models, sync_from=tiny_server.http_url, cache_dir=tmp_path / "cache")
    engine.run(red)  # serves at once, whichever files are current
    assert engine.synced.wait(30) and engine.sync_error is None
    [(key, path)] = engine.files.items()
    assert key == ("tiny", "fp32") and path.parent == tmp_path / "cache" / "tiny"
    assert engine.run(red)[0].classes[0].label == "red"  # the server's model now answers

    # Next start, offline: the cached file serves from the first frame.
    offline = LocalEngine("tiny", models, sync_from=f"http://127.0.0.1:{unused_port()}", cache_dir=tmp_path / "cache")
    assert offline.files == engine.files
    assert offline.run(red)[0].classes[0].label == "red"
    assert offline.synced.wait(30) and offline.sync_error is None


def test_closing_waits_for_a_sync_in_progress(tiny_server: OffloadServer, tiny_repo: Path, tmp_path: Path) -> None:
    """An app that ends while its device model syncs must not leave a thread loading onnxruntime sessions
    into the interpreter's exit (it aborted the process: "terminate called without an active exception")."""
    models = _stale_copy(tiny_repo, tmp_path / "client-models")
    engine = LocalEngine("tiny", models, sync_from=tiny_server.http_url, cache_dir=tmp_path / "cache")
    worker = engine._worker
    assert worker is not None
    engine.close()
    assert not worker.is_alive()
    # A sync told to stop before it loaded keeps the files it had: the engine still answers.
    red = np.zeros((8, 8, 3), np.uint8)
    assert engine.run(red)[0].classes
