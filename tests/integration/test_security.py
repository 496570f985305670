"""TLS, mTLS and bearer tokens over real sockets, with a CA made for the run; refused clients fall back."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from offload_client import OffloadClient, Where
from offload_client.model_sync import ModelSyncError, pull_model
from offload_client.security import Security
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_server import OffloadServer, Settings
from offload_server.testing import serve_in_thread
from offload_tools.sample import GroundTruth
from tests.pki import CertificateAuthority, Issued

pytestmark = pytest.mark.integration
Sample = tuple[list[np.ndarray], GroundTruth]
TOKEN = "phone-fleet-7f3a"
HASHED_TOKEN = "operator-2b9c"  # the file holds only its sha256


class Pki:
    def __init__(self, folder: Path) -> None:
        self.ca = CertificateAuthority(folder)
        self.server = self.ca.issue("server", server=True)
        self.client = self.ca.issue("client", server=False)
        self.rogue = CertificateAuthority(folder, "rogue CA").issue("rogue-client", server=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def serve(models_dir: Path, pki: Pki, tokens: Path | None, client_ca: Path | None = None) -> Iterator[OffloadServer]:
    settings = Settings(
        grpc_port=0, http_port=0, models_dir=models_dir, models=["text-spotter"], spin_wait=False,
        tls_cert=pki.server.cert, tls_key=pki.server.key, tls_client_ca=client_ca, auth_tokens_file=tokens,
    )  # fmt: skip
    with serve_in_thread(settings) as server:
        yield server


@pytest.fixture(scope="module")
def secure(models_dir: Path, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OffloadServer]:
    """TLS and tokens: TOKEN in the clear, HASHED_TOKEN as its sha256."""
    tokens = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    tokens.write_text(f"# who may call\n{TOKEN}\n{hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()}\n")
    yield from serve(models_dir, pki, tokens)


@pytest.fixture(scope="module")
def mutual(models_dir: Path, pki: Pki) -> Iterator[OffloadServer]:
    """mTLS: only clients with a certificate from the test CA get in."""
    yield from serve(models_dir, pki, None, client_ca=pki.ca.cert)


def words_frame(sample: Sample) -> np.ndarray:
    frames, truth = sample
    return next(f for f, t in zip(frames, truth.frames, strict=True) if t.words)


def refused(server: OffloadServer) -> float:
    return sum(s.value for m in server.metrics.refused.collect() for s in m.samples if s.name.endswith("_total"))


def test_tls_and_a_token_serve_frames_and_either_token_form_works(
    secure: OffloadServer, pki: Pki, sample: Sample
) -> None:
    for token in (TOKEN, HASHED_TOKEN):
        with OffloadClient(
            secure.grpc_target, policy="always-remote", tls=True, ca_file=pki.ca.cert, token=token
        ) as client:
            result = client.infer(words_frame(sample))
        assert result.where == Where.REMOTE and result.words and result.error is None


def test_a_bad_token_falls_back_to_the_device_and_the_server_is_asked_once(
    secure: OffloadServer, pki: Pki, sample: Sample
) -> None:
    before = refused(secure)
    with OffloadClient(
        secure.grpc_target, policy="always-remote", tls=True, ca_file=pki.ca.cert, token="stolen-guess"
    ) as client:
        results = [client.infer(words_frame(sample)) for _ in range(5)]
    assert all(r.where == Where.LOCAL and r.words for r in results)  # every frame answered, by the device
    assert results[0].reason.startswith("fallback: remote failed (UNAUTHENTICATED: missing or unknown bearer token")
    assert all(r.reason.startswith("remote refused this client (UNAUTHENTICATED") for r in results[1:])
    assert refused(secure) - before == 1  # no hammering: the refused client stopped asking


def test_without_a_token_grpc_says_unauthenticated_but_health_stays_open(secure: OffloadServer, pki: Pki) -> None:
    credentials = Security(tls=True, ca_file=pki.ca.cert, token=None).channel_credentials()
    with grpc.secure_channel(secure.grpc_target, credentials) as channel:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.OffloadStub(channel).ListModels(pb.ListModelsRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer <token>" in (err.value.details() or "")
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_plaintext_to_a_tls_server_falls_back(secure: OffloadServer, sample: Sample) -> None:
    with OffloadClient(secure.grpc_target, policy="always-remote", token=TOKEN, deadline_ms=2000) as client:
        result = client.infer(words_frame(sample))
    assert result.where == Where.LOCAL and result.reason.startswith("fallback: remote failed (UNAVAILABLE")


def test_https_needs_the_token_for_v1_but_not_for_health_and_metrics(secure: OffloadServer, pki: Pki) -> None:
    assert secure.http_url.startswith("https://")
    with httpx.Client(
        base_url=secure.http_url, verify=ssl.create_default_context(cafile=pki.ca.cert), timeout=10
    ) as http:
        assert http.get("/healthz").status_code == 200 and http.get("/readyz").status_code == 200
        assert http.get("/metrics").status_code == 200
        denied = http.get("/v1/models")
        assert denied.status_code == 401 and "Bearer" in denied.json()["detail"]
        allowed = http.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200 and allowed.json()["models"]


def test_the_device_model_downloads_over_https_with_the_same_ca_and_token(
    secure: OffloadServer, pki: Pki, tmp_path: Path
) -> None:
    good = Security(tls=True, ca_file=pki.ca.cert, token=TOKEN)
    assert pull_model(secure.http_url, "text-spotter", tmp_path / "ok", security=good)
    with pytest.raises(ModelSyncError, match="answered 401"):
        pull_model(secure.http_url, "text-spotter", tmp_path / "no", security=Security(True, pki.ca.cert, token=None))
    with pytest.raises(ModelSyncError, match="CERTIFICATE_VERIFY_FAILED"):  # a server this client cannot verify
        pull_model(secure.http_url, "text-spotter", tmp_path / "no", security=Security(True, None, token=TOKEN))


def test_mtls_lets_in_only_clients_with_a_certificate_from_its_ca(
    mutual: OffloadServer, pki: Pki, sample: Sample
) -> None:
    def run(issued: Issued | None) -> str:
        cert = {"client_cert": issued.cert, "client_key": issued.key} if issued else {}
        with OffloadClient(
            mutual.grpc_target, policy="always-remote", tls=True, ca_file=pki.ca.cert, deadline_ms=2000, **cert
        ) as client:
            result = client.infer(words_frame(sample))
        return result.where.value if result.where == Where.REMOTE else result.reason

    assert run(pki.client) == "remote"
    assert run(None).startswith("fallback: remote failed (UNAVAILABLE")
    assert run(pki.rogue).startswith("fallback: remote failed (UNAVAILABLE")
