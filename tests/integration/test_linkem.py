"""The link emulator against loopback sockets: rate, delay and outages, measured at the far end."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offload_tools.linkem import PACKET_BYTES, LinkConfig, LinkEmulator, Outage, Trace

pytestmark = pytest.mark.integration


class Sink:
    """A TCP server that records when each byte arrived (ms since `t0`), and can echo."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.arrivals: list[tuple[float, int]] = []
        self.t0 = time.monotonic()
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            self.arrivals.append(((time.monotonic() - self.t0) * 1000, len(chunk)))
            if self.echo:
                writer.write(chunk)
                await writer.drain()
        writer.close()

    def bytes_between(self, start_ms: float, end_ms: float) -> int:
        return sum(n for t, n in self.arrivals if start_ms < t <= end_ms)


async def through(config: LinkConfig, sink: Sink) -> tuple[LinkEmulator, asyncio.Server]:
    server = await sink.start()
    link = LinkEmulator(config, ("127.0.0.1", 0), ("127.0.0.1", sink.port))
    await link.start()
    sink.t0 = time.monotonic() - link.now_ms() / 1000  # one clock for both
    return link, server


async def blast(port: int, seconds: float) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = b"x" * 65536
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        writer.write(payload)
        await writer.drain()  # stalls while the emulator's queue is full
    writer.close()


def bursty_trace(seed: int = 0) -> Trace:
    """A cellular-like trace: the rate jumps between 0.3 and 4 Mbit/s every few hundred ms."""
    rng = random.Random(seed)
    times: list[int] = []
    t = 0
    while t < 20_000:
        span = rng.randint(200, 900)
        per_ms = rng.choice([0.025, 0.1, 0.33])  # packets per ms
        times += [t + 1 + int(i / per_ms) for i in range(int(span * per_ms))]
        t += span
    return Trace(times, "bursty")


# A trace file committed with the tests (of our own making, see tests/data/traces/README.md): the file
# path runs on every clean clone, where the real traces beside the checkout may be absent.
TRACE_FILE = Path(__file__).parents[1] / "data" / "traces" / "stepped-lte.up"


def traces() -> list[object]:
    return [pytest.param(bursty_trace(), id="synthetic-bursty"), pytest.param(TRACE_FILE, id=TRACE_FILE.name)]


@pytest.mark.parametrize("source", traces())
async def test_delivered_bytes_follow_the_trace_within_5_percent_per_10_s_window(source: Trace | Path) -> None:
    trace = source if isinstance(source, Trace) else Trace.load(source)
    sink = Sink()
    delay = 20.0
    link, server = await through(LinkConfig(uplink=trace, downlink=Trace.constant(12), delay_ms=delay), sink)
    try:
        await blast(link.port, 11.5)
    finally:
        await link.stop()
        server.close()
    window = (1000.0, 11000.0)  # skip the first second: the sender needs a moment to fill the queue
    budget = trace.opportunities(*window) * PACKET_BYTES
    got = sink.bytes_between(window[0] + delay, window[1] + delay)
    assert budget > 500_000
    assert abs(got - budget) / budget < 0.05, (got, budget)
    assert link.counters.uplink_bytes >= got


async def test_one_way_delay_is_added_in_each_direction() -> None:
    sink = Sink(echo=True)
    config = LinkConfig(uplink=Trace.constant(50), downlink=Trace.constant(50), delay_ms=60)
    link, server = await through(config, sink)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        rtts = []
        for _ in range(3):
            start = time.monotonic()
            writer.write(b"ping")
            await writer.drain()
            assert await reader.readexactly(4) == b"ping"
            rtts.append((time.monotonic() - start) * 1000)
        writer.close()
    finally:
        await link.stop()
        server.close()
    assert all(120 <= r < 400 for r in rtts), rtts
    assert link.counters.uplink_bytes == link.counters.downlink_bytes == 12


async def blasted(config: LinkConfig, seconds: float) -> Sink:
    """The sink behind an emulator with `config`, after `seconds` of sending as fast as it takes."""
    sink = Sink()
    link, server = await through(config, sink)
    try:
        await blast(link.port, seconds)
        await asyncio.sleep(0.2)
    finally:
        await link.stop()
        server.close()
    return sink


async def test_stall_outage_delivers_nothing_until_it_ends() -> None:
    config = LinkConfig(uplink=Trace.constant(8), downlink=Trace.constant(8), outages=[Outage(0.5, 1.0)])
    sink = await blasted(config, 2.2)
    assert sink.bytes_between(600, 1450) == 0
    assert sink.bytes_between(0, 500) > 100_000
    assert sink.bytes_between(1550, 2300) > 100_000


async def test_a_link_started_into_the_schedule_is_where_the_schedule_says() -> None:
    config = LinkConfig(uplink=Trace.constant(8), downlink=Trace.constant(8), outages=[Outage(10.0, 0.5)], start_s=9.8)
    sink = await blasted(config, 1.0)
    # (The sink's clock is the emulator's: ms into the schedule.) Dark from 10.0 to 10.5 s, 0.2 s after the start.
    assert 9_800 <= min(t for t, _ in sink.arrivals) < 9_900
    assert sink.bytes_between(10_100, 10_450) == 0
    assert sink.bytes_between(9_800, 9_950) > 20_000
    assert sink.bytes_between(10_600, 10_800) > 20_000


async def test_reset_outage_refuses_connections_and_counts_them() -> None:
    sink = Sink()
    config = LinkConfig(
        uplink=Trace.constant(8), downlink=Trace.constant(8), outages=[Outage(0.0, 0.5)], outage_mode="reset"
    )
    link, server = await through(config, sink)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        assert await reader.read(10) == b""  # cut at once
        writer.close()
        await asyncio.sleep(0.6)
        _, writer = await asyncio.open_connection("127.0.0.1", link.port)
        writer.write(b"after")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
    finally:
        await link.stop()
        server.close()
    assert link.counters.refused == 1
    assert sink.bytes_between(0, 10_000) == 5


def test_trace_arithmetic() -> None:
    trace = Trace([1, 1, 5, 10])
    assert trace.opportunities(0, 10) == 4
    assert trace.opportunities(0, 20) == 8  # it loops with period 10
    assert trace.opportunities(1, 5) == 1
    assert trace.next_after(5) == 10 and trace.next_after(10) == 11
    assert Trace.constant(12).mbit_s() == pytest.approx(12, rel=0.01)
    assert Trace.parse("offline", uplink=True).opportunities(0, 1e6) == 0
    with pytest.raises(ValueError, match="START\\+LENGTH"):
        Outage.parse("10-5")


def test_a_traces_rate_at_a_moment_is_what_it_delivers_around_it() -> None:
    assert Trace.constant(12).rate_mbit_s(3.3) == pytest.approx(12, rel=0.02)
    steps = Trace([*range(1, 1001), *range(1001, 3001, 10)], "step")  # 12 Mbit/s for 1 s, then 1.2 Mbit/s for 2
    assert steps.rate_mbit_s(0.5) == pytest.approx(12, rel=0.02) and steps.rate_mbit_s(1.5) == pytest.approx(
        1.2, rel=0.05
    )


def test_offload_linkem_stops_on_sigint_even_when_started_with_it_ignored() -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored; Ctrl-C must still stop it."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    cmd = [str(Path(sys.executable).parent / "offload"), "linkem", "--listen", "127.0.0.1:0", "--upstream",
           "127.0.0.1:1"]  # fmt: skip
    link = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=ignore_sigint)
    try:
        assert link.stdout is not None and "listening" in link.stdout.readline()
        link.send_signal(signal.SIGINT)
        assert link.wait(10) == 0
    finally:
        link.kill()
        link.wait()
        link.stdout.close()
