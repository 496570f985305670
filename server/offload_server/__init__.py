"""offload-server: the remote side of offload — gRPC inference plus an HTTP control plane."""

# The one place for the version (first: the modules below read it); offload-client's pin in
# server/pyproject.toml moves with it.
__version__ = "0.1.0"

from offload_server.config import Settings
from offload_server.server import OffloadServer

__all__ = ["OffloadServer", "Settings", "__version__"]
