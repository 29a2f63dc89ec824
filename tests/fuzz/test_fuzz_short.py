"""The short seeded fuzz pass CI runs (make fuzz runs the long one): every target of fuzz.targets, a fixed seed,
2000 inputs per parser target and 400 per card target (each input builds a card and a session), at most 1.3 s
each (about 20 s for the whole pass on an idle 2-core machine, 60 s at most). The rule: no exception but the
documented ones, every card answer a status word."""

from __future__ import annotations

import io

import pytest
from fuzz.engine import Target, run
from fuzz.targets import ALL

SEED = 20261207


def _params() -> list[object]:
    out: list[object] = []
    for target in ALL:
        out.append(pytest.param(target, id=target.name))
    return out


@pytest.mark.parametrize("target", _params())
def test_short_pass(target: Target) -> None:
    out = io.StringIO()
    inputs = 2000 if target.allowed else 400
    report = run([target], seed=SEED, inputs=inputs, seconds=1.3, out=out)
    assert not report.findings, out.getvalue()
    assert report.inputs >= 64, out.getvalue()
