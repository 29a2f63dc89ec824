"""A tiny rate meter: run a callable repeatedly for a while and report operations per second."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Comparison", "rate"]


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
        aim = ""
        if self.aim is not None:
            aim = f"  aim >= {self.aim:.2f}: {'met' if self.ratio >= self.aim else 'NOT met'}"
        return (
            f"{self.name:<48} {self.rate:>10.0f} {self.unit}   baseline ({self.baseline_name}) "
            f"{self.baseline:>10.0f}   ratio {self.ratio:.2f}{aim}"
        )
