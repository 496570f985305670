"""What the server sends for a model file: the file, the file zstd-compressed, or a patch from the file
the client already holds (`offload_core.model_transfer`).

Compressed files and patches are made on the first request and kept in `<model>/.wire/` (or, where
the models folder is read-only, as in the server's image, under the system's temporary folder), named
by sha256 (a changed file never meets a stale copy): each costs the server's CPU once, not once per
phone. A patch needs the old file: every `.onnx` in the model's folder counts, and so does its
`previous/` folder, where a team keeps the files it shipped before (docs/models.md, "Shipping an
update"). A patch is sent only when it is smaller than the compressed file.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from offload_core import model_transfer
from offload_core.engine.repository import sha256_of

WIRE_FOLDER = ".wire"
PREVIOUS_FOLDER = "previous"


class Downloads:
    """The bodies the server can send for the model files under `root` (one model folder each)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        read_only = not os.access(root, os.W_OK)
        self._shared_wire = Path(tempfile.gettempdir()) / f"offload-wire-{os.getuid()}" if read_only else None
        self._made = threading.Lock()  # one thread compresses a given file; the others wait for it
        self._hashes: dict[tuple[Path, int, int], str] = {}  # (path, size, mtime) -> sha256

    def held_file(self, model: str, sha256: str) -> Path | None:
        """A file of `model` (current or previous) whose content hashes to `sha256`, if the server has one."""
        folder = self.root / model
        for path in sorted([*folder.glob("*.onnx"), *(folder / PREVIOUS_FOLDER).glob("*.onnx")]):
            if self._sha256(path) == sha256:
                return path
        return None

    def compressed(self, model: str, path: Path, sha256: str) -> Path:
        """`path` (which hashes to `sha256`) compressed with zstd."""
        return self._made_once(model, f"{sha256}.zst", lambda: model_transfer.compress(path.read_bytes()))

    def patch(self, model: str, old: Path, old_sha256: str, path: Path, sha256: str) -> Path | None:
        """A patch that turns `old` into `path`, or None when it would not be smaller than the compressed file."""
        made = self._made_once(
            model, f"{old_sha256}-{sha256}.patch", lambda: model_transfer.patch(old.read_bytes(), path.read_bytes())
        )
        return made if made.stat().st_size < self.compressed(model, path, sha256).stat().st_size else None

    def _made_once(self, model: str, name: str, make: Callable[[], bytes]) -> Path:
        target = (self._shared_wire / model if self._shared_wire else self.root / model / WIRE_FOLDER) / name
        with self._made:
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{name}.tmp")
                tmp.write_bytes(make())
                os.replace(tmp, target)
        return target

    def _sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = sha256_of(path)
        return self._hashes[key]
