"""scripts/demo.sh prints each command it runs so that it can be pasted (issue 17, deliverable 4): its ``quote``
function must write what Python's :func:`shlex.join` writes, and a shell must read the arguments back unchanged."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.sh"


def _quote_function() -> str:
    match = re.search(r"^quote\(\) \{\n.*?^\}\n", DEMO.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    assert match is not None, "scripts/demo.sh has no quote() function"
    return match.group(0)


def _bash_quote(args: list[str]) -> str:
    script = _quote_function() + 'quote "$@"\n'
    done = subprocess.run(["bash", "-c", script, "quote", *args], capture_output=True, check=True)
    return done.stdout.decode("utf-8", errors="surrogateescape").removesuffix("\n")  # bytes: keep a \r as it is


def test_the_demo_prints_the_commands_it_runs_quoted() -> None:
    text = DEMO.read_text(encoding="utf-8")
    assert '"$(quote "${@:2}")"' in text  # step() prints through quote
    assert '\\$ $(quote "$G" --reader "$SCP03_READER"' in text  # and so does the wrong-key step
    args = [".venv/bin/gpchannel", "--reader", "Virtual PCD 00 00", "--security-level", "33", "info"]
    assert _bash_quote(args) == ".venv/bin/gpchannel --reader 'Virtual PCD 00 00' --security-level 33 info"


_TRICKY = ["", "a b", "it's", "$HOME", 'a"b', "*", "~", "x;y", "--key=40 41", "tab\there", "new\nline", "ü"]


def test_tricky_arguments_quote_as_shlex_does_and_read_back_unchanged() -> None:
    quoted = _bash_quote(_TRICKY)
    assert quoted == shlex.join(_TRICKY)
    assert shlex.split(quoted) == _TRICKY
    echoed = subprocess.run(["bash", "-c", f"printf '%s\\0' {quoted}"], capture_output=True, text=True, check=True)
    assert echoed.stdout.split("\0")[:-1] == _TRICKY


@given(st.lists(st.text(alphabet=st.characters(exclude_characters="\0", exclude_categories=["Cs"])), max_size=6))
def test_any_arguments_quote_as_shlex_does(args: list[str]) -> None:
    assert _bash_quote(args) == shlex.join(args)
