"""Model sync: fetch a device variant from the server, verify its sha256, cache it for offline use.

The cache holds files by content (`<cache>/<model>/<sha256>.onnx`) and one small pointer
per variant (`<variant>.json`) naming the good file. A download streams into a temporary
file in the same folder and is hashed on the way; only a file whose sha256 matches what
the server (and, if known, `model.yaml`) promised replaces the pointer, atomically. A
download cut off, or one that does not match, leaves nothing behind and the previous
good file in use.

Example:
    >>> result = sync_variant("http://gpu-box:8000", "text-detector", "int8-qdq-pc-480")  # doctest: +SKIP
    >>> result.path, result.downloaded                                                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from offload_client.engine.repository import sha256_of

SHA256_HEADER = "X-Offload-Sha256"


class ModelSyncError(RuntimeError):
    """A variant could not be synced; the previous good file (if any) stays in use."""


@dataclass(frozen=True)
class SyncResult:
    path: Path
    sha256: str
    downloaded: bool  # False: the cached file was current (304) or the server was unreachable


def default_cache_dir() -> Path:
    """`$OFFLOAD_CACHE_DIR`, else `$XDG_CACHE_HOME/offload`, else `~/.cache/offload`."""
    if env := os.environ.get("OFFLOAD_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "offload"


def cached(cache: Path, model: str, variant: str) -> SyncResult | None:
    """The variant's last good file, if the cache has one that still hashes right.

    A file changed on disk since it was verified (a bad write, a user's edit) is no cache hit.
    """
    pointer = cache / model / f"{variant}.json"
    if not pointer.is_file():
        return None
    try:
        digest = json.loads(pointer.read_text())["sha256"]
    except (ValueError, KeyError):
        return None
    path = cache / model / f"{digest}.onnx"
    if not path.is_file() or sha256_of(path) != digest:
        return None
    return SyncResult(path, digest, downloaded=False)


def _write_pointer(folder: Path, variant: str, digest: str) -> None:
    tmp = folder / f".{variant}.json.tmp"
    tmp.write_text(json.dumps({"sha256": digest}))
    os.replace(tmp, folder / f"{variant}.json")


def sync_variant(
    http_url: str,
    model: str,
    variant: str,
    expected_sha256: str | None = None,
    cache: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 60.0,
    offline_ok: bool = True,
) -> SyncResult:
    """Make the cache hold the server's current file for `model`/`variant` and return it.

    `on_progress(received, total)` is called as bytes arrive (for a progress bar). With
    `offline_ok`, an unreachable server answers with the cached file when there is one.
    Raises `ModelSyncError` when nothing verified can be had.
    """
    cache = cache or default_cache_dir()
    folder = cache / model
    folder.mkdir(parents=True, exist_ok=True)
    current = cached(cache, model, variant)
    headers = {"If-None-Match": f'"{current.sha256}"'} if current else {}
    url = f"{http_url.rstrip('/')}/v1/models/{model}/variants/{variant}"
    tmp_path: Path | None = None
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout_s) as response:
            if response.status_code == 304 and current:
                return current
            if response.status_code != 200:
                response.read()
                raise ModelSyncError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
            promised = response.headers.get(SHA256_HEADER, "")
            if expected_sha256 and promised and promised != expected_sha256:
                raise ModelSyncError(
                    f"the server offers {model}/{variant} with sha256 {promised}, but this client expects "
                    f"{expected_sha256}; refusing it (update the client's model.yaml or the server)"
                )
            total = int(response.headers.get("content-length", 0))
            digest = hashlib.sha256()
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as out:
                tmp_path = Path(out.name)
                received = 0
                for chunk in response.iter_bytes(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if on_progress:
                        on_progress(received, total)
            if total and received != total:
                raise ModelSyncError(f"{url}: the download ended after {received} of {total} bytes")
    except httpx.HTTPError as exc:
        _remove(tmp_path)
        if offline_ok and current:
            return current
        raise ModelSyncError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        _remove(tmp_path)
        raise
    assert tmp_path is not None
    actual = digest.hexdigest()
    wanted = expected_sha256 or promised
    if not wanted or actual != wanted:
        _remove(tmp_path)
        raise ModelSyncError(
            f"{url}: received a file with sha256 {actual}, expected {wanted or '(none sent)'}; "
            "refused, the previous file stays in use"
        )
    final = folder / f"{actual}.onnx"
    os.replace(tmp_path, final)
    _write_pointer(folder, variant, actual)
    return SyncResult(final, actual, downloaded=True)


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
