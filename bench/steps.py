"""One live line for a benchmark made of a few long steps: which step, how many done, the time so far.

Quiet when not on a terminal: CI logs get one line per step instead.

Example:
    >>> with Steps(["kill -9", "fuzz"]) as steps:        # doctest: +SKIP
    ...     steps.start("kill -9"); kill_9()
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


class Steps:
    def __init__(self, names: Sequence[str]) -> None:
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not self.live,
        )  # fmt: skip
        self.job = self.progress.add_task("", total=len(names))
        self.started = False

    def start(self, name: str) -> None:
        """Step `name` begins (the one before it is done)."""
        if self.started:
            self.progress.advance(self.job)
        self.started = True
        self.progress.update(self.job, description=name)
        if not self.live:
            console.print(f"--> {name}")

    def __enter__(self) -> Steps:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.advance(self.job)
        self.progress.stop()
