"""The vocabulary between the frame router and its drivers: actions it asks for, events they report.

A driver (`OffloadClient`, `AsyncOffloadClient`) performs each action and answers with
the event that ended it; the router returns the next action or the frame's result:

    step = router.begin(image)
    while not isinstance(step, FrameResult):
        step = router.next(step, perform(step))

Every action names its frame (`frame`), so frames may overlap. A call still running
when its frame ends is the driver's to finish in the background, reporting its
outcome with `router.late(...)`; the router decides whether it teaches anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from offload_client.pending import Pending
from offload_client.transport import Exchange, TransportError
from offload_core.proto import offload_pb2 as pb
from offload_core.types import FrameResult, Prediction, StageTimes

# -- actions: what the driver does next ----------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A remote call: the gRPC deadline, and whether to wait out a reconnecting channel."""

    request: pb.InferRequest
    timeout_s: float
    patient: bool = False


@dataclass(frozen=True)
class Send:
    """Start `call` and wait up to `wait_s` for it: `Answered`, `Failed` or `TimedOut`."""

    frame: Pending
    call: Call
    wait_s: float


@dataclass(frozen=True)
class RunLocal:
    """Start `probe` (if any) in the background, run the device model to the end: `DeviceDone`."""

    frame: Pending
    variant: str | None
    probe: Call | None = None


@dataclass(frozen=True)
class Race:
    """The call runs on; start the device model too, stoppable, and report the first to end:
    `DeviceDone` when the device is done (even if the call is too), else `Answered` or `Failed`."""

    frame: Pending
    variant: str | None


@dataclass(frozen=True)
class AwaitRemote:
    """The device is done; wait up to `wait_s` more for the running call: `Answered`, `Failed` or `TimedOut`."""

    frame: Pending
    wait_s: float


@dataclass(frozen=True)
class AwaitDevice:
    """The call failed during a race; wait for the running device model: `DeviceDone`."""

    frame: Pending


Action = Send | RunLocal | Race | AwaitRemote | AwaitDevice
Step = Action | FrameResult

# -- events: what ended the action --------------------------------------------------------


@dataclass(frozen=True)
class Answered:
    exchange: Exchange


@dataclass(frozen=True)
class Failed:
    error: TransportError


@dataclass(frozen=True)
class TimedOut:
    """The wait ended with the call still running."""


@dataclass(frozen=True)
class DeviceDone:
    prediction: Prediction
    stages: StageTimes
    variant: str  # the variant that ran


@dataclass(frozen=True)
class DeviceFailed:
    """The device model raised (a bug in a plug-in task, a broken file): the frame tries the server."""

    error: str


DeviceOutcome = DeviceDone | DeviceFailed
Event = Answered | Failed | TimedOut | DeviceDone | DeviceFailed
