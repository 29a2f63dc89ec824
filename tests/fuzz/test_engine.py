"""The fuzz engine itself: inputs are a pure function of (seed, target, index), a foreign exception is a finding
with a reproducer that replays, a documented one is not, and the mutations stay within the size bound."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from fuzz.engine import Target, each, input_for, replay, run
from fuzz.mutate import mutate
from fuzz.targets import ALL, select

from gpchannel.errors import DecodeError


def _picky(data: bytes) -> None:
    if data[:1] == b"\x00":
        raise DecodeError("documented")
    if len(data) > 3:
        raise KeyError("foreign")


TARGET = Target("test.picky", lambda: [b"\x01\x02", b"\x00"], _picky)


def test_inputs_are_a_function_of_seed_target_and_index() -> None:
    first = [input_for(TARGET, 7, i) for i in range(200)]
    assert first == [input_for(TARGET, 7, i) for i in range(200)]
    assert first[:2] == [b"\x01\x02", b"\x00"]
    assert first != [input_for(TARGET, 8, i) for i in range(200)]


def test_a_foreign_exception_is_a_finding_with_a_reproducer(tmp_path: Path) -> None:
    out = io.StringIO()
    report = run([TARGET], seed=1, inputs=500, seconds=30, out=out, findings_dir=tmp_path)
    assert report.findings and report.inputs == 500
    finding = report.findings[0]
    assert "KeyError" in finding.error and len(finding.data) > 3
    assert f"seed=1 index={finding.index}" in out.getvalue() and finding.data.hex() in out.getvalue()
    path = tmp_path / f"test.picky-1-{finding.index}.json"
    assert json.loads(path.read_text())["input"] == finding.data.hex()
    assert input_for(TARGET, 1, finding.index) == finding.data
    assert replay([TARGET], path, io.StringIO()) is False


def test_documented_errors_are_not_findings() -> None:
    quiet = Target("test.quiet", lambda: [b"\x00"], each(lambda d: _picky(b"\x00" + d)))
    assert not run([quiet], seed=1, inputs=300, seconds=30, out=io.StringIO()).findings


def test_mutations_respect_the_size_bound() -> None:
    rng = random.Random(3)
    assert all(len(mutate(rng, bytes(100), [bytes(300)], max_size=120)) <= 120 for _ in range(500))


def test_target_names_are_unique_and_selectable() -> None:
    names = [t.name for t in ALL]
    assert len(names) == len(set(names))
    assert {t.name for t in select(["ota."])} == {n for n in names if n.startswith("ota.")}
