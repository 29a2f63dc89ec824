"""FleetJournal: lines of several keys replayed in order after reopening, a torn tail cut off, a whole state
replacing earlier lines, group commit (threads committing at once share flushes, each returning only once its
line is on disk), a failed flush raising for its lines and leaving the file as it was, and a checkpoint that
keeps the journal whole when its writer fails."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from gpchannel.io.fleet_journal import FLEET_JOURNAL_FILE, FleetJournal, read_fleet_journal


def _open(path: Path, **kwargs: Any) -> FleetJournal:
    journal = FleetJournal(path, **kwargs)
    journal.open()
    return journal


def test_lines_replay_in_order_after_reopening(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    journal.append_delta("a", {"card": {"n": 1}})
    journal.append_delta("b", {"card": {"n": 7}})
    journal.append_delta("a", {"card": {"n": 2}})
    journal.close()
    again = _open(tmp_path)
    assert again.records_of("a") == [{"d": {"card": {"n": 1}}}, {"d": {"card": {"n": 2}}}]
    assert again.records_of("b") == [{"d": {"card": {"n": 7}}}]
    assert read_fleet_journal(tmp_path) == again.records


def test_whole_state_replaces_earlier_lines(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    journal.append_delta("a", {"card": {"n": 1}})
    journal.append_state("a", {"whole": True})
    journal.append_delta("a", {"card": {"n": 3}})
    assert journal.records_of("a") == [{"s": {"whole": True}}, {"d": {"card": {"n": 3}}}]
    journal.close()
    assert read_fleet_journal(tmp_path)["a"] == [{"s": {"whole": True}}, {"d": {"card": {"n": 3}}}]


@pytest.mark.parametrize("tail", [b"0123", b'deadbeef {"c":"a","d":{}}\n', b"\x00" * 40])
def test_torn_or_corrupt_tail_is_ignored_then_cut_off(tmp_path: Path, tail: bytes) -> None:
    journal = _open(tmp_path)
    journal.append_delta("a", {"card": {"n": 1}})
    journal.close()
    path = tmp_path / FLEET_JOURNAL_FILE
    good = path.read_bytes()
    with path.open("ab") as f:
        f.write(tail)
    assert read_fleet_journal(tmp_path) == {"a": [{"d": {"card": {"n": 1}}}]}
    again = _open(tmp_path)
    assert path.read_bytes() == good
    again.append_delta("a", {"card": {"n": 2}})
    again.close()
    assert len(read_fleet_journal(tmp_path)["a"]) == 2


def test_group_commit_shares_flushes(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    start = threading.Barrier(16)

    def commit(n: int) -> None:
        start.wait()
        for i in range(20):
            journal.append_delta(f"k{n}", {"card": {"i": i}})

    threads = [threading.Thread(target=commit, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert journal.lines == 320
    assert journal.flushes < journal.lines  # several lines per fdatasync
    journal.close()
    records = read_fleet_journal(tmp_path)
    assert all([r["d"]["card"]["i"] for r in records[f"k{n}"]] == list(range(20)) for n in range(16))


def test_failed_flush_raises_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    journal.append_delta("a", {"card": {"n": 1}})
    good = (tmp_path / FLEET_JOURNAL_FILE).read_bytes()
    assert journal._fd is not None
    os.close(journal._fd)
    journal._fd = os.open(tmp_path / FLEET_JOURNAL_FILE, os.O_RDONLY)  # every write now fails (EBADF)
    with pytest.raises(OSError, match="could not be written"):
        journal.append_delta("a", {"card": {"n": 2}})
    assert journal.records_of("a") == [{"d": {"card": {"n": 1}}}]
    journal.close()
    assert (tmp_path / FLEET_JOURNAL_FILE).read_bytes() == good


def test_checkpoint_empties_the_journal_or_keeps_it_whole(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    for key in ("a", "b", "c"):
        journal.append_delta(key, {"card": {"key": key}})

    def broken(key: str, records: list[dict[str, Any]]) -> None:
        if key == "b":
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        journal.checkpoint(broken)
    assert set(read_fleet_journal(tmp_path)) == {"a", "b", "c"}
    written: dict[str, list[dict[str, Any]]] = {}
    assert journal.checkpoint(lambda key, records: written.__setitem__(key, records)) == 3
    assert set(written) == {"a", "b", "c"} and journal.records == {} and journal.size == 0
    assert read_fleet_journal(tmp_path) == {}
    journal.append_delta("a", {"card": {"n": 9}})  # appends go on after a checkpoint
    assert journal.records_of("a") == [{"d": {"card": {"n": 9}}}]
    journal.close()


def test_one_writer_per_fleet(tmp_path: Path) -> None:
    """A second writer (another process, or another open in this one) is refused while the first holds the
    journal; once it is closed (or its process ended, however), the journal opens again."""
    import subprocess
    import sys

    from gpchannel.errors import InUseError

    first = FleetJournal(tmp_path)
    first.open()
    with pytest.raises(InUseError, match="held by another process"):
        FleetJournal(tmp_path).open()
    first.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gpchannel.io.fleet_journal import FleetJournal as J; "
         f"J({str(tmp_path)!r}).open(); print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(InUseError):
            FleetJournal(tmp_path).open()
    finally:
        holder.kill()
        holder.wait()
    again = FleetJournal(tmp_path)
    again.open()
    again.close()
