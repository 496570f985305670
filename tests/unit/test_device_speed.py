"""The emulated phone: a step at x k costs k times its CPU time, and reports k times its CPU time."""

from __future__ import annotations

import threading
import time

import pytest

from offload_client.device_speed import DeviceSpeed

pytestmark = pytest.mark.unit


def step() -> None:
    """~30 ms of CPU on this thread alone (plain Python: no library's worker threads)."""
    sum(i * i for i in range(300_000))


def cpu_of(device: DeviceSpeed) -> float:
    """This thread's CPU time for one step through `device`, the median of three."""
    spent = []
    for _ in range(3):
        cpu = time.thread_time()
        with device.paying():
            step()
        spent.append(time.thread_time() - cpu)
    return sorted(spent)[1]


@pytest.mark.parametrize("k", [2.0, 3.0, 5.0])
def test_a_step_at_k_takes_k_times_the_cpu_time_of_one(k: float) -> None:
    """The step's own CPU time is its time at x1 (measured in the same call: a separate x1 run differs by
    the machine's noise, ~20 % on a shared core); the whole step at x k costs k times that."""
    for _ in range(3):
        cpu = time.thread_time()
        with DeviceSpeed(k).paying() as bill:
            step()
        total_ms = (time.thread_time() - cpu) * 1000.0
        assert total_ms / bill.cpu_ms == pytest.approx(k, rel=0.15)
        assert bill.cpu_ms > 5  # the step did real work: the ratio is not of two rounding errors


def test_the_bill_is_cpu_times_k_whatever_the_wall_clock_did() -> None:
    """A step that sleeps (as if another process held the core) is not charged for the sleep k times."""
    with DeviceSpeed(3.0).paying() as bill:
        step()
        time.sleep(0.2)
    assert bill.wall_ms > bill.cpu_ms + 150
    assert bill.device_ms == pytest.approx(3.0 * bill.cpu_ms)
    assert bill.device_ms < 3.0 * bill.wall_ms - 400  # wall x k would have charged the sleep three times
    assert bill.scale() * bill.wall_ms == pytest.approx(bill.device_ms)


def test_a_stop_cuts_the_extra_work_short() -> None:
    stop = threading.Event()
    stop.set()
    cpu = time.thread_time()
    with DeviceSpeed(20.0).paying(stop):
        step()
    assert time.thread_time() - cpu < 5 * cpu_of(DeviceSpeed(1.0))
