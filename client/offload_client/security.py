"""How the client proves itself to the server and checks the server: TLS, client certificates, a token.

One value, `Security`, serves the gRPC channel and the model downloads alike, so a client that
trusts a private CA for inference trusts it for its device model too.

Example:
    >>> s = Security(tls=True, ca_file=None, token="s3cret")
    >>> s.metadata()
    (('authorization', 'Bearer s3cret'),)
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import grpc

# gRPC statuses (and handshake failures) that mean "you may not", not "not now": retrying at once
# would only hammer the server with calls it refuses.
REFUSED_CODES = ("UNAUTHENTICATED", "PERMISSION_DENIED")
# Words of a TLS failure in a gRPC status message ("Ssl handshake failed: ... CERTIFICATE_VERIFY_FAILED").
# Not "handshake" alone: a server that is down fails with "tcp handshaker shutdown", and that is no refusal.
TLS_WORDS = ("ssl", "tls", "certificate")


def _token_from_env() -> str | None:
    return os.environ.get("OFFLOAD_TOKEN") or None


@dataclass(frozen=True)
class Security:
    """TLS (`tls`, `ca_file` for a private CA, `client_cert`/`client_key` for mTLS) and a bearer token.

    `token` defaults to `$OFFLOAD_TOKEN`. Without `tls` the channel is plaintext: a token then
    travels in the clear, which is only fine on a network you trust.
    """

    tls: bool = False
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    token: str | None = field(default_factory=_token_from_env)

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("a client certificate needs both client_cert and client_key")
        if not self.tls and (self.ca_file or self.client_cert):
            raise ValueError("ca_file and client certificates need tls=True")

    @classmethod
    def of(
        cls,
        tls: bool = False,
        ca_file: Path | str | None = None,
        client_cert: Path | str | None = None,
        client_key: Path | str | None = None,
        token: str | None = None,
    ) -> Security:
        """From the clients' keyword arguments (paths as strings or `Path`s; token None: `$OFFLOAD_TOKEN`)."""
        return cls(tls, _path(ca_file), _path(client_cert), _path(client_key), token or _token_from_env())

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.client_key),
            certificate_chain=_read(self.client_cert),
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def http_headers(self) -> dict[str, str]:
        return dict(self.metadata())

    def ssl_context(self) -> ssl.SSLContext | None:
        """For HTTPS downloads: the same CA and client certificate as the gRPC channel."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.client_cert and self.client_key:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def _path(value: Path | str | None) -> Path | None:
    return Path(value) if value is not None else None


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def is_refusal(code: str, message: str) -> bool:
    """Whether a failed call was the server refusing this client (bad token, bad certificate)."""
    lowered = message.lower()
    return code in REFUSED_CODES or (code == "UNAVAILABLE" and any(w in lowered for w in TLS_WORDS))
