"""The model repository: `models/<name>/model.yaml` plus the weight files it names."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from offload_core.engine.session import SessionConfig, create_session
from offload_core.engine.spec import ModelSpec, VariantSpec, load_spec
from offload_core.engine.tasks.base import OnnxModel, Task
from offload_core.engine.tasks.registry import task_class


class ModelFileError(RuntimeError):
    """A weight file is missing or does not match its recorded sha256."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# The source checkout this package runs from, when it does (an editable install); None in a wheel install.
_CHECKOUT = Path(__file__).resolve().parents[3]
CHECKOUT: Path | None = _CHECKOUT if (_CHECKOUT / "client" / "pyproject.toml").is_file() else None


def default_models_dir() -> Path:
    """`$OFFLOAD_MODELS_DIR`, else the checkout's `models/` (development), else `~/.cache/offload/models`."""
    if env := os.environ.get("OFFLOAD_MODELS_DIR"):
        return Path(env).expanduser()
    if CHECKOUT is not None:
        return CHECKOUT / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "offload" / "models"


def how_to_get(root: Path) -> str:
    """What to do about missing or bad model files, in the terms of whoever runs this."""
    if CHECKOUT is not None and root.resolve() == (CHECKOUT / "models").resolve():
        return "build them with `make models`"
    return (
        "pull them from a server with `offload models pull --from http://SERVER:8000 MODEL`, "
        "or pass sync_models_from='http://SERVER:8000' to the client"
    )


class ModelRepository:
    """Reads model specs and builds tasks; weights are checked against their sha256 once."""

    def __init__(self, root: Path | str | None = None, synced: dict[tuple[str, str], Path] | None = None) -> None:
        self.root = Path(root) if root is not None else default_models_dir()
        # (model, variant) → a file fetched from a server and already verified against its sha256
        # (see `model_sync`): used instead of the repository's own file.
        self.synced = dict(synced or {})
        if not self.root.is_dir():
            raise FileNotFoundError(f"model repository {self.root} does not exist")
        self.specs: dict[str, ModelSpec] = {}
        for path in sorted(self.root.glob("*/model.yaml")):
            spec = load_spec(path)
            self.specs[spec.name] = spec
        self._verified: set[Path] = set()

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise KeyError(f"unknown model {name!r}; the repository {self.root} has {sorted(self.specs)}") from None

    def file_of(self, spec: ModelSpec, variant: VariantSpec) -> Path:
        """The variant's weight file, verified against the sha256 recorded in model.yaml."""
        if (spec.name, variant.name) in self.synced:
            return self.synced[(spec.name, variant.name)]
        assert variant.file is not None
        path = self.root / spec.name / variant.file
        if not path.is_file():
            raise ModelFileError(f"{path} is missing")
        if path not in self._verified and variant.sha256:
            actual = sha256_of(path)
            if actual != variant.sha256:
                raise ModelFileError(
                    f"{path} has sha256 {actual}, but model.yaml records {variant.sha256}; {how_to_get(self.root)}"
                )
            self._verified.add(path)
        return path

    def load(self, name: str, variant: str | None = None, config: SessionConfig | None = None) -> Task:
        """Build a runnable task for `name` at `variant` (the server variant when None).

        Every task is built one way: `Class(spec, variant, model)` for one ONNX file, or, for a
        pipeline, `Class(spec, variant, **stages)` with each stage's own task by its role.
        """
        spec = self.spec(name)
        chosen = spec.variant(variant)
        config = config or SessionConfig()
        build: Callable[..., Task] = task_class(spec.task, spec.name)  # its constructor's arguments vary
        if spec.pipeline:
            stages = {role: self.load(model, chosen.stages[role], config) for role, model in spec.pipeline.items()}
            return build(spec, chosen, **stages)
        file = self.file_of(spec, chosen)
        session = create_session(file, config, float_weights=chosen.weights_only)
        model = OnnxModel(session, io_binding=config.io_binding, source=file, float_weights=chosen.weights_only)
        return build(spec, chosen, model)
