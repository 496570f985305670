"""The inference engine shared by the SDK (device path) and the server (remote path)."""

from offload_core.engine.repository import ModelRepository
from offload_core.engine.session import SessionConfig
from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.base import Task

__all__ = ["ModelRepository", "ModelSpec", "SessionConfig", "Task", "VariantSpec"]
