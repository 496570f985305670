"""Privacy is a promise, proven by counting: in local-only the server sees no request at all."""

from __future__ import annotations

import numpy as np
import pytest

from offload_client import OffloadClient, Where
from offload_client.sample import GroundTruth
from offload_server import OffloadServer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("policy", ["always-remote", "adaptive"])
def test_local_only_sends_no_frame_across_a_video_with_mode_switches(
    server: OffloadServer, sample: tuple[list[np.ndarray], GroundTruth], policy: str
) -> None:
    frames, _ = sample
    with OffloadClient(server.grpc_target, policy=policy, privacy="local-only") as client:
        start = server.metrics.request_count()
        for frame in frames[:6]:
            assert client.infer(frame).where == Where.LOCAL
        assert server.metrics.request_count() == start  # not one request while local-only

        client.privacy = "allow"
        allowed = [client.infer(f) for f in frames[6:10]]
        sent = server.metrics.request_count() - start
        assert sent == sum(r.where == Where.REMOTE for r in allowed) > 0

        client.privacy = "local-only"  # effective from the very next frame
        for frame in frames[10:16]:
            result = client.infer(frame)
            assert result.where == Where.LOCAL and result.uplink_bytes == 0
        assert server.metrics.request_count() - start == sent
