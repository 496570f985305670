"""What counts as the server refusing this client (no retry for a minute) and what is only an outage."""

from __future__ import annotations

import pytest

from offload_client.security import Security, is_refusal

pytestmark = pytest.mark.unit


def test_a_refusal_is_a_bad_token_or_a_failed_tls_handshake_never_a_server_that_is_down() -> None:
    assert is_refusal("UNAUTHENTICATED", "missing or unknown bearer token")
    assert is_refusal("PERMISSION_DENIED", "not for you")
    assert is_refusal("UNAVAILABLE", "Ssl handshake failed: SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED")
    # Seen in the compose test when the server container was killed: an outage, not a refusal.
    assert not is_refusal(
        "UNAVAILABLE", "failed to connect to all addresses; last error: UNKNOWN: tcp handshaker shutdown"
    )
    assert not is_refusal("UNAVAILABLE", "Stream removed (Socket closed)")
    assert not is_refusal("DEADLINE_EXCEEDED", "Deadline Exceeded")


def test_security_settings_that_cannot_work_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="need tls=True"):
        Security.of(ca_file="ca.pem")
    with pytest.raises(ValueError, match="both client_cert and client_key"):
        Security.of(tls=True, client_cert="client.pem")
    assert Security.of(token="t").metadata() == (("authorization", "Bearer t"),)
