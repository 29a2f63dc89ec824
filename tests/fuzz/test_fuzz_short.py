"""The short seeded fuzz pass CI runs (make fuzz runs the long one): every target of fuzz.targets, a fixed seed,
2000 inputs per parser target and 400 per card target (each input builds a card and a session), at most 1.3 s
each (about 20 s for the whole pass on an idle 2-core machine, 60 s at most). The rule: no exception but the
documented ones, every card answer a status word."""

from __future__ import annotations

import io

import pytest
from fuzz.engine import Target, run
from fuzz.targets import ALL

from gpchannel.ram import admin

SEED = 20261207
_NEXT_URI_RULE = hasattr(admin, "next_uri_ok")
"""Issue 15, item 4: an X-Admin-Next-URI the card accepts but then refuses to POST to (ValueError out of
post_response, found by ram.client). The fix gives ram.admin one rule, next_uri_ok; until it is in, the
ram.client pass is expected to find it."""


def _params() -> list[object]:
    out: list[object] = []
    for target in ALL:
        marks = []
        if target.name == "ram.client" and not _NEXT_URI_RULE:
            marks.append(pytest.mark.xfail(reason="X-Admin-Next-URI accepted then refused (issue 15 item 4)"))
        out.append(pytest.param(target, id=target.name, marks=marks))
    return out


@pytest.mark.parametrize("target", _params())
def test_short_pass(target: Target) -> None:
    out = io.StringIO()
    inputs = 2000 if target.allowed else 400
    report = run([target], seed=SEED, inputs=inputs, seconds=1.3, out=out)
    assert not report.findings, out.getvalue()
    assert report.inputs >= 64, out.getvalue()
