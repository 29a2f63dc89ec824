"""A tiny rate meter: run a callable repeatedly for a while and report operations per second."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Comparison", "aim_note", "cpu_seconds", "interleaved", "rate", "ratio_text"]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``), None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def aim_note(figure: float, aim: float | None, *, at_most: bool = False) -> str:
    """``aim 0.70, met`` / ``aim 0.70, below aim`` (``above aim`` for a ceiling): printed beside the figure."""
    if aim is None:
        return ""
    met = figure <= aim if at_most else figure >= aim
    return f"aim {aim:g}, {'met' if met else ('above aim' if at_most else 'below aim')}"


def ratio_text(figure: float, aim: float | None) -> str:
    """``figure`` with two decimals, or three where two would round it across ``aim`` (0.898 is below 0.9: it is
    not printed as 0.90 beside "below aim")."""
    text = f"{figure:.2f}"
    places = 3
    while aim is not None and (float(text) >= aim) != (figure >= aim) and places <= 6:
        text = f"{figure:.{places}f}"
        places += 1
    return text


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


def interleaved(
    contender: Callable[[], object], baseline: Callable[[], object], seconds: float = 1.0, batch: int = 50
) -> tuple[float, float, float]:
    """(contender rate, baseline rate, ratio): batches of the two taken in turn in this process, so that both see
    the same moments of a shared machine; the rates are the medians of the batches' and the ratio the median of
    the ratios of neighbouring batches (after one warm-up batch of each)."""
    for _ in range(batch):
        contender()
        baseline()
    ours: list[float] = []
    theirs: list[float] = []
    deadline = time.perf_counter() + 2 * seconds
    while time.perf_counter() < deadline or len(ours) < 5:
        for fn, out in ((contender, ours), (baseline, theirs)):
            start = time.perf_counter()
            for _ in range(batch):
                fn()
            out.append(batch / (time.perf_counter() - start))
    ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    return sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2], ratios[len(ratios) // 2]


@dataclass(frozen=True)
class Comparison:
    """A measured rate beside its baseline from the same process."""

    name: str
    rate: float
    baseline_name: str
    baseline: float
    unit: str = "APDUs/s"
    aim: float | None = None
    paired_ratio: float | None = None
    """The ratio measured batch by batch (see :func:`interleaved`), when there is one."""

    @property
    def ratio(self) -> float:
        if self.paired_ratio is not None:
            return self.paired_ratio
        return self.rate / self.baseline if self.baseline else 0.0

    @property
    def met(self) -> bool:
        return self.aim is None or self.ratio >= self.aim

    def line(self) -> str:
        aim = f"  ({aim_note(self.ratio, self.aim)})" if self.aim is not None else ""
        return (
            f"{self.name:<48} {self.rate:>10.0f} {self.unit}   baseline ({self.baseline_name}) "
            f"{self.baseline:>10.0f}   ratio {ratio_text(self.ratio, self.aim)}{aim}"
        )
