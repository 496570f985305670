"""offload-client: run a model on the device or offload it to a GPU server, frame by frame.

Example:
    >>> from offload_client import OffloadClient
    >>> with OffloadClient("localhost:50051", model="text-spotter", policy="adaptive") as oc:  # doctest: +SKIP
    ...     result = oc.infer(frame)
    ...     result.where, result.reason, result.latency_ms, result.words
"""

from offload_client.async_client import AsyncOffloadClient
from offload_client.client import OffloadClient
from offload_client.policy import Adaptive, AlwaysLocal, AlwaysRemote, Decision, Policy, PolicyInput
from offload_client.privacy import Privacy
from offload_client.transport import InMemoryTransport, Transport, TransportError
from offload_core.types import Box, ClassScore, FrameResult, TextItem, Timings, Where

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (offload-server pins this release)

__all__ = [
    "Adaptive",
    "AlwaysLocal",
    "AlwaysRemote",
    "AsyncOffloadClient",
    "Box",
    "ClassScore",
    "Decision",
    "FrameResult",
    "InMemoryTransport",
    "OffloadClient",
    "Policy",
    "PolicyInput",
    "Privacy",
    "TextItem",
    "Timings",
    "Transport",
    "TransportError",
    "Where",
]
