"""Privacy modes. They override every policy.

- `allow`: frames may go to the server as they are.
- `redact`: faces are painted over on the device, and a frame leaves only once the face detector
  finds none in it (see `redaction`); if the detector cannot run, nothing leaves (fail closed).
- `local-only`: no frame byte leaves the device, probes included.
"""

from __future__ import annotations

from enum import StrEnum


class Privacy(StrEnum):
    """Whether and how frames may leave the device; set it on a client at any time.

    Example:
        >>> Privacy.parse("redact")
        <Privacy.REDACT: 'redact'>
        >>> oc.privacy = "local-only"  # doctest: +SKIP
    """

    ALLOW = "allow"
    REDACT = "redact"
    LOCAL_ONLY = "local-only"

    @classmethod
    def parse(cls, value: str | Privacy) -> Privacy:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown privacy mode {value!r}; use one of {[m.value for m in cls]}") from None
