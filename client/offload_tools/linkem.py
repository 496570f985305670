"""A user-space link emulator: an asyncio TCP proxy that replays Mahimahi cellular traces.

Kernel netem is not available on our machines, so the bottleneck lives here.
Each direction has its own trace: one line per 1500-byte delivery opportunity,
in ms since the start; the trace loops. Opportunities that find the queue empty
are lost, as in Mahimahi. Bytes wait in a bounded queue (a full queue stops
reading from the sender, so it stalls as behind a real bottleneck), leave at
the trace's pace, then arrive after a one-way propagation delay.

Outages make the link dark: in `stall` mode nothing is delivered until the
outage ends; in `reset` mode connections are cut and new ones refused.

    offload linkem --listen 127.0.0.1:50052 --upstream 127.0.0.1:50051 \\
        --uplink bench/traces/mahimahi/ATT-LTE-driving-2016.up --downlink lte --delay-ms 40
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

PACKET_BYTES = 1500
# Constant-rate profiles (uplink Mbit/s, downlink Mbit/s, one-way delay ms).
PROFILES: dict[str, tuple[float, float, float]] = {
    "wifi": (50.0, 50.0, 5.0),
    "lte": (12.0, 12.0, 30.0),
    "3g": (1.0, 2.0, 100.0),
    "edge": (0.1, 0.2, 200.0),
    "offline": (0.0, 0.0, 0.0),
}


class Trace:
    """Delivery opportunities of one direction, in ms, looping with period `period_ms`."""

    def __init__(self, times_ms: list[int], name: str = "trace") -> None:
        if any(b < a for a, b in itertools.pairwise(times_ms)):
            raise ValueError(f"{name}: trace times must not decrease")
        self.times = times_ms
        self.name = name
        self.period_ms = max(times_ms[-1], 1) if times_ms else 1

    @classmethod
    def load(cls, path: Path) -> Trace:
        times = [int(line) for line in path.read_text().split()]
        if not times:
            raise ValueError(f"{path}: empty trace")
        return cls(times, path.stem)

    @classmethod
    def constant(cls, mbit_s: float, name: str = "constant") -> Trace:
        """A trace for a constant rate over a 1 s period (an empty one for 0: offline)."""
        packets = round(mbit_s * 1e6 / 8 / PACKET_BYTES)
        return cls([1 + (i * 1000) // packets for i in range(packets)] if packets else [], name)

    @classmethod
    def parse(cls, spec: str, uplink: bool) -> Trace:
        """A Mahimahi trace file, or a profile name (its uplink or downlink rate)."""
        if spec in PROFILES:
            up, down, _ = PROFILES[spec]
            return cls.constant(up if uplink else down, spec)
        path = Path(spec)
        if path.is_file():
            return cls.load(path)
        raise ValueError(f"no trace file {spec!r}; give a Mahimahi trace or a profile among {sorted(PROFILES)}")

    def rate_mbit_s(self, t_s: float, window_s: float = 1.0) -> float:
        """What the trace delivers around `t_s` (seconds into it, looping): Mbit/s over `window_s`."""
        start = t_s * 1000.0 - window_s * 500.0
        return self.opportunities(start, start + window_s * 1000.0) * PACKET_BYTES * 8 / 1e6 / window_s

    def opportunities(self, start_ms: float, end_ms: float) -> int:
        """How many opportunities fall in (start_ms, end_ms]."""
        if not self.times or end_ms <= start_ms:
            return 0
        return self._count_upto(end_ms) - self._count_upto(start_ms)

    def _count_upto(self, t: float) -> int:
        loops, rest = divmod(t, self.period_ms)
        return int(loops) * len(self.times) + bisect.bisect_right(self.times, rest)

    def next_after(self, t_ms: float) -> float | None:
        """The time of the first opportunity after `t_ms`."""
        if not self.times:
            return None
        loops, rest = divmod(t_ms, self.period_ms)
        i = bisect.bisect_right(self.times, rest)
        if i < len(self.times):
            return loops * self.period_ms + self.times[i]
        return (loops + 1) * self.period_ms + self.times[0]

    def mbit_s(self) -> float:
        return len(self.times) * PACKET_BYTES * 8 / (self.period_ms / 1000) / 1e6


@dataclass(frozen=True)
class Outage:
    start_s: float
    length_s: float

    @classmethod
    def parse(cls, spec: str) -> Outage:
        """`START+LENGTH` in seconds since the emulator started, e.g. `10+5`."""
        try:
            start, length = spec.split("+")
            return cls(float(start), float(length))
        except ValueError:
            raise ValueError(f"outage {spec!r} must look like START+LENGTH in seconds, e.g. 10+5") from None

    def covers(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.start_s + self.length_s


@dataclass
class LinkConfig:
    uplink: Trace
    downlink: Trace
    delay_ms: float = 0.0
    queue_packets: int = 100
    outages: list[Outage] = field(default_factory=list)
    outage_mode: str = "stall"  # or "reset"
    # Where in the traces (and the outage schedule) the emulator begins, in seconds: a benchmark can
    # replay the moment one frame meets, on a fresh link of its own.
    start_s: float = 0.0


@dataclass
class Counters:
    """Bytes that crossed the bottleneck, per direction: the privacy proof counts `uplink_bytes`."""

    uplink_bytes: int = 0
    downlink_bytes: int = 0
    connections: int = 0
    refused: int = 0


class _Direction:
    """One direction of one connection: queue → trace-paced bottleneck → delay line → writer."""

    def __init__(self, link: LinkEmulator, trace: Trace, uplink: bool) -> None:
        self.link = link
        self.trace = trace
        self.uplink = uplink
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.capacity = link.config.queue_packets * PACKET_BYTES
        self.space = asyncio.Event()
        self.space.set()
        self.data = asyncio.Event()
        # Bytes past the bottleneck, still in propagation: (arrival time, bytes).
        self.in_flight: deque[tuple[float, bytes]] = deque()
        self.arrived = asyncio.Event()

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read from the sender into the queue, stalling the sender while the queue is full."""
        delivery = asyncio.create_task(self._deliver(writer))
        try:
            while True:
                await self.space.wait()
                chunk = await reader.read(min(65536, max(PACKET_BYTES, self.capacity - self.queued)))
                if not chunk:
                    break
                self.queue.append(chunk)
                self.queued += len(chunk)
                self.data.set()
                if self.queued >= self.capacity:
                    self.space.clear()
            # Sender closed: let what it sent arrive, then close our side.
            while self.queued or self.in_flight:
                await asyncio.sleep(0.005)
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()
        finally:
            delivery.cancel()

    def _take(self, budget: int) -> bytes:
        out = bytearray()
        while self.queue and len(out) < budget:
            chunk = self.queue.popleft()
            room = budget - len(out)
            if len(chunk) > room:
                self.queue.appendleft(chunk[room:])
                chunk = chunk[:room]
            out += chunk
        self.queued -= len(out)
        if self.queued < self.capacity:
            self.space.set()
        return bytes(out)

    async def _deliver(self, writer: asyncio.StreamWriter) -> None:
        link = self.link
        delay_s = link.config.delay_ms / 1000
        writer_task = asyncio.create_task(self._write_delayed(writer))
        try:
            last = link.now_ms()
            while True:
                if not self.queued:
                    self.data.clear()
                    await self.data.wait()
                    last = link.now_ms()  # opportunities while the queue was empty are lost
                now = link.now_ms()
                if link.dark(now / 1000):
                    await asyncio.sleep(0.01)
                    last = link.now_ms()
                    continue
                n = self.trace.opportunities(last, now)
                last = now
                if n:
                    chunk = self._take(n * PACKET_BYTES)
                    link.count(self.uplink, len(chunk))
                    self.in_flight.append((time.monotonic() + delay_s, chunk))
                    self.arrived.set()
                nxt = self.trace.next_after(now)
                await asyncio.sleep(max(0.0005, ((nxt if nxt is not None else now + 10) - link.now_ms()) / 1000))
        finally:
            writer_task.cancel()

    async def _write_delayed(self, writer: asyncio.StreamWriter) -> None:
        in_flight = self.in_flight
        while True:
            if not in_flight:
                self.arrived.clear()
                await self.arrived.wait()
                continue
            due, chunk = in_flight[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            in_flight.popleft()
            await writer.drain()


class LinkEmulator:
    """The proxy. `await start()` binds (port 0 picks a free one); `counters` count bytes per direction."""

    def __init__(self, config: LinkConfig, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.config = config
        self.listen = listen
        self.upstream = upstream
        self.counters = Counters()
        self.server: asyncio.Server | None = None
        self.port = 0
        self._t0 = time.monotonic()
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None

    def now_ms(self) -> float:
        return (time.monotonic() - self._t0) * 1000

    def dark(self, t_s: float) -> bool:
        return any(o.covers(t_s) for o in self.config.outages)

    def count(self, uplink: bool, n: int) -> None:
        if uplink:
            self.counters.uplink_bytes += n
        else:
            self.counters.downlink_bytes += n

    async def start(self) -> None:
        self._t0 = time.monotonic() - self.config.start_s
        self.server = await asyncio.start_server(self._handle, *self.listen)
        self.port = self.server.sockets[0].getsockname()[1]
        if self.config.outage_mode == "reset" and self.config.outages:
            self._watch = asyncio.create_task(self._reset_during_outages())

    async def _reset_during_outages(self) -> None:
        while True:
            if self.dark(self.now_ms() / 1000):
                for w in list(self._connections):
                    w.transport.abort()
            await asyncio.sleep(0.01)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.config.outage_mode == "reset" and self.dark(self.now_ms() / 1000):
            self.counters.refused += 1
            client_writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.counters.refused += 1
            client_writer.transport.abort()
            return
        self.counters.connections += 1
        self._connections |= {client_writer, up_writer}
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        up = _Direction(self, self.config.uplink, uplink=True)
        down = _Direction(self, self.config.downlink, uplink=False)
        try:
            await asyncio.gather(up.pump(client_reader, up_writer), down.pump(up_reader, client_writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a cut connection (outage, peer gone, emulator stopping) is normal life for a proxy
        finally:
            if task is not None:
                self._handlers.discard(task)
            self._connections -= {client_writer, up_writer}
            for w in (client_writer, up_writer):
                w.close()

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self.server is not None:
            self.server.close()
            for w in list(self._connections):
                w.transport.abort()
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self.server.wait_closed()


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address {text!r} must look like HOST:PORT")
    return host, int(port)


def config_from_args(
    uplink: str,
    downlink: str,
    delay_ms: float | None,
    queue_packets: int,
    outages: list[str],
    outage_mode: str,
    start_s: float = 0.0,
) -> LinkConfig:
    """A config from CLI words; a profile name for the uplink also sets the default delay."""
    default_delay = PROFILES[uplink][2] if uplink in PROFILES else 0.0
    return LinkConfig(
        uplink=Trace.parse(uplink, uplink=True),
        downlink=Trace.parse(downlink, uplink=False),
        delay_ms=default_delay if delay_ms is None else delay_ms,
        queue_packets=queue_packets,
        outages=[Outage.parse(o) for o in outages],
        outage_mode=outage_mode,
        start_s=start_s,
    )


async def run_until_cancelled(link: LinkEmulator, report_every_s: float = 5.0) -> None:
    """Serve until cancelled (Ctrl-C, SIGINT or SIGTERM), printing the byte counters now and then.

    The signals are handled here, not left to Python's defaults: a process started in the background by
    a non-interactive shell inherits SIGINT ignored, and then a SIGINT (Ctrl-C's, or a benchmark's) did
    nothing at all.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows' loop
            loop.add_signal_handler(stop_signal, stopping.set)
    await link.start()
    c = link.counters
    print(
        f"linkem listening on {link.listen[0]}:{link.port} → {link.upstream[0]}:{link.upstream[1]} "
        f"(uplink {link.config.uplink.name} ~{link.config.uplink.mbit_s():.2f} Mbit/s, "
        f"downlink {link.config.downlink.name} ~{link.config.downlink.mbit_s():.2f} Mbit/s, "
        f"delay {link.config.delay_ms:.0f} ms)",
        flush=True,
    )
    try:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), report_every_s)
            print(f"up {c.uplink_bytes} B, down {c.downlink_bytes} B, connections {c.connections}", flush=True)
    finally:
        await link.stop()
