"""Privacy is a promise, proven by counting: in local-only the server sees no request at all."""

from __future__ import annotations

import time

import numpy as np
import pytest

from offload_client import AsyncOffloadClient, OffloadClient, Where
from offload_server import OffloadServer
from offload_tools.linkem import LinkConfig, LinkEmulator, Outage, Trace
from offload_tools.sample import GroundTruth

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("policy", ["always-remote", "adaptive"])
def test_local_only_sends_no_frame_across_a_video_with_mode_switches(
    server: OffloadServer, sample: tuple[list[np.ndarray], GroundTruth], policy: str
) -> None:
    frames, _ = sample
    with OffloadClient(server.grpc_target, policy=policy, privacy="local-only") as client:
        start = server.metrics.request_count()
        for frame in frames[:6]:
            result = client.infer(frame)
            assert result.where == Where.LOCAL
            assert result.radio_mj == 0 and result.energy_mj == result.compute_mj > 0  # the device's work only
        assert server.metrics.request_count() == start  # not one request while local-only

        client.privacy = "allow"
        allowed = [client.infer(f) for f in frames[6:10]]
        # Remote frames and shadow probes (answered locally, measured remotely) both send bytes.
        sent = sum(r.uplink_bytes > 0 for r in allowed)
        assert sent > 0
        assert all((r.radio_mj > 0) == (r.uplink_bytes > 0) for r in allowed)  # the radio costs when it sends
        settle = time.monotonic() + 10
        while server.metrics.request_count() - start < sent and time.monotonic() < settle:
            time.sleep(0.05)  # a shadow probe may still be on its way
        assert server.metrics.request_count() - start == sent

        client.privacy = "local-only"  # effective from the very next frame
        for frame in frames[10:16]:
            result = client.infer(frame)
            assert result.where == Where.LOCAL and result.uplink_bytes == 0
        assert server.metrics.request_count() - start == sent


async def test_local_only_puts_zero_bytes_on_the_emulated_link(
    server: OffloadServer, sample: tuple[list[np.ndarray], GroundTruth]
) -> None:
    """Counted on the wire itself: the link emulator sits between client and server."""
    frames, _ = sample
    host, port = server.grpc_target.rsplit(":", 1)
    # The outage comes after the remote frames (the client's start, which times its device variants, and
    # four local frames take 1.2-1.5 s here), while the device answers local-only frames again.
    outage = Outage(5.0, 0.5)
    config = LinkConfig(uplink=Trace.constant(50), downlink=Trace.constant(50), delay_ms=5, outages=[outage])
    link = LinkEmulator(config, ("127.0.0.1", 0), (host, int(port)))
    await link.start()
    started = time.monotonic()
    try:
        async with AsyncOffloadClient(f"127.0.0.1:{link.port}", policy="always-remote", privacy="local-only") as client:
            for frame in frames[:4]:
                assert (await client.infer(frame)).where == Where.LOCAL
            assert link.counters.uplink_bytes == 0

            client.privacy = "allow"
            sent = [await client.infer(f) for f in frames[4:6]]
            assert all(r.where == Where.REMOTE for r in sent), [r.reason for r in sent]
            assert time.monotonic() - started < outage.start_s, "the machine is too slow for this schedule"
            assert link.counters.uplink_bytes >= sum(r.uplink_bytes for r in sent) > 0
            on_the_wire = link.counters.uplink_bytes

            client.privacy = "local-only"
            i = 6
            while time.monotonic() - started < outage.start_s + outage.length_s + 0.5:  # across the outage
                assert (await client.infer(frames[i % len(frames)])).where == Where.LOCAL
                i += 1
            # At most a few HTTP/2 control frames (WINDOW_UPDATE / PING ACK for the last reply, 9-17 bytes
            # each); a frame would be tens of kilobytes.
            assert link.counters.uplink_bytes - on_the_wire < 64
    finally:
        await link.stop()
