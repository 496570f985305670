"""The radio's energy model against hand-computed joules, the paper's formula, and a second-by-second timeline."""

from __future__ import annotations

import numpy as np
import pytest

from offload_client.energy import LTE, THREE_G, WIFI, Radio, RadioProfile

PROMOTION_LTE = 0.2601 * 1210.7  # mJ: Huang et al., Table 3
TAIL_LTE = 11.576 * 1060.0


def test_the_papers_formula_for_a_transfer() -> None:
    """Huang et al., Table 4: P = alpha_u * t_u + alpha_d * t_d + beta. 100 KB up at 1 Mbit/s takes 0.8 s
    at 438.39 + 1288.04 mW."""
    assert LTE.transfer_mj(0.8, 100_000, 0) == pytest.approx((438.39 * 1.0 + 1288.04) * 0.8)
    # 1 MB down at 8 Mbit/s on Wi-Fi: 1 s at 137.01 * 8 + 132.86 mW.
    assert WIFI.transfer_mj(1.0, 0, 1_000_000) == pytest.approx(137.01 * 8 + 132.86)


def test_one_burst_from_idle_pays_promotion_transfer_and_the_whole_tail() -> None:
    cost = Radio(LTE).transfer(10.0, 10.5, 50_000, 1_000)
    assert cost.promotion_mj == pytest.approx(PROMOTION_LTE)
    assert cost.transfer_mj == pytest.approx(438.39 * 0.4 + 51.97 * 0.008 + 1288.04 * 0.5)
    assert cost.tail_mj == pytest.approx(TAIL_LTE)


def test_a_second_burst_inside_the_tail_pays_only_the_gap() -> None:
    radio = Radio(LTE)
    first = radio.transfer(0.0, 0.5, 50_000, 0)
    second = radio.transfer(2.5, 3.0, 50_000, 0)  # 2 s into the first one's tail
    assert second.promotion_mj == 0.0
    assert second.tail_mj == pytest.approx(2.0 * 1060.0)
    # Together: tail from 0.5 to 2.5, then a whole tail after 3.0; one promotion.
    tails = first.tail_mj + second.tail_mj
    assert tails == pytest.approx((2.0 + 11.576) * 1060.0)
    assert first.promotion_mj + second.promotion_mj == pytest.approx(PROMOTION_LTE)


def test_two_bursts_across_an_idle_gap_each_pay_everything() -> None:
    radio = Radio(LTE)
    first = radio.transfer(0.0, 0.5, 50_000, 0)
    second = radio.transfer(30.0, 30.5, 50_000, 0)
    assert second.total_mj == pytest.approx(first.total_mj)
    assert second.promotion_mj == pytest.approx(PROMOTION_LTE) and second.tail_mj == pytest.approx(TAIL_LTE)


def test_batching_inside_one_tail_is_cheaper_than_spreading_out() -> None:
    together, apart = Radio(LTE), Radio(LTE)
    batched = sum(together.transfer(t, t + 0.2, 20_000, 500).total_mj for t in (0.0, 0.3, 0.6))
    spread = sum(apart.transfer(t, t + 0.2, 20_000, 500).total_mj for t in (0.0, 20.0, 40.0))
    assert batched < spread / 2.5


def test_the_3g_tail_drops_from_dch_to_fach() -> None:
    assert THREE_G.tail_mj(8.0882 + 0.5) == pytest.approx(8.0882 * 803.9 + 0.5 * 601.3)
    assert THREE_G.tail_mj(100.0) == pytest.approx(8.0882 * 803.9 + 0.8242 * 601.3)


def timeline_mj(profile: RadioProfile, transfers: list[tuple[float, float]], step: float = 0.001) -> float:
    """The reference: walk the radio's states in 1 ms steps and integrate its power above idle.

    Promotion before a transfer that starts from idle; `beta` while any transfer runs; the tail stages
    after the last one ends, cut short by the next transfer. Bytes are left out (the same in both).
    """
    end = max(e for _, e in transfers) + profile.tail_s + 1.0
    energy, last_end = 0.0, None
    starts = sorted(s for s, _ in transfers)
    for t in np.arange(0.0, end, step):
        running = any(s <= t < e for s, e in transfers)
        if running:
            energy += profile.beta_mw * step
            last_end = max(e for s, e in transfers if s <= t < e)
            continue
        ended = [e for s, e in transfers if e <= t]
        if not ended:
            continue
        last_end = max(ended)
        since = t - last_end
        if since < profile.tail_s:
            energy += profile.tail_mj(since + step) - profile.tail_mj(since)
    for s in starts:  # a promotion for every transfer that began with the radio idle
        before = [e for s2, e in transfers if e <= s and s2 < s]
        idle = not before or s - max(before) >= profile.tail_s
        if idle and not any(s2 < s < e2 for s2, e2 in transfers):
            energy += profile.promotion_s * profile.promotion_mw
    return energy


@pytest.mark.parametrize("profile", [LTE, THREE_G], ids=["lte", "3g"])
def test_the_charges_of_a_run_add_up_to_its_timeline(profile: RadioProfile) -> None:
    rng = np.random.default_rng(3)
    transfers, t = [], 0.0
    for _ in range(12):
        t += float(rng.choice([0.05, 0.8, 3.0, 15.0]))  # back to back, inside a tail, across one
        transfers.append((t, t + float(rng.uniform(0.1, 0.6))))
    radio = Radio(profile)
    charged = [radio.transfer(s, e, 0, 0) for s, e in transfers]
    assert all(c.promotion_mj >= 0 and c.transfer_mj >= 0 and c.tail_mj >= 0 for c in charged)
    assert sum(c.total_mj for c in charged) == pytest.approx(timeline_mj(profile, transfers), rel=0.002)
