"""The inference engine shared by the SDK (device path) and the server (remote path)."""

from offload_client.engine.repository import ModelRepository
from offload_client.engine.session import SessionConfig
from offload_client.engine.spec import ModelSpec, VariantSpec
from offload_client.engine.tasks.base import Task

__all__ = ["ModelRepository", "ModelSpec", "SessionConfig", "Task", "VariantSpec"]
