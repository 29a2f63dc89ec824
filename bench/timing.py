"""A tiny rate meter: run a callable repeatedly for a while and report operations per second."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Comparison", "aim_note", "rate"]


def aim_note(figure: float, aim: float | None, *, at_most: bool = False) -> str:
    """``aim 0.70, met`` / ``aim 0.70, below aim`` (``above aim`` for a ceiling): printed beside the figure."""
    if aim is None:
        return ""
    met = figure <= aim if at_most else figure >= aim
    return f"aim {aim:g}, {'met' if met else ('above aim' if at_most else 'below aim')}"


def rate(fn: Callable[[], object], seconds: float = 1.0, batch: int = 50) -> float:
    """Calls of ``fn`` per second, measured over at least ``seconds`` (after one warm-up batch)."""
    for _ in range(batch):
        fn()
    calls = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for _ in range(batch):
            fn()
        calls += batch
        elapsed = time.perf_counter() - start
    return calls / elapsed


@dataclass(frozen=True)
class Comparison:
    """A measured rate beside its baseline from the same process."""

    name: str
    rate: float
    baseline_name: str
    baseline: float
    unit: str = "APDUs/s"
    aim: float | None = None

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline if self.baseline else 0.0

    def line(self) -> str:
        aim = f"  ({aim_note(self.ratio, self.aim)})" if self.aim is not None else ""
        return (
            f"{self.name:<48} {self.rate:>10.0f} {self.unit}   baseline ({self.baseline_name}) "
            f"{self.baseline:>10.0f}   ratio {self.ratio:.2f}{aim}"
        )
