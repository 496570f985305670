"""The on-device path: the model's device variant, loaded once, on a phone-sized thread budget.

The local model repository is `models_dir` (default: `default_models_dir()`, a per-user
cache in an installed app). When it lacks the model and `sync_from` (the server's HTTP URL)
is given, a background thread pulls `model.yaml` and the device files once (verified by
sha256); until then `missing` says why the device cannot answer, and the client sends
every frame to the server. When the model is there, `sync_from` keeps its files current:
a background thread fetches each file the device variant needs (verified, cached for
offline use, see `model_sync`) and swaps the new model in when all are ready. Inference
never waits for it, and a failed sync leaves the current files in place (`sync_error`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from offload_client.device_speed import DeviceSpeed
from offload_client.model_sync import ModelSyncError, cached, default_cache_dir, pull_model, sync_variant
from offload_client.policy.base import DeviceOption
from offload_client.security import Security
from offload_core.engine import ModelRepository, SessionConfig, Task
from offload_core.engine.repository import ModelFileError, default_models_dir, how_to_get
from offload_core.engine.spec import ModelSpec
from offload_core.engine.tasks.base import blank_frame
from offload_core.types import Prediction, StageTimes

log = logging.getLogger("offload_client")

Files = dict[tuple[str, str], Path]
BLANK_SHAPE = (480, 640)  # the empty frame each device variant is timed on at load (a phone camera's 4:3)


def device_files(model: str, models_dir: Path | str | None = None) -> list[tuple[str, str]]:
    """(model, variant) of every file `model`'s device variants run: one per stage for a pipeline."""
    spec = ModelRepository(models_dir).spec(model)
    files: dict[tuple[str, str], None] = {}
    for name in spec.device_ladder:
        variant = spec.variant(name)
        if spec.pipeline:
            files.update({(stage_model, variant.stages[role]): None for role, stage_model in spec.pipeline.items()})
        else:
            files[(model, name)] = None
    return list(files)


def missing_device_model(model: str, models_dir: Path) -> str:
    """ "" when the repository has `model`'s device files, intact; else why not, in the user's terms."""
    try:
        repo = ModelRepository(models_dir)
        for name, variant in device_files(model, models_dir):
            spec = repo.spec(name)
            repo.file_of(spec, spec.variant(variant))
    except (FileNotFoundError, KeyError, ModelFileError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        return f"no device model {model!r} in {models_dir} ({message}); {how_to_get(models_dir)}"
    return ""


def device_providers(wanted: list[str] | None) -> tuple[list[str], str]:
    """The execution providers the device model gets, and a note when some of `wanted` are missing.

    The app names the providers its phones have (CoreML, NNAPI, QNN, XNNPACK, ...); those this
    onnxruntime build lacks are skipped, and the CPU always closes the list.
    """
    available = ort.get_available_providers()
    wanted = list(wanted or ["CPUExecutionProvider"])
    usable = [p for p in wanted if p in available]
    absent = [p for p in wanted if p not in available]
    if "CPUExecutionProvider" not in usable:
        usable.append("CPUExecutionProvider")
    note = f"device providers {absent} are not in this onnxruntime build; the device model runs on {usable}"
    return usable, note if absent else ""


class LocalEngine:
    """Runs `model`'s device variants; each loads once, even across threads (`load_all` loads them all).

    `variant` is the default (the fastest); `variants` the whole ladder, fastest first.
    """

    def __init__(
        self,
        model: str,
        models_dir: Path | str | None = None,
        threads: int = 1,
        slowdown: float = 1.0,
        sync_from: str | None = None,
        cache_dir: Path | None = None,
        providers: list[str] | None = None,
        security: Security | None = None,
    ) -> None:
        self.model = model
        # Emulates a phone slower than this machine: each step takes `slowdown` times as long, in real work.
        self.device = DeviceSpeed(slowdown)
        self.slowdown = slowdown
        self.models_dir = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
        usable, self.provider_note = device_providers(providers)
        self.config = SessionConfig(providers=usable, intra_op_threads=threads)
        self.cache_dir = cache_dir or default_cache_dir()
        self.security = security
        self._tasks: dict[str, Task] = {}
        # Each variant's time on an empty frame, measured at load (see `_time_blank`).
        self.blank_ms: dict[str, float] = {}
        self._model_spec: ModelSpec | None = None
        self._lock = threading.Lock()
        self.sync_error: str | None = None
        self._files: Files = {}
        self.synced = threading.Event()
        # Set by `close`: a pull or sync in progress stops before loading its next variant.
        self._closing = threading.Event()
        self._worker: threading.Thread | None = None
        # Why the device model cannot answer now ("" when it can): the client sends frames to the server meanwhile.
        self.missing = missing_device_model(model, self.models_dir)
        if self.missing and sync_from:
            self.missing = f"no device model yet: pulling {model} from {sync_from}"
            self._start(self._pull, sync_from, "offload-model-pull")
        elif sync_from:
            # Offline: files synced on an earlier run serve from the cache until the sync says otherwise.
            self._files = {key: hit.path for key in self.device_files() if (hit := cached(self.cache_dir, *key))}
            self._start(self._sync, sync_from, "offload-model-sync")

    def _start(self, work: Callable[[str], None], url: str, name: str) -> None:
        self._worker = threading.Thread(target=work, args=(url,), name=name, daemon=True)
        self._worker.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop a pull or sync in progress, and wait for it.

        A daemon thread still creating or warming an onnxruntime session when the interpreter exits
        aborts the whole process ("terminate called without an active exception"): an app that ran a
        few frames and ended while its device model synced crashed on the way out.
        """
        self._closing.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout_s)

    def _pull(self, url: str) -> None:
        """First start with an empty repository: fetch the model once, then load it."""
        try:
            pull_model(url, self.model, self.models_dir, security=self.security)
            self.load_all()  # loaded and warmed before frames may use them
            self.missing = ""
            log.info("device model %s pulled from %s into %s", self.model, url, self.models_dir)
        except (ModelSyncError, ModelFileError, OSError, ValueError, KeyError) as exc:
            self.sync_error = str(exc)
            self.missing = (
                f"no device model: pulling {self.model} from {url} failed ({exc}); {how_to_get(self.models_dir)}"
            )
            log.warning("%s", self.missing)
        finally:
            self.synced.set()

    def device_files(self) -> list[tuple[str, str]]:
        return device_files(self.model, self.models_dir)

    def _load(self, files: Files, variant: str | None = None) -> Task:
        repo = ModelRepository(self.models_dir, synced=files)
        name = variant or repo.spec(self.model).device_variant
        task = repo.load(self.model, name, self.config)
        task.warmup(*BLANK_SHAPE)  # the shape timed next: a first run at a new shape allocates, and is slow
        self.blank_ms[name] = self._time_blank(task)
        return task

    def _time_blank(self, task: Task) -> float:
        """The variant's time on an empty frame as this device runs it (slowdown included, not waited).

        That is its fixed part (a text spotter's detector at its size; the words add the same recognizer
        calls to every variant), from which the policy predicts a variant on this device before it has run:
        the benchmark's ratio, measured on busy frames, put the detector at 800 at 1.5x the one at 480,
        and on the sparse frames of make bench-policy it took 2.3x (a missed deadline on its first frame).
        This thread's CPU time, not the wall clock: at start-up other threads (a server beside it in a
        test, the client's own) take the core, and the wall clock doubled some variants' times.
        """
        cpu = time.thread_time()
        task.run(blank_frame(*BLANK_SHAPE))
        return (time.thread_time() - cpu) * 1000.0 * self.slowdown

    def _sync(self, url: str) -> None:
        try:
            files: Files = {}
            for model, variant in self.device_files():
                files[(model, variant)] = sync_variant(
                    url, model, variant, cache=self.cache_dir, security=self.security
                ).path
            if files != self._files:
                # Loaded and warmed aside; frames keep using the current tasks.
                tasks = {}
                for name in self.variants:
                    if self._closing.is_set():
                        return
                    tasks[name] = self._load(files, name)
                with self._lock:
                    self._tasks, self._files = tasks, files
                log.info("device model %s now runs synced files %s", self.model, sorted(files.values()))
        except (ModelSyncError, OSError, ValueError) as exc:
            self.sync_error = str(exc)
            log.warning("model sync failed, the current device model stays: %s", exc)
        finally:
            self.synced.set()

    def load_all(self) -> None:
        """Load, warm and time every device variant now, so that no frame pays for creating a session.

        Loading and warming `device-accurate` takes ~0.3 s on one core: inside a frame, that frame is
        late, and the policy would learn the load as the variant's speed.
        """
        for name in self.variants:
            if self._closing.is_set():
                return
            self.task_for(name)

    @property
    def loaded(self) -> list[str]:
        """The device variants loaded and warmed so far, fastest first."""
        with self._lock:
            return [name for name in self.variants if name in self._tasks]

    @property
    def task(self) -> Task:
        """The default (fastest) device variant's task."""
        return self.task_for(None)

    def task_for(self, variant: str | None) -> Task:
        """The task of one device variant (None: the default), loaded on first use."""
        with self._lock:
            name = variant or self._spec().device_variant
            if name not in self._tasks:
                self._tasks[name] = self._load(self._files, name)
            return self._tasks[name]

    def _spec(self) -> ModelSpec:
        """The model's model.yaml, read once (only once the device model is there)."""
        if self._model_spec is None:
            self._model_spec = ModelRepository(self.models_dir).spec(self.model)
        return self._model_spec

    def options(self) -> tuple[DeviceOption, ...]:
        """The device variants with what the benchmark measured of them: the default first."""
        spec = self._spec()
        names = [spec.device_variant] + [n for n in spec.device_ladder if n != spec.device_variant]
        return tuple(
            DeviceOption(n, spec.variant(n).accuracy, spec.variant(n).latency_ms, self.blank_ms.get(n)) for n in names
        )

    def remote_jpeg_accuracy(self) -> tuple[tuple[int, float], ...]:
        """The server variant's measured word accuracy by JPEG quality, as this model.yaml records it."""
        spec = self._spec()
        return tuple(sorted(spec.variant(spec.server_variant).jpeg_accuracy.items(), reverse=True))

    @property
    def variants(self) -> list[str]:
        """The device variants this model offers, fastest first."""
        return self._spec().device_ladder

    @property
    def files(self) -> Files:
        """The synced files in use ({} while the bundled repository's files serve)."""
        with self._lock:
            return dict(self._files)

    @property
    def variant(self) -> str:
        return self.task.variant.name

    def run(
        self, frame: np.ndarray, stop: threading.Event | None = None, variant: str | None = None
    ) -> tuple[Prediction, StageTimes]:
        """Run a device variant (None: the default) on one frame; `stop` set from another thread cuts the
        emulated slowdown's extra work short.

        A client sets `stop` when the remote answer wins a race against this run: the
        result is no longer needed, and a phone would not spend the time either.
        """
        task = self.task_for(variant)
        # With one intra-op thread onnxruntime computes on this thread, so its CPU time is the model's.
        with self.device.paying(stop) as bill:
            prediction, stages = task.run(frame)
        if self.slowdown > 1.0:
            f = bill.scale()  # the stages add up to k x the run's CPU time, not k x its wall clock
            stages = StageTimes(
                preprocess_ms=stages.preprocess_ms * f,
                inference_ms=stages.inference_ms * f,
                postprocess_ms=stages.postprocess_ms * f,
            )
        return prediction, stages
