"""``python -m fuzz [--seed N] [--seconds S] [--inputs N] [--target PREFIX ...] [--findings DIR]``, or
``python -m fuzz --replay FILE ...``. Exit status 1 when a finding was made (or a reproducer still fails)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fuzz.engine import replay, run
from fuzz.targets import ALL, select


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (same seed, same inputs)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget of the whole run")
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs of the whole run (split per target)")
    parser.add_argument("--target", action="append", help="only targets whose name starts with this (repeatable)")
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"), help="where reproducers go")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--replay", type=Path, nargs="+", help="run reproducer files again")
    args = parser.parse_args(argv)
    if args.list:
        for target in ALL:
            print(target.name)
        return 0
    if args.replay:
        return 0 if all([replay(ALL, path, sys.stdout) for path in args.replay]) else 1
    targets = select(args.target)
    print(f"fuzz: seed {args.seed}, {len(targets)} targets, up to {args.inputs} inputs in {args.seconds:.0f} s")
    started = time.monotonic()
    report = run(
        targets, seed=args.seed, inputs=args.inputs, seconds=args.seconds, out=sys.stdout, findings_dir=args.findings
    )
    took = time.monotonic() - started
    print(f"fuzz: {report.inputs} inputs, {len(report.findings)} findings, {took:.1f} s (seed {args.seed})")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
