"""offload-core: what the client SDK and the server share (engine, wire messages, conversions, types).

An app that brings its own model imports the task API from here: subclass `OnnxTask` and return a
`Prediction` (see docs/your-model.md).
"""

from offload_core.engine.tasks.onnx_task import OnnxTask, TaskError
from offload_core.types import Box, ClassScore, Prediction, Tensor, TextItem

__version__ = "0.1.0"  # released with offload-client and offload-server: each pins this one

__all__ = ["Box", "ClassScore", "OnnxTask", "Prediction", "TaskError", "Tensor", "TextItem", "__version__"]
