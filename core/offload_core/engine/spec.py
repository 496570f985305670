"""`model.yaml`: what a model is, how to feed it, and which files make its variants."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class TaskKind(StrEnum):
    """The built-in tasks' names (offload-core's `offload.tasks` entry points); `task:` may name any other."""

    CLASSIFICATION = "classification"
    TEXT_DETECTION = "text-detection"
    TEXT_RECOGNITION = "text-recognition"
    TEXT_SPOTTER = "text-spotter"
    FACE_DETECTION = "face-detection"


class InputSpec(BaseModel):
    """How a frame becomes the model's input tensor."""

    model_config = ConfigDict(extra="forbid")

    name: str = "x"
    layout: str = "NCHW"
    color_order: str = "BGR"
    scale: float = 1.0 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0])
    # [height, width] for fixed-size models; the long side comes from the variant.
    size: list[int] | None = None


class BatchingSpec(BaseModel):
    """Dynamic batching on a server, in Triton's manner: wait at most `max_queue_delay_us` for company."""

    model_config = ConfigDict(extra="forbid")

    # None: on where the ONNX graph has a batch axis.
    enabled: bool | None = None
    # Per device kind, because the best batch differs by far: on a CPU a batch beyond 2 makes
    # each frame slower (`make bench-server`), on a GPU 16-32 frames share one call best (gpu.json).
    max_batch_size: dict[str, int] = Field(default_factory=lambda: {"cpu": 2, "cuda": 16})
    max_queue_delay_us: int = Field(default=2000, ge=0)
    # Batches in flight at once (Triton's instance group): two keep a CPU's cores or a GPU busy.
    instances: int = Field(default=2, ge=1)

    def max_batch_for(self, device: str) -> int:
        return max(1, self.max_batch_size.get(device, 1))


# The recipe that stores only the weights as int8: the file is small to ship, and the session turns
# the weights back into float when it loads (the model runs in float; see `create_session`).
WEIGHTS_ONLY_RECIPE = "int8-weights"
# Recipes whose files store weights only (int8 codes, or a palette and indices) and run in float.
WEIGHTS_ONLY_PREFIXES = (WEIGHTS_ONLY_RECIPE, "palette")


class VariantSpec(BaseModel):
    """One runnable form of a model: a file (or, for pipelines, one variant per stage)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    file: str | None = None
    sha256: str | None = None
    precision: str = "fp32"
    # Resolution knob: the long side for detectors, the height for recognizers.
    input_size: int | None = None
    stages: dict[str, str] = Field(default_factory=dict)
    # Post-processing settings of this variant only, over the model's `postprocess` (a measured trade of one
    # variant, e.g. a device recognizer's narrower padding).
    postprocess: dict[str, Any] = Field(default_factory=dict)
    # How `offload-server quantize` made this file from the model's fp32 file (e.g. "int8-qdq-pc");
    # `make models` rebuilds it from the recipe and the committed calibration ranges.
    recipe: str | None = None
    # Nodes the recipe keeps in float because quantizing them cost accuracy (measured, not guessed).
    keep_float: list[str] = Field(default_factory=list)
    # A recognizer's head trimmed to the characters of one script before the recipe (e.g. "latin": 136 of
    # PP-OCR's 6,623 characters, and 0.8 MB less to download); None: every character the model reads.
    alphabet: str | None = None
    # Share of words read right on the real-photo sample, as `make bench-accuracy` measured it (it writes
    # this field); the accuracy objective weighs paths by it. None: not measured.
    accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    # Its median time per frame on one thread, in the same run (only ratios between variants are used).
    latency_ms: float | None = Field(default=None, gt=0.0)
    # A server variant's word accuracy on frames sent as JPEG at each quality (same benchmark): small
    # words blur away at low qualities, which is what a slow link makes the client send.
    jpeg_accuracy: dict[int, float] = Field(default_factory=dict)

    @property
    def weights_only(self) -> bool:
        """Only its weights are stored small (int8, pruned or palettized): load it with
        `create_session(..., float_weights=True)`."""
        return self.recipe is not None and self.recipe.startswith(WEIGHTS_ONLY_PREFIXES)


class ModelSpec(BaseModel):
    """A parsed `model.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str = "1"
    # A built-in task (`TaskKind`), another `offload.tasks` entry point, or "package.module:Class".
    task: str = Field(min_length=1)
    description: str = ""
    input: InputSpec = Field(default_factory=InputSpec)
    labels: list[str] = Field(default_factory=list)
    postprocess: dict[str, Any] = Field(default_factory=dict)
    # Pipelines name their stage models: {"detector": "text-detector", ...}.
    pipeline: dict[str, str] = Field(default_factory=dict)
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    variants: list[VariantSpec]
    server_variant: str
    device_variant: str
    # What `offload-server quantize` favours among the device candidates within the accuracy budget:
    # the fastest (default), the smallest file, or the smallest download (an app that updates weekly).
    prefer: Literal["latency", "size", "small-download"] | None = None
    # The script the device's candidates read (a recognizer's head trimmed to it, e.g. "latin"): the server's
    # model keeps every character. None: the device reads what the server reads.
    device_alphabet: str | None = None
    # The variants a device may run, fastest first (`device_variant` among them; default: it alone).
    # A policy picks one per frame: the fast one for latency, a more accurate one when the deadline allows.
    device_variants: list[str] = Field(default_factory=list)
    source: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_variants(self) -> ModelSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r}: duplicate variant names in {names}")
        for role in ("server_variant", "device_variant"):
            if getattr(self, role) not in names:
                raise ValueError(f"model {self.name!r}: {role} {getattr(self, role)!r} is not one of {names}")
        for name in self.device_variants:
            if name not in names:
                raise ValueError(f"model {self.name!r}: device_variants names {name!r}, which is not one of {names}")
        if self.device_variants and self.device_variant not in self.device_variants:
            raise ValueError(
                f"model {self.name!r}: device_variants {self.device_variants} lack {self.device_variant!r}"
            )
        for v in self.variants:
            if self.pipeline:
                missing = set(self.pipeline) - set(v.stages)
                if missing:
                    raise ValueError(f"model {self.name!r} variant {v.name!r}: no variant for stages {sorted(missing)}")
            elif not v.file:
                raise ValueError(f"model {self.name!r} variant {v.name!r}: 'file' is required")
        return self

    @property
    def device_ladder(self) -> list[str]:
        """The device variants, fastest first: `device_variants`, or `device_variant` alone."""
        return list(self.device_variants) or [self.device_variant]

    def variant(self, name: str | None = None) -> VariantSpec:
        """The named variant, or the server variant when `name` is None."""
        wanted = name or self.server_variant
        for v in self.variants:
            if v.name == wanted:
                return v
        raise KeyError(f"model {self.name!r} has no variant {wanted!r}; it has {[v.name for v in self.variants]}")


def load_spec(path: Path) -> ModelSpec:
    """Parse and validate one `model.yaml`; a ValueError names the file and what is wrong in it."""
    try:
        with path.open() as f:
            data = yaml.safe_load(f)
        return ModelSpec.model_validate(data)
    except (yaml.YAMLError, ValueError) as exc:
        what = " ".join(str(exc).split())[:400]
        raise ValueError(f"{path} is not a valid model.yaml: {what}") from None


def known_fields_only(text: str) -> str:
    """A server's `model.yaml` with the fields this SDK does not know left out (and then its comments);
    the text unchanged when it knows them all.

    `model.yaml` is strict where people write it: a misspelt field is an error. A newer server may carry
    fields an SDK already in phones does not know (`alphabet` came after apps shipped); an app syncing its
    model from it must still load what it does know, not refuse the whole file.

    Example:
        >>> known_fields_only("name: m\\ntask: classification\\nfuture: 1\\n")
        'name: m\\ntask: classification\\n'
    """
    data = yaml.safe_load(text)
    known = _known(ModelSpec, data)
    return text if known == data else yaml.safe_dump(known, sort_keys=False, allow_unicode=True)


def _known(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            continue
        nested = _spec_class(field.annotation)
        if nested is not None and isinstance(value, list):
            value = [_known(nested, item) for item in value]
        elif nested is not None:
            value = _known(nested, value)
        out[key] = value
    return out


def _spec_class(annotation: Any) -> type[BaseModel] | None:
    """The model class a field holds (directly or as a list's items), if any."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
