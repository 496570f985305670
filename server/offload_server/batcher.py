"""A dynamic batcher per model, in Triton's manner.

Requests queue up; the batcher takes the first, gathers more until `max_batch_size`
or `max_queue_delay`, stacks frames whose tensors share a shape, makes one session
call per group and scatters the rows back, each with its own queue and compute time.

It waits for company only while other requests of its model are still being
decoded: those will join within milliseconds, while an idle pipeline means nobody
is coming and waiting would only add latency (concurrency 1 pays nothing).

Like Triton's instance groups, up to `instances` batches run at once, each in its own
thread on the shared (thread-safe) session: on a CPU one call rarely keeps every core
busy, and on a GPU the next batch's copies overlap the current one's compute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import numpy as np

from offload_core.engine.tasks.base import OnnxModel
from offload_server.errors import ServiceError
from offload_server.metrics import Metrics

T = TypeVar("T")


@dataclass
class BatchResult:
    """One request's row of a batched call."""

    output: np.ndarray
    queue_ms: float
    compute_ms: float
    batch_size: int


@dataclass
class _Pending:
    tensor: np.ndarray
    deadline: float | None
    enqueued_at: float = field(default_factory=time.perf_counter)
    future: asyncio.Future[BatchResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class DynamicBatcher:
    def __init__(
        self,
        label: str,
        model: OnnxModel,
        metrics: Metrics,
        max_batch_size: int,
        max_queue_delay_s: float,
        arriving: Callable[[], int],
        instances: int = 1,
        busy_model: OnnxModel | None = None,
    ) -> None:
        self.label = label
        self.model = model
        # The same model in a session whose threads do not spin, for batches run while the server is busy.
        self.busy_model = busy_model
        self.running = 0
        self.busy_calls = 0  # session calls that went to the busy-time twin
        self.instances = instances
        self.executor = ThreadPoolExecutor(instances, thread_name_prefix=f"infer-{label}")
        self.metrics = metrics
        self.max_batch_size = max_batch_size if model.has_batch_axis else 1
        self.max_queue_delay_s = max_queue_delay_s
        self.arriving = arriving
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def idle(self) -> bool:
        """Nothing queued or computing: a request arriving now has nobody to share a call with."""
        return self.running == 0 and self.queue.empty()

    async def run_alone(self, work: Callable[[OnnxModel], T]) -> T:
        """Run one whole request (`work` gets the model) in an instance thread, as a batch of one.

        With nobody to batch with, handing a request from the decode pool to the batcher and back
        costs four thread switches, ~0.5 ms on 2 vCPUs: a twelfth of a fast model's time.
        """
        self.running += 1
        try:
            result = await asyncio.get_running_loop().run_in_executor(self.executor, work, self.model)
        finally:
            self.running -= 1
        self.metrics.batch_size.labels(model=self.label).observe(1)
        self.metrics.executions.labels(model=self.label).inc()
        self.metrics.inferences.labels(model=self.label).inc()
        return result

    async def submit(self, tensor: np.ndarray, deadline: float | None) -> BatchResult:
        """Queue one 1xCxHxW tensor; raises `ServiceError(DEADLINE_EXCEEDED)` if it expires in the queue."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._serve(), name=f"batcher-{self.label}")
        pending = _Pending(tensor, deadline)
        await self.queue.put(pending)
        return await pending.future

    def warmup(self, tensor: np.ndarray) -> None:
        """Run every batch size on every session once (blocking), before the server says it is ready.

        A first call at a new input shape pays for it: memory-arena growth, and on CUDA the
        per-shape convolution set-up. Dynamic batching makes each size from 1 to
        `max_batch_size` a shape of its own, so without this the first seconds under load
        would pay it size by size. Largest first, so the arena grows once.
        """
        for model in (self.model, self.busy_model):
            if model is None:
                continue
            for size in range(self.max_batch_size, 0, -1):
                model(np.concatenate([tensor] * size) if size > 1 else tensor)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def _gather(self) -> list[_Pending]:
        batch = [await self.queue.get()]
        window_end = time.perf_counter() + self.max_queue_delay_s
        while len(batch) < self.max_batch_size:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            left = window_end - time.perf_counter()
            if left <= 0 or self.arriving() == 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        return batch

    def _drop_expired(self, batch: list[_Pending]) -> list[_Pending]:
        """A request whose deadline passed while it queued is answered, not computed."""
        now = time.perf_counter()
        live = []
        for p in batch:
            if p.deadline is not None and now > p.deadline:
                waited = (now - p.enqueued_at) * 1000.0
                p.future.set_exception(
                    ServiceError(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"the request waited {waited:.0f} ms in the queue, past its deadline; it was not computed",
                    )
                )
                self.metrics.expired.labels(model=self.label).inc()
            else:
                live.append(p)
        return live

    async def _serve(self) -> None:
        slots = asyncio.Semaphore(self.instances)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                # Gather only once an instance is free: meanwhile the queue fills into a fuller batch.
                await slots.acquire()
                batch = self._drop_expired(await self._gather())
                task = asyncio.create_task(self._execute(batch))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: slots.release())
        finally:
            for task in running:
                task.cancel()

    async def _execute(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        groups: dict[tuple[int, ...], list[_Pending]] = {}
        for p in batch:
            groups.setdefault(p.tensor.shape[1:], []).append(p)
        for group in groups.values():
            started = time.perf_counter()
            busy = len(group) > 1 or self.running > 0 or not self.queue.empty()
            model = self.busy_model if busy and self.busy_model is not None else self.model
            self.busy_calls += model is not self.model
            self.running += 1
            try:
                output, compute_ms = await loop.run_in_executor(self.executor, self._call, model, group)
            except Exception as exc:  # a failed call fails its requests, never the batcher
                for p in group:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            finally:
                self.running -= 1
            self.metrics.batch_size.labels(model=self.label).observe(len(group))
            self.metrics.executions.labels(model=self.label).inc()
            self.metrics.inferences.labels(model=self.label).inc(len(group))
            for i, p in enumerate(group):
                if not p.future.done():  # the caller may have gone (cancelled RPC)
                    queue_ms = (started - p.enqueued_at) * 1000.0
                    p.future.set_result(BatchResult(output[i : i + 1], queue_ms, compute_ms, len(group)))

    @staticmethod
    def _call(model: OnnxModel, group: list[_Pending]) -> tuple[np.ndarray, float]:
        tensor = group[0].tensor if len(group) == 1 else np.concatenate([p.tensor for p in group])
        return model(tensor)
