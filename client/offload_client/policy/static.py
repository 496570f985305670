"""The two static policies: the baselines every adaptive choice is compared with."""

from __future__ import annotations

from offload_client.policy.base import Decision, Policy, PolicyInput
from offload_core.types import Where


class AlwaysLocal(Policy):
    """Every frame on the device: nothing is sent (the baseline that needs no network).

    Example:
        >>> from offload_client.policy import Estimates, PolicyInput
        >>> AlwaysLocal().decide(PolicyInput(0, Estimates(), 100.0, True)).where
        <Where.LOCAL: 'local'>
    """

    name = "always-local"

    def __init__(self, device_variant: str | None = None) -> None:
        # One device variant for every frame (None: the model's default device variant).
        self.device_variant = device_variant
        if device_variant:
            self.name = f"always-local ({device_variant})"

    def decide(self, inp: PolicyInput) -> Decision:
        est = inp.estimates
        return Decision(
            Where.LOCAL, self.name, est.local_ms.value, est.remote_ms.value, device_variant=self.device_variant
        )


class AlwaysRemote(Policy):
    """Remote whenever allowed; local only when privacy or the breaker forbid sending.

    Example:
        >>> from offload_client.policy import Estimates, PolicyInput
        >>> AlwaysRemote().decide(PolicyInput(0, Estimates(), 100.0, True)).where
        <Where.REMOTE: 'remote'>
        >>> AlwaysRemote().decide(PolicyInput(0, Estimates(), 100.0, False, "privacy: local-only")).reason
        'privacy: local-only'
    """

    name = "always-remote"

    def decide(self, inp: PolicyInput) -> Decision:
        if not inp.remote_allowed:
            return self.blocked(inp)
        return Decision(Where.REMOTE, "always-remote", inp.estimates.local_ms.value, inp.estimates.remote_ms.value)
