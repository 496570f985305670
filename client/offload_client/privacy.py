"""Privacy modes. They override every policy: `local-only` means no frame byte leaves the device."""

from __future__ import annotations

from enum import StrEnum


class Privacy(StrEnum):
    ALLOW = "allow"
    LOCAL_ONLY = "local-only"

    @classmethod
    def parse(cls, value: str | Privacy) -> Privacy:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown privacy mode {value!r}; use one of {[m.value for m in cls]}") from None
