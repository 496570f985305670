"""Policies decide, per frame, where the model runs; estimators feed them."""

from collections.abc import Callable

from offload_client.policy.adaptive import Adaptive
from offload_client.policy.base import Decision, DeviceOption, Policy, PolicyInput
from offload_client.policy.breaker import CircuitBreaker
from offload_client.policy.estimators import Estimates, Ewma
from offload_client.policy.static import AlwaysLocal, AlwaysRemote

POLICIES: dict[str, Callable[[], Policy]] = {
    "always-local": AlwaysLocal,
    "always-remote": AlwaysRemote,
    "adaptive": Adaptive,
    "adaptive-latency": lambda: Adaptive(objective="latency"),
    "adaptive-accuracy": lambda: Adaptive(objective="accuracy"),
    "adaptive-energy": lambda: Adaptive(objective="energy"),
}


def make_policy(policy: str | Policy) -> Policy:
    """A policy instance from its name (see `POLICIES`) or as given."""
    if isinstance(policy, Policy):
        return policy
    try:
        return POLICIES[policy]()
    except KeyError:
        raise ValueError(f"unknown policy {policy!r}; use one of {sorted(POLICIES)}") from None


__all__ = [
    "POLICIES",
    "Adaptive",
    "AlwaysLocal",
    "AlwaysRemote",
    "CircuitBreaker",
    "Decision",
    "DeviceOption",
    "Estimates",
    "Ewma",
    "Policy",
    "PolicyInput",
    "make_policy",
]
