"""Every finding of the fuzzer, kept as its reproducer (tests/fuzz/findings/<target>-<seed>-<index>.json, with the
error it raised then) and replayed through its target: each must now pass the rule.

Found on the code before issue 15's fixes (the first six) and by the long run (ram.client): a CAP file whose
LZMA stream, "version needed" (13.9) or deflate stream is corrupt (LZMAError, NotImplementedError, zlib.error);
an expanded script with an extended-length APDU sent in the compact format (ValueError); a profile with a list
or a table where a string belongs (TypeError: unhashable); an X-Admin-Next-URI with a control or non-ASCII
character that the card accepted and then refused to POST to (ValueError). The structured targets'
reproducers (``.values``) are read through the target's current document and value pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fuzz.engine import run_one
from fuzz.targets import ALL

FINDINGS = sorted((Path(__file__).parent / "findings").glob("*.json"))
_BY_NAME = {t.name: t for t in ALL}


def _params() -> list[object]:
    out: list[object] = []
    for path in FINDINGS:
        out.append(pytest.param(path, id=path.stem))
    return out


def test_there_are_findings_to_replay() -> None:
    assert len(FINDINGS) >= 7


@pytest.mark.parametrize("path", _params())
def test_finding_passes_now(path: Path) -> None:
    body = json.loads(path.read_text())
    target = _BY_NAME[body["target"]]
    problem = run_one(target, bytes.fromhex(body["input"]))
    assert problem is None, f"{path.name}: was {body['error']}, now {problem}"
