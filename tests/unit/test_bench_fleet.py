"""The fleet benchmark's parts that decide its verdicts: the queueing model, the crossover, fairness, and the
replayed device (a phone's answer and its time, not this machine's)."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bench.fleet import Answer, fairness, jain
from bench.queueing import crossover, mean_wait_ms, periodic_wait_ms, predicted_crossover, words_in_time
from bench.replay_device import ReplayDevice, fingerprint
from offload_client import Where


def test_the_md1_wait_grows_without_bound_as_the_server_saturates() -> None:
    assert mean_wait_ms(0.0, 2.0) == 0.0
    assert mean_wait_ms(1.0, 2.0) == pytest.approx(250.0)  # rho 0.5: rho / (2 mu (1 - rho)) s
    assert mean_wait_ms(1.9, 2.0) > 10 * mean_wait_ms(1.0, 2.0)
    assert math.isinf(mean_wait_ms(2.0, 2.0))


def test_words_in_time_drop_the_frames_an_extra_wait_pushes_past_the_deadline() -> None:
    assert words_in_time([400, 800], [3, 5], 10, 0.0, 1000) == pytest.approx(0.8)
    assert words_in_time([400, 800], [3, 5], 10, 300.0, 1000) == pytest.approx(0.3)
    assert words_in_time([400, 800], [3, 5], 10, math.inf, 1000) == 0.0


def test_the_crossover_is_where_the_servers_gain_turns_negative_on_log_n() -> None:
    assert crossover([1, 2, 4], [0.2, 0.1, -0.1]) == pytest.approx(2**1.5)
    assert crossover([1, 2, 4], [0.2, 0.1, 0.05]) is None
    # A server with twice the capacity holds twice the phones before its frames come late.
    one = dict(one_phone_ms=[600.0] * 10, one_phone_words=[8] * 10, total_words=100, device_words=0.5,
               rate_per_phone=1.0, deadline_ms=1000.0, largest=64)  # fmt: skip
    small = predicted_crossover(capacity_per_s=2.0, **one)  # type: ignore[arg-type]
    large = predicted_crossover(capacity_per_s=4.0, **one)  # type: ignore[arg-type]
    assert small is not None and large is not None
    assert 1.5 * small <= large <= 2.5 * small


def test_periodic_phones_wait_less_than_poisson_ones_until_the_server_saturates() -> None:
    assert periodic_wait_ms(1, 1.0, 0.5) == 0.0
    for phones in (1.5, 2.0, 3.0):
        assert periodic_wait_ms(phones, 1.0, 0.25) < mean_wait_ms(phones, 4.0)
    assert periodic_wait_ms(3.0, 1.0, 0.25) < periodic_wait_ms(3.5, 1.0, 0.25) < periodic_wait_ms(5.0, 1.0, 0.25)
    assert periodic_wait_ms(6.0, 1.0, 0.25) > 1000.0  # past saturation the queue grows with every period
    assert periodic_wait_ms(2.5, 1.0, 0.25) == periodic_wait_ms(2.5, 1.0, 0.25)  # seeded: the same each time


def test_fairness_compares_phones_on_the_same_link_only() -> None:
    assert jain([1.0, 1.0, 1.0]) == 1.0
    assert jain([1.0, 0.0]) == pytest.approx(0.5)

    def answers(phone: int, late: int) -> list[Answer]:
        return [Answer(phone, 2000.0 if i < late else 100.0, Where.REMOTE, 0, 0, 0) for i in range(10)]

    # Phones 0 and 2 share a link (two links): both on time. Phone 1's link is slow: no one to compare it with.
    assert fairness(answers(0, 0) + answers(1, 10) + answers(2, 0), 3, 2, 1000.0) == 1.0
    assert fairness(answers(0, 0) + answers(1, 0) + answers(2, 10), 3, 2, 1000.0) == pytest.approx(0.5)


def test_the_replayed_device_answers_as_the_device_did_after_the_phones_time(models_dir: Path) -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (480, 640, 3), np.uint8) for _ in range(2)]
    means = ReplayDevice.measure("text-spotter", models_dir, frames, slowdown=3.0)
    engine = ReplayDevice("text-spotter", models_dir, 1, 3.0)
    variant = engine.variant
    prediction, _, cpu_ms = ReplayDevice._answers[(variant, fingerprint(frames[0]))]
    start, cpu = time.monotonic(), time.thread_time()
    replayed, stages = engine.run(frames[0])
    waited_ms, spent_ms = (time.monotonic() - start) * 1000, (time.thread_time() - cpu) * 1000
    assert replayed is prediction
    assert waited_ms >= 3 * cpu_ms * 0.95 and spent_ms < cpu_ms  # the phone's time, waited, not worked
    assert stages.preprocess_ms + stages.inference_ms + stages.postprocess_ms == pytest.approx(3 * cpu_ms)
    assert set(means) == set(engine.variants)
    # A race the server won stops the phone's run at once.
    stop = threading.Event()
    stop.set()
    start = time.monotonic()
    engine.run(frames[1], stop)
    assert time.monotonic() - start < 0.05
