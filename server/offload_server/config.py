"""Server configuration from flags and `OFFLOAD_*` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from offload_core.engine.image import MAX_PIXELS
from offload_core.engine.repository import default_models_dir


class Settings(BaseSettings):
    """Every field can be set as OFFLOAD_<NAME>, e.g. OFFLOAD_GRPC_PORT=50052."""

    model_config = SettingsConfigDict(env_prefix="OFFLOAD_")

    host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_port: int = 8000
    models_dir: Path = Field(default_factory=default_models_dir)
    # Empty: serve every model in the repository.
    models: list[str] = Field(default_factory=list)
    providers: list[str] = Field(default_factory=lambda: ["auto"])
    # 0 lets onnxruntime use every core: the server's whole point is to be fast.
    intra_op_threads: int = 0
    # See SessionConfig. Measured on 2 cores (`make bench-server`): without spinning a lone request
    # takes 36.2 ms instead of ~31 at 640, 9.4 instead of ~6.5 at 160 (a sleeping thread is woken for
    # every operator); but at concurrency 16 spinning costs 7-17 % of throughput (`bench.gpu_serve`),
    # because spinners take the cores that decoding needs.
    spin_wait: bool = True
    # So, with spin_wait, each batchable model on a CPU gets a twin session whose threads do not spin,
    # and batches run on it while the server is busy (a batch > 1, another batch running, a queue).
    # Not on CUDA: there the spinning pool does little, and a second CUDA session costs GPU memory.
    spin_only_when_idle: bool = True
    decode_workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1))
    # Admission control: requests admitted per model (decoding, queued or computing); more get
    # RESOURCE_EXHAUSTED at once, so a client falls back to its device model instead of waiting.
    max_queue: int = 32
    # Deadline-aware admission: a request whose predicted wait and service would end past its deadline
    # (the gRPC deadline, or `deadline_ms`) is refused at arrival, with a retry hint (admission.py).
    deadline_admission: bool = True
    # The most places of a model's queue one client may hold (None: a quarter of max_queue, at least 2).
    # A client is the `offload-client` header the SDK sends; calls without it are not capped.
    max_queue_per_client: int | None = None
    # Dynamic batching where a model's graph has a batch axis (per-model limits live in model.yaml).
    batching: bool = True
    # Batches in flight per model; None: each model's `batching.instances` in model.yaml.
    batch_instances: int | None = None
    # On CUDA, call sessions through I/O binding (see OnnxModel); off: plain session.run.
    io_binding: bool = True
    max_pixels: int = MAX_PIXELS
    max_message_bytes: int = 64 * 1024 * 1024
    drain_seconds: float = 10.0
    log_level: str = "info"
    # uvloop where it is installed (not on Windows): 0.3 ms less per request at 160 px, a twentieth of
    # a fast model's time (3 alternating rounds); "asyncio" runs on the standard library's loop.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # TLS on both ports (PEM files); with a client CA, clients must present a certificate it signed (mTLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Bearer tokens (one per line, or its sha256): then every call but health needs one (see auth.py).
    auth_tokens_file: Path | None = None
    # Whether /metrics needs a token too (when tokens are on); open by default, for scrapers.
    metrics_need_token: bool = False

    @property
    def tls(self) -> bool:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both --tls-cert and --tls-key (OFFLOAD_TLS_CERT, OFFLOAD_TLS_KEY)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key too")
        return self.tls_cert is not None
