"""The fuzz loop: targets (name -> seeds, call), inputs derived from (seed, target, index), the rule, findings
and their reproducer files."""

from __future__ import annotations

import json
import math
import random
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from fuzz.mutate import mutate
from gpchannel.errors import GPChannelError

__all__ = ["Finding", "Report", "Target", "each", "input_for", "replay", "run", "run_one"]

SLOW_SECONDS = 5.0
"""An input that takes longer than this is a finding too (a parser that can be made to spin)."""


@dataclass(frozen=True)
class Target:
    """One fuzzed entry point. ``call`` takes the mutated bytes and returns or raises; ``allowed`` is what it may
    raise (the project's documented errors; empty for the card, which must answer every command)."""

    name: str
    seeds: Callable[[], Sequence[bytes]]
    call: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...] = (GPChannelError,)
    max_size: int = 4096


def each(*calls: Callable[[bytes], object]) -> Callable[[bytes], None]:
    """One target running several parsers on the same input: a documented error of one does not hide the next."""

    def run_all(data: bytes) -> None:
        for call in calls:
            try:
                call(data)
            except GPChannelError:
                pass

    return run_all


@dataclass(frozen=True)
class Finding:
    target: str
    seed: int
    index: int
    data: bytes
    error: str
    trace: str

    def line(self) -> str:
        return f"FINDING {self.target} seed={self.seed} index={self.index} {self.error}\n  input: {self.data.hex()}"

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.target}-{self.seed}-{self.index}.json"
        body = {"target": self.target, "seed": self.seed, "index": self.index, "input": self.data.hex()}
        body |= {"error": self.error, "traceback": self.trace}
        path.write_text(json.dumps(body, indent=2) + "\n")
        return path


@dataclass
class Report:
    inputs: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    per_target: dict[str, tuple[int, float]] = field(default_factory=dict)


_seed_cache: dict[str, Sequence[bytes]] = {}


def _seeds(target: Target) -> Sequence[bytes]:
    if target.name not in _seed_cache:
        _seed_cache[target.name] = [bytes(s) for s in target.seeds()]
    return _seed_cache[target.name]


def input_for(target: Target, seed: int, index: int) -> bytes:
    """The ``index``-th input of ``target`` under ``seed``: the seeds themselves first, then mutations (a few
    random byte strings among them). A pure function of its arguments."""
    seeds = _seeds(target)
    if index < len(seeds):
        return seeds[index][: target.max_size]
    rng = random.Random(f"{seed}/{target.name}/{index}")
    if not seeds or rng.random() < 0.03:
        return rng.randbytes(rng.choice((0, 1, 2, 5, 16, rng.randrange(300))))
    return mutate(rng, rng.choice(seeds), seeds, max_size=target.max_size)


def run_one(target: Target, data: bytes) -> str | None:
    """Run one input; the exception's description when the rule is broken, else None."""
    started = time.perf_counter()
    try:
        target.call(data)
    except target.allowed:
        pass
    except Exception as exc:  # anything not documented is exactly what we look for
        return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"[:500]
    elapsed = time.perf_counter() - started
    if elapsed > SLOW_SECONDS:
        return f"slow: {elapsed:.1f} s for one input"
    return None


def run(
    targets: Sequence[Target],
    *,
    seed: int,
    inputs: int,
    seconds: float,
    out: TextIO,
    findings_dir: Path | None = None,
    max_findings: int = 5,
) -> Report:
    """Fuzz each target for ``inputs / len(targets)`` inputs or its share of ``seconds``, whichever ends first
    (time a target does not use goes to the next). At most ``max_findings`` reported per target."""
    report = Report()
    per_target = math.ceil(inputs / len(targets)) if targets else 0
    deadline = time.monotonic() + seconds
    for position, target in enumerate(targets):
        budget = max(0.0, (deadline - time.monotonic()) / (len(targets) - position))
        stop = time.monotonic() + budget
        started = time.monotonic()
        done = found = 0
        while done < per_target and (done & 63 or time.monotonic() < stop):
            data = input_for(target, seed, done)
            problem = run_one(target, data)
            if problem is not None and found < max_findings:
                found += 1
                finding = Finding(target.name, seed, done, data, problem, _trace(target, data))
                report.findings.append(finding)
                print(finding.line(), file=out, flush=True)
                if findings_dir is not None:
                    print(f"  reproducer: {finding.write(findings_dir)}", file=out, flush=True)
            done += 1
        took = time.monotonic() - started
        report.per_target[target.name] = (done, took)
        report.inputs += done
        report.seconds += took
        rate = done / took if took else 0.0
        print(f"{target.name:28} {done:9d} inputs {took:8.1f} s {rate:9.0f}/s  findings {found}", file=out, flush=True)
    return report


def _trace(target: Target, data: bytes) -> str:
    try:
        target.call(data)
    except target.allowed:
        return ""
    except Exception:  # the finding itself
        return traceback.format_exc()
    return ""


def replay(targets: Sequence[Target], path: Path, out: TextIO) -> bool:
    """Run a reproducer file again; True when the input now passes the rule."""
    body = json.loads(path.read_text())
    by_name = {t.name: t for t in targets}
    target = by_name[body["target"]]
    data = bytes.fromhex(body["input"])
    problem = run_one(target, data)
    if problem is None:
        print(f"{path}: {target.name} passes now", file=out)
        return True
    print(f"{path}: {target.name} still fails: {problem}\n{_trace(target, data)}", file=out)
    return False
