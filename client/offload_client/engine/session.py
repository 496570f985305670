"""ONNX Runtime sessions: providers and thread budgets from configuration."""

from __future__ import annotations

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

    def resolved_providers(self) -> list[str]:
        available = ort.get_available_providers()
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.providers == ["auto"] else self.providers
        chosen = [p for p in wanted if p in available]
        if not chosen:
            raise ValueError(f"none of the execution providers {wanted} is available; this build has {available}")
        return chosen


def create_session(path: Path, config: SessionConfig) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # 0 lets onnxruntime use every core, which is what a server wants.
    options.intra_op_num_threads = max(0, config.intra_op_threads)
    options.inter_op_num_threads = max(0, config.inter_op_threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not config.spin_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=config.resolved_providers())
