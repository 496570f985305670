"""ONNX Runtime sessions: providers and thread budgets from configuration."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort
from pydantic import BaseModel


class SessionConfig(BaseModel):
    """How to run a model. The device default is 1 intra-op thread: a phone's budget."""

    # "auto" means CUDA when this onnxruntime build has it, else CPU.
    providers: list[str] = ["auto"]
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    # Idle onnxruntime threads spin for a while before sleeping: good for a lone model, but on a
    # server they steal the cores that decoding and the event loop need between batches.
    spin_wait: bool = True
    # On CUDA, call the session through I/O binding (input copied to the GPU once, output back once).
    io_binding: bool = True

    def resolved_providers(self) -> list[str]:
        available = ort.get_available_providers()
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.providers == ["auto"] else self.providers
        chosen = [p for p in wanted if p in available]
        if not chosen:
            raise ValueError(f"none of the execution providers {wanted} is available; this build has {available}")
        return chosen


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def create_session(path: Path, config: SessionConfig, float_weights: bool = False) -> ort.InferenceSession:
    """A session for the model at `path`. `float_weights`: the file stores int8 weights behind
    DequantizeLinear nodes (recipe "int8-weights"); fold them into float weights once, at load."""
    options = ort.SessionOptions()
    # 0: every core, which is what a server wants. Counted here, not left to onnxruntime: left at 0 it
    # also pins its worker threads, and on 2 vCPUs every session's worker (the detector's, its twin's,
    # the other models') was pinned to the same core, 1, while the calling threads roam.
    options.intra_op_num_threads = config.intra_op_threads if config.intra_op_threads > 0 else available_cores()
    options.inter_op_num_threads = max(0, config.inter_op_threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if float_weights:
        # Without this, onnxruntime keeps DequantizeLinear nodes for its int8 kernels and, finding
        # none to fuse with (the activations are float), dequantizes every weight on every run: the
        # recognizer ran 1.5x slower. With it, constant folding makes them float weights at load.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    if not config.spin_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = config.resolved_providers()
    # cuDNN's default exhaustive algorithm search runs again for every new input shape: with dynamic
    # batching (batch 1..16) and dynamic image sizes that is a search per batch, seconds each.
    with_options: list[str | tuple[str, dict[str, str]]] = [
        (p, {"cudnn_conv_algo_search": "HEURISTIC"}) if p == "CUDAExecutionProvider" else p for p in providers
    ]
    return ort.InferenceSession(str(path), options, providers=with_options)
