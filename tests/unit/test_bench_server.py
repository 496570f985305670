"""`make bench-server` judges every target: a goal is met or it is not."""

from __future__ import annotations

import pytest

from bench.server import judge

pytestmark = pytest.mark.unit


def test_each_goal_form_is_judged() -> None:
    assert judge(1.10, "<= 1.15") == "met" and judge(1.16, "<= 1.15") == "NOT met"
    assert judge(0.85, ">= 0.85") == "met" and judge(0.84, ">= 0.85") == "NOT met"
    assert judge(2047, "< 2048") == "met" and judge(2048, "< 2048") == "NOT met"
    assert judge(0, "0") == "met" and judge(3, "0") == "NOT met"
    assert judge(None, ">= 1.5") == "unmeasured"  # a contender that answered nothing proves nothing
