"""The README and docs/*.md as a test (issue 17, deliverable 4): every command block marked runnable runs, in order,
each in a fresh shell, so the docs cannot drift from the tool.

The convention (README, "Contributing"): a fenced block whose opening fence comes right after a line
``<!-- runnable -->`` is run: ``sh``/``bash`` blocks with ``bash -euo pipefail``, ``python`` blocks with the
virtual environment's Python. The blocks of one document run in order in one scratch directory (the repository's
``examples/`` and ``scripts/`` linked into it, ``HOME`` inside it, ``.venv/bin`` first on ``PATH``, no
``GPCHANNEL_*`` variable inherited), each in a new shell (nothing but files carries over from a block to the
next, as for a reader who pastes them into new terminals). What a block starts in the background (``card serve
&``, ``gpchannel server ... &``) runs until the document's last block has run, then its process group is
stopped. A block fails the test when it exits non-zero (``set -e``: any command of it).

The README serves a card through pcscd + vpcd ("Virtual PCD 00 00"), so a document whose blocks name pcscd, a
reader or vpcd is marked ``pcsc``: run it under the PC/SC lock like the other PC/SC tests. Servers run on their
default ports (8080, 8443, 2775), as the docs show them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- runnable -->"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w+)?\s*$")
_LANGUAGES = {"sh": "bash", "bash": "bash", "python": "python"}
BLOCK_TIMEOUT = 180.0
"""Seconds a block may take (the longest, a campaign over SMS, takes a few)."""


class MarkupError(Exception):
    """A runnable marker that does not introduce a fenced block of a language this test runs."""


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str  # "bash" or "python"
    text: str

    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def runnable_blocks(path: Path) -> list[Block]:
    """The blocks of ``path`` marked runnable, in document order; MarkupError for a marker on anything else."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != MARKER:
            index += 1
            continue
        fence_at = index + 1
        match = _FENCE.match(lines[fence_at]) if fence_at < len(lines) else None
        language = _LANGUAGES.get(match.group(1) or "") if match else None
        if language is None:
            raise MarkupError(f"{path.name}:{index + 1}: {MARKER} must be followed by a ```sh or ```python fence")
        end = fence_at + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise MarkupError(f"{path.name}:{fence_at + 1}: the runnable block is never closed")
        blocks.append(Block(path, fence_at + 1, language, "\n".join(lines[fence_at + 1 : end]) + "\n"))
        index = end + 1
    return blocks


def test_the_marker_introduces_a_fenced_block_and_nothing_else(tmp_path: Path) -> None:
    good = tmp_path / "good.md"
    good.write_text(f"text\n{MARKER}\n```sh\necho one\necho two\n```\n```sh\nnot marked\n```\n{MARKER}\n```python\n"
                    "print(1)\n```\n")  # fmt: skip
    blocks = runnable_blocks(good)
    assert [(b.line, b.language, b.text) for b in blocks] == [
        (3, "bash", "echo one\necho two\n"),
        (11, "python", "print(1)\n"),
    ]
    for bad in (f"{MARKER}\ntext\n", f"{MARKER}\n```console\n$ x\n```\n", f"{MARKER}\n```sh\nnever closed\n"):
        (tmp_path / "bad.md").write_text(bad)
        with pytest.raises(MarkupError):
            runnable_blocks(tmp_path / "bad.md")


def test_every_document_parses_and_the_readme_has_runnable_blocks() -> None:
    found = {path.name: len(runnable_blocks(path)) for path in DOCUMENTS}
    assert found["README.md"] >= 6, found


def _environment(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPCHANNEL_", "GP_", "PYTHON"))}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(scratch / "home")
    env.pop("XDG_DATA_HOME", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def _stop(groups: list[int], seconds: float = 20.0) -> None:
    """SIGTERM each process group a block left behind, wait until they are gone, SIGKILL what remains."""
    for group in groups:
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + seconds
    for group in groups:
        while True:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                os.killpg(group, signal.SIGKILL)
                break
            time.sleep(0.05)


def _run(block: Block, scratch: Path, env: dict[str, str], number: int, groups: list[int]) -> None:
    suffix = "py" if block.language == "python" else "sh"
    script = scratch / f".block-{number:02d}.{suffix}"
    script.write_text(block.text, encoding="utf-8")
    log = scratch / f".block-{number:02d}.log"
    python = str(ROOT / ".venv" / "bin" / "python")
    command = [python, str(script)] if block.language == "python" else ["bash", "-euo", "pipefail", str(script)]
    with log.open("wb") as out:  # a file, not a pipe: what the block leaves in the background keeps writing to it
        process = subprocess.Popen(
            command, cwd=scratch, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        groups.append(process.pid)
        try:
            code = process.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
    if code != 0:
        output = log.read_text(encoding="utf-8", errors="replace")[-6000:]
        status = f"exit code {code}" if code is not None else f"still running after {BLOCK_TIMEOUT:g} s"
        pytest.fail(f"{block.where()}: the block failed ({status}):\n{block.text}\n--- its output:\n{output}")


def _needs_pcsc(document: Path) -> bool:
    return any(word in b.text for b in runnable_blocks(document) for word in ("pcscd", "--reader", "--vpcd"))


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(d, id=d.name, marks=[pytest.mark.pcsc] if _needs_pcsc(d) else [])
        for d in DOCUMENTS
        if runnable_blocks(d)
    ],
)
def test_the_runnable_blocks_of_a_document_work_pasted_in_order(document: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "work"
    (scratch / "home").mkdir(parents=True)
    for shared in ("examples", "scripts"):
        (scratch / shared).symlink_to(ROOT / shared)
    env = _environment(scratch)
    groups: list[int] = []
    try:
        for number, block in enumerate(runnable_blocks(document), 1):
            _run(block, scratch, env, number, groups)
    finally:
        _stop(groups)
