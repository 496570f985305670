"""What a frame is expected to cost the battery on each path: the energy objective's predictions.

The device's cost is its compute profile's power for the predicted time. A frame sent costs what the
radio model (offload_client/energy.py) would charge it, given how long the radio has been quiet, plus the
device's encoding. And before anything is known of the link there is a floor: if every frame went out,
the radio would never rest longer than the time between frames, so it spends at least that much of its
tail per frame (promotion and the whole tail when frames are further apart than the tail), however fast
the link. Waking an idle radio costs more again (a promotion and a whole tail, 12.6 J on LTE): sending
must repay that within `PAYBACK_S` of frames. When even the floor costs more than the device, measuring
the link cannot pay.
"""

from __future__ import annotations

from offload_client.energy import charge
from offload_client.policy.base import PolicyInput

# Waking an idle radio must pay for itself within this many seconds of frames: about one use of a camera
# feature (reading a sign, a menu). A product choice, not fitted to any benchmark.
PAYBACK_S = 30.0


def device_mj(inp: PolicyInput, device_ms: float) -> float:
    """The device's energy for `device_ms` of its compute."""
    return inp.compute.busy_mw * max(0.0, device_ms) / 1000.0


def sent_mj(inp: PolicyInput, on_air_ms: float, up_bytes: float, encode_ms: float) -> float:
    """A frame sent now: the radio's charge for `up_bytes` on the air for `on_air_ms` (from its send to
    its answer), and the device's encoding.

    Example (LTE, quiet for 1 s: the 1 s of tail it cuts short, 0.3 s connected, 24 KB):
        >>> from offload_client.policy import Estimates
        >>> inp = PolicyInput(0, Estimates(), 500.0, True, radio_quiet_s=1.0)
        >>> round(sent_mj(inp, 300.0, 24_000, 0.0))
        1531
    """
    last_end = None if inp.radio_quiet_s is None else -inp.radio_quiet_s
    radio = charge(inp.radio, last_end, 0.0, max(0.0, on_air_ms) / 1000.0, int(up_bytes), 0)
    return radio.total_mj + device_mj(inp, encode_ms)


def sending_floor_mj(inp: PolicyInput, up_bytes: float, encode_ms: float) -> float | None:
    """The least a frame could cost sent, at the app's frame rate, on any link (None: rate not known yet).

    If every frame went out, the radio would rest no longer than the time between frames, so each frame
    pays at least that much of the tail: a transfer's own power (`beta`) is above every tail stage's, so
    sending longer never costs less. Bytes and encoding come on top, and, with the radio idle, waking it
    (a promotion and a whole tail) shared by the frames of `PAYBACK_S`.

    Example (LTE at 2 frames a second, radio up: half a second of tail, 530 mJ, before a byte is sent;
    radio idle: its 12.6 J wake-up shared by 60 frames, 210 mJ more):
        >>> from dataclasses import replace
        >>> from offload_client.policy import Estimates
        >>> up = PolicyInput(0, Estimates(), 500.0, True, frame_interval_s=0.5, radio_quiet_s=1.0)
        >>> round(sending_floor_mj(up, 0, 0.0)), round(sending_floor_mj(replace(up, radio_quiet_s=None), 0, 0.0))
        (530, 740)
    """
    interval = inp.frame_interval_s
    if interval is None:
        return None
    radio = inp.radio
    floor = radio.tail_mj(min(interval, radio.tail_s))
    idle = inp.radio_quiet_s is None or inp.radio_quiet_s >= radio.tail_s
    if idle and interval < radio.tail_s:  # waking it must pay back (further apart, every frame pays a tail)
        floor += (radio.promotion_s * radio.promotion_mw + radio.tail_mj(radio.tail_s)) * interval / PAYBACK_S
    return floor + radio.transfer_mj(0.0, int(up_bytes), 0) + device_mj(inp, encode_ms)
