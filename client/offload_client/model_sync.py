"""Model sync: fetch device models from the server, verify their sha256, keep them for offline use.

Two uses:
- `pull_model` fills an empty local model repository (a fresh app's first start, or
  `offload models pull`): the model's `model.yaml` (and its pipeline stages'), then every
  file of its device variant, each checked against the sha256 that `model.yaml` records.
- `sync_variant` keeps one variant current in a content-addressed cache
  (`<cache>/<model>/<sha256>.onnx`, plus a small pointer `<variant>.json` naming the good
  file), with `If-None-Match` so that an unchanged file costs one empty reply.

Every download streams into a temporary file in the destination folder and is hashed on
the way; only a file whose sha256 matches the promise replaces anything, atomically. A
download cut off, or one that does not match, leaves nothing behind and the previous good
file in use. Only the standard library is used: the SDK pulls no HTTP client of its own.

Example:
    >>> pull_model("http://gpu-box:8000", "text-spotter", Path("models"))                  # doctest: +SKIP
    >>> result = sync_variant("http://gpu-box:8000", "text-detector", "fp32-480")          # doctest: +SKIP
    >>> result.path, result.downloaded                                                      # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path

import yaml

from offload_client.security import Security
from offload_core import model_transfer
from offload_core.engine.repository import ModelRepository, sha256_of
from offload_core.engine.spec import known_fields_only
from offload_core.wire import SHA256_HEADER

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)


class ModelSyncError(RuntimeError):
    """A model could not be synced; the previous good file (if any) stays in use."""


@dataclass(frozen=True)
class SyncResult:
    path: Path
    sha256: str
    downloaded: bool  # False: the cached file was current (304) or the server was unreachable
    wire_bytes: int = 0  # what the download cost: a patch, the compressed file, or the plain file


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


class _OfflineError(Exception):
    """The server could not be reached at all (as opposed to answering with an error)."""


def _open(url: str, headers: dict[str, str], timeout_s: float, security: Security | None) -> HTTPResponse | None:
    """GET `url`; None on 304 Not Modified. Raises `_OfflineError` if unreachable, `ModelSyncError` on an error."""
    try:
        response: HTTPResponse = urllib.request.urlopen(
            urllib.request.Request(url, headers={**headers, **security.http_headers()} if security else headers),
            timeout=timeout_s,
            context=security.ssl_context() if security else None,
        )
        return response
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None
        body = exc.read().decode(errors="replace")[:300]
        raise ModelSyncError(f"GET {url} answered {exc.code}: {body}") from None
    except OSError as exc:  # URLError, refused, timed out, TLS failures
        raise _OfflineError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc


class _BadBodyError(Exception):
    """A compressed body or a patch that did not decode to the promised file: the plain file is asked for."""


class _Decoder:
    """Turns a response body into the file, chunk by chunk: as is, zstd-decompressed, or patched onto `held`."""

    def __init__(self, encoding: str, patch_from: str, held: tuple[Path, str] | None) -> None:
        self.patching = bool(patch_from)
        if self.patching and (held is None or patch_from != held[1]):
            raise _BadBodyError(f"a patch from {patch_from[:12]}, a file this client does not hold")
        if encoding and encoding != model_transfer.ZSTD:
            raise _BadBodyError(f"an encoding this client does not know: {encoding!r}")
        self._held = held[0] if held else None
        self._zstd = model_transfer.Decompressor() if encoding == model_transfer.ZSTD and not self.patching else None
        self._patch: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        """The file's bytes in `chunk`. Raises `model_transfer.TransferError` on a body that does not decode."""
        if self.patching:  # a patch is small and applies at once, at the end
            self._patch.append(chunk)
            return b""
        return self._zstd.feed(chunk) if self._zstd else chunk

    def finish(self) -> bytes:
        """The file's last bytes. Raises `model_transfer.TransferError` on a body that does not decode."""
        if self._zstd:
            self._zstd.finish()
        if not self.patching:
            return b""
        assert self._held is not None
        return model_transfer.apply_patch(self._held.read_bytes(), b"".join(self._patch))


@dataclass(frozen=True)
class _Received:
    path: Path  # a temporary file in the destination folder, verified
    sha256: str
    wire_bytes: int


def _save_verified(
    response: HTTPResponse,
    url: str,
    folder: Path,
    wanted: str,
    on_progress: Progress | None,
    decoder: _Decoder,
) -> _Received:
    """Stream the body through `decoder` into a temporary file in `folder`, hashing what it decodes to;
    keep it only if it hashes to `wanted`. A plain body that does not raises `ModelSyncError`; a
    compressed body or a patch, `_BadBodyError` (the caller asks for the plain file)."""
    total = int(response.headers.get("content-length") or 0)
    digest = hashlib.sha256()
    received = 0
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as out:
        tmp = Path(out.name)
    try:
        with tmp.open("wb") as out:
            while chunk := response.read(1 << 16):
                received += len(chunk)
                data = decoder.feed(chunk)
                out.write(data)
                digest.update(data)
                if on_progress:
                    on_progress(received, total)
            if total and received != total:
                raise _OfflineError(f"{url}: the download ended after {received} of {total} bytes")
            data = decoder.finish()
            out.write(data)
            digest.update(data)
        actual = digest.hexdigest()
        if not wanted or actual != wanted:
            what = "a patch that gave" if decoder.patching else "a file with"
            message = f"{url}: received {what} sha256 {actual}, expected {wanted or '(none sent)'}"
            if decoder.patching or response.headers.get("content-encoding"):
                raise _BadBodyError(message)
            raise ModelSyncError(f"{message}; refused, the previous file stays in use")
    except model_transfer.TransferError as exc:
        tmp.unlink(missing_ok=True)
        raise _BadBodyError(f"{url}: {exc}") from None
    except OSError as exc:  # the connection dropped or timed out mid-body
        tmp.unlink(missing_ok=True)
        raise _OfflineError(
            f"{url}: the download broke off after {received} bytes: {type(exc).__name__}: {exc}"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _Received(tmp, actual, received)


def _download(
    url: str,
    folder: Path,
    expected: str,
    held: tuple[Path, str] | None,
    headers: dict[str, str],
    timeout_s: float,
    security: Security | None,
    on_progress: Progress | None,
) -> _Received | None:
    """The file at `url`, verified, as a temporary file in `folder`; None when the server answers 304.

    Asks for the smallest body: a patch from `held` (the file the client holds: path and sha256),
    else the file zstd-compressed. When that body does not decode to the file it promised, the
    plain file is fetched once more and verified as before. `expected`: the sha256 the client
    wants (its model.yaml's); empty to take the server's word. Raises `ModelSyncError`, `_OfflineError`.
    """

    def once(held: tuple[Path, str] | None, headers: dict[str, str]) -> _Received | None:
        response = _open(url, headers, timeout_s, security)
        if response is None:
            return None
        with response:
            promised = response.headers.get(SHA256_HEADER, "")
            if expected and promised and promised != expected:
                raise ModelSyncError(
                    f"{url} offers a file with sha256 {promised}, but this client expects {expected}; "
                    "refusing it (update the client's model.yaml or the server)"
                )
            encoding = response.headers.get("content-encoding", "")
            decoder = _Decoder(encoding, response.headers.get(model_transfer.PATCH_FROM_HEADER, ""), held)
            return _save_verified(response, url, folder, expected or promised, on_progress, decoder)

    smaller = {**headers, "Accept-Encoding": model_transfer.ZSTD}
    if held:
        smaller[model_transfer.HAVE_HEADER] = held[1]
    try:
        return once(held, smaller)
    except _BadBodyError as exc:
        log.warning("%s; fetching the plain file instead", exc)
        return once(None, headers)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def sync_variant(
    http_url: str,
    model: str,
    variant: str,
    expected_sha256: str | None = None,
    cache: Path | None = None,
    on_progress: Progress | None = None,
    timeout_s: float = 60.0,
    offline_ok: bool = True,
    security: Security | None = None,
) -> SyncResult:
    """Make the cache hold the server's current file for `model`/`variant` and return it.

    `on_progress(received, total)` is called as bytes arrive (for a progress bar). With
    `offline_ok`, an unreachable server answers with the cached file when there is one. `security`:
    the CA, client certificate and token of an HTTPS server that wants them.
    Raises `ModelSyncError` when nothing verified can be had.
    """
    cache = cache or default_cache_dir()
    folder = cache / model
    folder.mkdir(parents=True, exist_ok=True)
    current = cached(cache, model, variant)
    headers = {"If-None-Match": f'"{current.sha256}"'} if current else {}
    url = f"{http_url.rstrip('/')}/v1/models/{model}/variants/{variant}"
    held = (current.path, current.sha256) if current else None
    try:
        received = _download(url, folder, expected_sha256 or "", held, headers, timeout_s, security, on_progress)
    except _OfflineError as exc:
        if offline_ok and current:
            return current
        raise ModelSyncError(str(exc)) from exc
    if received is None:
        if current:
            return current
        raise ModelSyncError(f"GET {url} answered 304 to a client that holds no file")
    final = folder / f"{received.sha256}.onnx"
    os.replace(received.path, final)
    _write_atomically(folder / f"{variant}.json", json.dumps({"sha256": received.sha256}).encode())
    return SyncResult(final, received.sha256, downloaded=True, wire_bytes=received.wire_bytes)


def pull_model(
    http_url: str,
    model: str,
    models_dir: Path,
    on_progress: Callable[[str, int, int], None] | None = None,
    timeout_s: float = 60.0,
    security: Security | None = None,
) -> list[Path]:
    """Fetch `model`'s `model.yaml` (and its stages') and its device variant's files into `models_dir`.

    Every file is checked against the sha256 its `model.yaml` records before it is kept; files
    already present and intact are not fetched again. `on_progress(name, received, total)` is
    called as bytes arrive. Returns the weight files now in place. Raises `ModelSyncError`.

    Example:
        >>> pull_model("http://gpu-box:8000", "text-spotter", Path("models"))  # doctest: +SKIP
    """
    base = http_url.rstrip("/")
    models_dir.mkdir(parents=True, exist_ok=True)

    def fetch_spec(name: str) -> None:
        url = f"{base}/v1/models/{name}/model.yaml"
        try:
            response = _open(url, {}, timeout_s, security)
            assert response is not None  # no If-None-Match was sent
            with response:
                text = response.read()
        except _OfflineError as exc:
            raise ModelSyncError(f"{exc}; is the server's HTTP port right (e.g. http://gpu-box:8000)?") from exc
        (models_dir / name).mkdir(exist_ok=True)
        try:  # a newer server's fields this SDK does not know are left out; the rest is checked as usual
            text = known_fields_only(text.decode()).encode()
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ModelSyncError(f"{url} is not a model.yaml: {' '.join(str(exc).split())[:200]}") from exc
        _write_atomically(models_dir / name / "model.yaml", text)

    fetch_spec(model)
    for stage in ModelRepository(models_dir).spec(model).pipeline.values():
        fetch_spec(stage)
    repo = ModelRepository(models_dir)
    spec = repo.spec(model)
    device = spec.variant(spec.device_variant)
    wanted = [(stage, device.stages[role]) for role, stage in spec.pipeline.items()] or [(model, device.name)]
    paths: list[Path] = []
    for name, variant_name in wanted:
        stage_spec = repo.spec(name)
        variant = stage_spec.variant(variant_name)
        assert variant.file is not None
        path = models_dir / name / variant.file
        paths.append(path)
        if path.is_file() and variant.sha256 and sha256_of(path) == variant.sha256:
            continue
        url = f"{base}/v1/models/{name}/variants/{variant_name}"
        progress: Progress | None = None
        if on_progress is not None:
            progress = functools.partial(on_progress, f"{name}/{variant_name}")
        held = (path, sha256_of(path)) if path.is_file() else None  # an earlier version: a patch from it
        try:
            received = _download(url, path.parent, variant.sha256 or "", held, {}, timeout_s, security, progress)
        except _OfflineError as exc:
            raise ModelSyncError(str(exc)) from exc
        assert received is not None  # no If-None-Match was sent
        os.replace(received.path, path)
    return paths
