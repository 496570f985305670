"""offload-core: what the client SDK and the server share (engine, wire messages, conversions, types)."""

__version__ = "0.1.0"  # released with offload-client and offload-server: each pins this one
