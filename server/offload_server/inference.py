"""The serving core: decode, queue, run and post-process one request, off the event loop.

Decoding, pre- and post-processing run in a worker pool sized to the cores; model
calls run in the batcher's instance threads, fed by a dynamic batcher per model where
the model can batch. A request that arrives with nobody to batch with runs start to
finish in one instance thread. The gRPC servicer and the HTTP app are thin adapters
over this class.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import grpc
import numpy as np

from offload_core.engine import ModelRepository, SessionConfig, Task
from offload_core.engine.image import ImageError, decode_image, image_from_raw
from offload_core.engine.repository import ModelFileError
from offload_core.engine.session import create_session
from offload_core.engine.spec import ModelSpec
from offload_core.engine.tasks.base import BatchableTask, OnnxModel, Prepared, blank_frame
from offload_core.engine.tasks.registry import task_class
from offload_core.proto import offload_pb2 as pb
from offload_core.regions import READ_REGIONS, REGIONS, canvas, check_regions, find_parts, shifted
from offload_core.types import Prediction, StageTimes
from offload_core.wire import prediction_to_pb, server_timings_to_pb
from offload_server.admission import Admission, Load
from offload_server.batcher import DynamicBatcher
from offload_server.config import Settings
from offload_server.errors import ServiceError
from offload_server.metrics import Metrics
from offload_server.regions import read_regions

__all__ = ["InferenceService", "ServiceError"]

Key = tuple[str, str]  # (model, variant)
IMAGE_FORMATS = {"", "jpeg", "jpg", "png", "webp"}

log = logging.getLogger("offload_server")


def shown(value: object, limit: int = 80) -> str:
    """`value`'s repr, cut to `limit` characters: status messages travel in gRPC trailers (8 KB at most)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _joined(
    parts: list[tuple[Prediction, StageTimes, float, float, int]],
) -> tuple[Prediction, StageTimes, float, float, int]:
    """The answers for a request's parts (`find_parts`) as one: every box, the work added up, the longest wait."""
    prediction, stages, decode_ms, queue_ms, batch = parts[0]
    for p, st, d, q, b in parts[1:]:
        prediction = prediction.model_copy(
            update={"boxes": prediction.boxes + p.boxes, "texts": prediction.texts + p.texts}
        )
        stages, decode_ms, queue_ms, batch = stages + st, decode_ms + d, max(queue_ms, q), max(batch, b)
    return prediction, stages, decode_ms, queue_ms, batch


def load_to_pb(load: Load) -> pb.ServerLoad:
    return pb.ServerLoad(
        predicted_wait_ms=load.predicted_wait_ms, queue_length=load.queue_length, service_ms=load.service_ms
    )


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class InferenceService:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.repository = ModelRepository(settings.models_dir)
        self.session_config = SessionConfig(
            providers=settings.providers,
            intra_op_threads=settings.intra_op_threads,
            spin_wait=settings.spin_wait,
            io_binding=settings.io_binding,
        )
        self.names = settings.models or sorted(self.repository.specs)
        self.tasks: dict[Key, Task] = {}
        self.batchers: dict[Key, DynamicBatcher] = {}
        per_client = settings.max_queue_per_client or max(2, settings.max_queue // 4)
        self.admission = Admission(self.names, settings.max_queue, metrics, settings.deadline_admission, per_client)
        # Requests being decoded per (model, variant): the batcher's reason to wait for company.
        self.preparing: dict[Key, int] = {}
        self.decode_pool = ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="decode")
        # Loading, and models that cannot batch; batchable models run on their batcher's instances.
        self.inference_pool = ThreadPoolExecutor(1, thread_name_prefix="inference")
        self.ready = False
        # Models whose task failed to load or warm up → why (see `load`).
        self.broken: dict[str, str] = {}
        self._accepts: dict[str, tuple[str, ...]] = {}  # see `accepts`

    def load(self) -> None:
        """Load and warm up every served model's server variant (blocking; call off the loop).

        Missing or corrupt files stop the server (its repository is incomplete). A model whose own
        task code fails to import or to warm up is set aside in `broken` with the reason: its requests
        get FAILED_PRECONDITION saying why, and the other models serve.
        """
        for name in self.names:
            spec = self.repository.spec(name)
            try:
                task = self._task(name, spec.server_variant)
                task.warmup()
                if isinstance(task, BatchableTask) and task.can_batch:
                    self._batcher(name, spec.server_variant, task).warmup(task.prepare(blank_frame()).tensor)
            except (ModelFileError, FileNotFoundError):
                raise
            except Exception as exc:
                self.broken[name] = f"{type(exc).__name__}: {exc}"
                log.error("model %r is not served: %s", name, self.broken[name])
        self.ready = True

    def _task(self, model: str, variant: str) -> Task:
        key = (model, variant)
        if key not in self.tasks:
            self.tasks[key] = self.repository.load(model, variant, self.session_config)
        return self.tasks[key]

    async def _loaded(self, model: str, variant: str) -> Task:
        """The task, loading it in the inference executor on first use (variants load on demand)."""
        task = self.tasks.get((model, variant))
        if task is not None:
            return task
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.inference_pool, self._task, model, variant)
        except (ModelFileError, FileNotFoundError) as exc:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE, f"model {model!r} variant {variant!r} cannot load: {exc}"
            ) from None

    def _batcher(self, model: str, variant: str, task: BatchableTask) -> DynamicBatcher:
        key = (model, variant)
        if key not in self.batchers:
            config = self.repository.spec(model).batching
            enabled = self.settings.batching and config.enabled is not False and task.model.has_batch_axis
            self.batchers[key] = DynamicBatcher(
                label=model,
                model=task.model,
                busy_model=self._busy_twin(task.model),
                metrics=self.metrics,
                max_batch_size=config.max_batch_for("cuda" if task.model.on_cuda else "cpu") if enabled else 1,
                max_queue_delay_s=config.max_queue_delay_us / 1e6,
                arriving=lambda: self.preparing.get(key, 0),
                instances=self.settings.batch_instances or config.instances,
            )
        return self.batchers[key]

    def _busy_twin(self, model: OnnxModel) -> OnnxModel | None:
        """A second session on the same file whose threads do not spin, for busy times (see Settings)."""
        if not (self.settings.spin_wait and self.settings.spin_only_when_idle) or model.source is None:
            return None
        if model.on_cuda:
            return None  # see Settings.spin_only_when_idle
        quiet = self.session_config.model_copy(update={"spin_wait": False})
        session = create_session(model.source, quiet, model.float_weights)
        return OnnxModel(session, io_binding=quiet.io_binding, source=model.source, float_weights=model.float_weights)

    def served(self, model: str) -> ModelSpec:
        """The spec of a model this server serves; `ServiceError(NOT_FOUND)` for any other name."""
        if model not in self.names:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND, f"unknown model {shown(model)}; this server serves {self.names}"
            )
        return self.repository.spec(model)

    def resolve(self, request: pb.InferRequest) -> tuple[str, str]:
        """(model, variant) of a request whose every field is one this server can act on."""
        spec = self.served(request.model)
        if why := self.broken.get(request.model):
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION, f"model {request.model!r} is not served: its task failed ({why})"
            )
        variant = request.variant or spec.server_variant
        if variant not in [v.name for v in spec.variants]:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                f"model {request.model!r} has no variant {shown(variant)}; it has {[v.name for v in spec.variants]}",
            )
        if request.params:
            # No model takes per-request parameters yet: a typo must not be silently ignored.
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown parameter(s) {shown(sorted(request.params))}; model {request.model!r} takes none",
            )
        if request.regions:
            self._check_regions(request)
        if request.WhichOneof("image") == "encoded" and request.encoded.format.lower() not in IMAGE_FORMATS:
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"encoded.format {shown(request.encoded.format)} is not one of {sorted(IMAGE_FORMATS - {''})} "
                "(or leave it empty: the bytes say what they are)",
            )
        return request.model, variant

    def accepts(self, model: str) -> tuple[str, ...]:
        """What `model` takes beyond whole frames (its task's `accepts`): "regions", "read-regions".

        Looked up once per model: finding a task class scans the installed entry points (~6 ms), and
        every answer says it.
        """
        if model not in self._accepts:
            self._accepts[model] = task_class(self.repository.spec(model).task, model).accepts
        return self._accepts[model]

    def _check_regions(self, request: pb.InferRequest) -> None:
        """Refuse a region request this model cannot take, or that is malformed (it says which region)."""
        accepts = self.accepts(request.model)
        if REGIONS not in accepts:
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model {request.model!r} takes whole frames only, not `regions`; send the frame in `encoded`",
            )
        if READ_REGIONS not in accepts and any(r.stage == pb.Region.READ for r in request.regions):
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model {request.model!r} cannot READ a region (it has no recognizer); send it as FIND",
            )
        try:
            check_regions(request, self.settings.max_pixels)
        except ValueError as exc:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"bad region request: {exc}") from None

    def decode(self, request: pb.InferRequest) -> tuple[np.ndarray, tuple[int, int]]:
        """The request's frame, and (0, 0); for a region request, the part of the frame its FIND regions
        rebuild, and where that part's top-left corner is in the frame (`regions.canvas`)."""
        which = request.WhichOneof("image")
        try:
            if request.regions:
                rebuilt = canvas(request, self.settings.max_pixels)
                assert rebuilt is not None, "a region request without FIND regions has nothing to run the model on"
                return rebuilt
            if which == "encoded":
                return decode_image(request.encoded.data, self.settings.max_pixels), (0, 0)
            if which == "raw":
                raw = request.raw
                return image_from_raw(raw.data, list(raw.shape), raw.dtype or "uint8", self.settings.max_pixels), (0, 0)
        except ImageError as exc:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "request has no image; set `encoded` or `raw`")

    def _prepare(self, request: pb.InferRequest, task: BatchableTask) -> tuple[Prepared, tuple[int, int], float]:
        """The request made ready for the model, where its image sits in the frame, and the decoding's ms."""
        start = time.perf_counter()
        image, origin = self.decode(request)
        decode_ms = _ms(start)
        if request.regions:  # a part of the frame: scaled as the frame would be
            return task.prepare_part(image, (request.frame_height, request.frame_width)), origin, decode_ms
        return task.prepare(image), origin, decode_ms

    def _run_alone(
        self, request: pb.InferRequest, task: BatchableTask, model: OnnxModel
    ) -> tuple[Prediction, StageTimes, float, float, int]:
        """A request with nobody to batch with: decode, model call and post-process in one thread."""
        prepared, origin, decode_ms = self._prepare(request, task)
        output, inference_ms = model(prepared.tensor)
        prediction, stages = task.complete(output, prepared, inference_ms)
        return shifted(prediction, *origin), stages, decode_ms, 0.0, 1

    def _run_whole(
        self, task: Task, image: np.ndarray, queued_at: float, deadline: float | None
    ) -> tuple[Prediction, StageTimes, float]:
        """A task that cannot batch (e.g. a recognizer on variable-width lines) runs as one call."""
        queue_ms = _ms(queued_at)
        if deadline is not None and time.perf_counter() > deadline:
            self.metrics.expired.labels(model=task.spec.name).inc()
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the request waited {queue_ms:.0f} ms in the queue, past its deadline; it was not computed",
            )
        prediction, stages = task.run(image)
        self.metrics.inferences.labels(model=task.spec.name).inc()
        self.metrics.executions.labels(model=task.spec.name).inc()
        return prediction, stages, queue_ms

    async def _serve(
        self, request: pb.InferRequest, model: str, variant: str, deadline: float | None
    ) -> tuple[Prediction, StageTimes, float, float, int]:
        """(prediction, stages, decode_ms, queue_ms, batch_size) for one admitted request."""
        if not request.regions:
            return await self._serve_frame(request, model, variant, deadline)
        # A region request: the model on each part of the frame its FIND regions rebuild (when it has any),
        # as on any frame (batching included); then its READ regions, by the recognizer alone.
        found: tuple[Prediction, StageTimes, float, float, int] = (Prediction(), StageTimes(), 0.0, 0.0, 1)
        if any(r.stage == pb.Region.FIND for r in request.regions):
            parts = await asyncio.gather(
                *(self._serve_frame(part, model, variant, deadline) for part in find_parts(request))
            )
            found = _joined(parts)
        if not any(r.stage == pb.Region.READ for r in request.regions):
            return found
        task = await self._loaded(model, variant)
        start = time.perf_counter()
        prediction, stages = await asyncio.get_running_loop().run_in_executor(
            self.decode_pool, read_regions, task, request, found[0], self.settings.max_pixels
        )
        return prediction, found[1] + stages, found[2] + _ms(start) - stages.total_ms, found[3], found[4]

    async def _serve_frame(
        self, request: pb.InferRequest, model: str, variant: str, deadline: float | None
    ) -> tuple[Prediction, StageTimes, float, float, int]:
        """The model on the request's frame (or the frame its regions rebuild); see `_serve`."""
        loop = asyncio.get_running_loop()
        task = await self._loaded(model, variant)
        if not (isinstance(task, BatchableTask) and task.can_batch):
            start = time.perf_counter()
            # A task that takes regions and cannot batch runs at its input's own size (the face detector):
            # the part of the frame is right as it is.
            image, origin = await loop.run_in_executor(self.decode_pool, self.decode, request)
            decode_ms = _ms(start)
            prediction, stages, queue_ms = await loop.run_in_executor(
                self.inference_pool, self._run_whole, task, image, time.perf_counter(), deadline
            )
            return shifted(prediction, *origin), stages, decode_ms, queue_ms, 1
        key = (model, variant)
        batcher = self._batcher(model, variant, task)
        if batcher.idle() and not self.preparing.get(key):
            return await batcher.run_alone(partial(self._run_alone, request, task))
        self.preparing[key] = self.preparing.get(key, 0) + 1
        try:
            prepared, origin, decode_ms = await loop.run_in_executor(self.decode_pool, self._prepare, request, task)
        finally:
            self.preparing[key] -= 1
        result = await batcher.submit(prepared.tensor, deadline)
        prediction, stages = await loop.run_in_executor(
            self.decode_pool, task.complete, result.output, prepared, result.compute_ms
        )
        return shifted(prediction, *origin), stages, decode_ms, result.queue_ms, result.batch_size

    async def infer(
        self, request: pb.InferRequest, time_left_s: float | None = None, client: str = ""
    ) -> pb.InferResponse:
        """Serve one request; raises `ServiceError` for anything the caller must fix or retry.

        `time_left_s` is the caller's own deadline (gRPC's); with `request.deadline_ms`, the
        earlier one wins. `client` identifies the caller for its share of the queue ("" when unknown).
        A request whose deadline passed while it waited is not computed: after an outage, a burst of
        stale frames must not delay the fresh ones.
        """
        start = time.perf_counter()
        # Unknown names share one label: a client sending random names must not grow the metrics without bound.
        model_label = request.model if request.model in self.names else "<unknown>"
        self.metrics.in_flight.inc()
        admitted, ran = None, None  # the place in the queue; its service ms once it ran
        try:
            model, variant = self.resolve(request)
            budgets = [b for b in (request.deadline_ms / 1000.0 if request.deadline_ms else None, time_left_s) if b]
            deadline = start + min(budgets) if budgets else None
            # The frame's own deadline comes `late_margin_ms` before the call's: admission and the late
            # count judge by it; the call's deadline still bounds the work (a late answer teaches the client).
            useful = deadline - request.late_margin_ms / 1000.0 if deadline is not None else None
            admitted = self.admission.admit(model, (useful - start) * 1000.0 if useful is not None else None, client)
            prediction, stages, decode_ms, queue_ms, batch_size = await self._serve(request, model, variant, deadline)
            total_ms = _ms(start)
            ran = total_ms - queue_ms
            if useful is not None and time.perf_counter() > useful:
                self.metrics.late.labels(model=model).inc()
            timings = server_timings_to_pb(decode_ms, queue_ms, stages, total_ms, batch_size)
            response = self._response(request, model, variant, prediction, timings)
        except ServiceError as exc:
            self.metrics.requests.labels(model=model_label, status=exc.code.name).inc()
            raise
        except Exception as exc:  # a bug must not take the server down; the caller still gets a status
            self.metrics.requests.labels(model=model_label, status="INTERNAL").inc()
            raise ServiceError(grpc.StatusCode.INTERNAL, f"inference failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.metrics.in_flight.dec()
            if admitted is not None:
                self.admission.release(admitted, ran)
        # What a request arriving after this one can expect (this one is out of the queue now).
        response.load.CopyFrom(load_to_pb(self.admission.load(model)))
        self.metrics.requests.labels(model=model, status="OK").inc()
        self.metrics.latency.labels(model=model).observe(response.timings.total_ms / 1000.0)
        for stage, ms in (
            ("decode", decode_ms),
            ("queue", queue_ms),
            ("inference", stages.inference_ms),
            ("postprocess", stages.preprocess_ms + stages.postprocess_ms),
        ):
            self.metrics.stage.labels(model=model, stage=stage).observe(ms / 1000.0)
        return response

    def _response(
        self,
        request: pb.InferRequest,
        model: str,
        variant: str,
        prediction: Prediction,
        timings: pb.ServerTimings,
    ) -> pb.InferResponse:
        spec = self.repository.spec(model)
        response = pb.InferResponse(
            frame_id=request.frame_id,
            model=model,
            model_version=spec.version,
            variant=variant,
            timings=timings,
            accepts=self.accepts(model),
        )
        prediction_to_pb(prediction, response)
        return response

    def list_models(self) -> pb.ListModelsResponse:
        out = pb.ListModelsResponse()
        for name in self.names:
            spec = self.repository.spec(name)
            info = out.models.add(
                name=name,
                task=spec.task,
                version=spec.version,
                default_variant=spec.server_variant,
                capabilities=self.accepts(name),
            )
            for v in spec.variants:
                path = self.repository.root / name / v.file if v.file else None
                info.variants.add(
                    name=v.name,
                    file=v.file or "",
                    sha256=v.sha256 or "",
                    size_bytes=path.stat().st_size if path and path.exists() else 0,
                    input_size=v.input_size or 0,
                    precision=v.precision,
                )
        return out

    async def stop_batchers(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()

    def close(self) -> None:
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        self.inference_pool.shutdown(wait=True, cancel_futures=True)
