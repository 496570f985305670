"""offload-server: the remote side of offload — gRPC inference plus an HTTP control plane."""

from offload_server.config import Settings
from offload_server.server import OffloadServer

__all__ = ["OffloadServer", "Settings"]
