"""DirectoryStore: atomic replace, leftovers ignored, and a SIGKILL loop against a committing child process:
every kill leaves a complete state (the old one or the new one), never a mix or an unreadable file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpchannel.card.profile import load_profile
from gpchannel.card.state import CardState
from gpchannel.card.state_tracker import StateTracker
from gpchannel.errors import DecodeError
from gpchannel.io.store import JOURNAL_FILE, STATE_FILE, DirectoryStore
from tests.card.harness import profile_text


def test_commit_and_load(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "card")
    assert store.load() is None and not store.exists()
    state = load_profile(profile_text())
    store.commit(state)
    assert store.exists() and store.load() == state
    state.cin = b"\x01\x02"
    store.commit(state)
    assert DirectoryStore(tmp_path / "card").load() == state
    assert sorted(p.name for p in (tmp_path / "card").iterdir()) == [STATE_FILE]


def test_leftover_temp_file_is_ignored(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    state = load_profile(profile_text())
    store.commit(state)
    (tmp_path / (STATE_FILE + ".tmp")).write_text('{"half": ')
    assert store.load() == state
    store.commit(state)
    assert store.load() == state


def test_corrupt_state_is_reported(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{")
    with pytest.raises(DecodeError):
        DirectoryStore(tmp_path).load()


def _changed(store: DirectoryStore, tracker: StateTracker) -> None:
    delta = tracker.pending()
    assert delta
    store.commit_delta(delta, tracker.state)
    tracker.accept(delta)


def test_deltas_are_journaled_and_replayed(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    state = load_profile(profile_text())
    store.commit(state)
    snapshot = (tmp_path / STATE_FILE).read_bytes()
    tracker = StateTracker(state)
    for n in range(5):
        state.cin = bytes([n])
        state.isd.sd.keysets[0].sequence_counter = n  # type: ignore[union-attr]
        _changed(store, tracker)
    state.applications.pop()
    _changed(store, tracker)
    assert (tmp_path / STATE_FILE).read_bytes() == snapshot  # only the journal grew
    assert len((tmp_path / JOURNAL_FILE).read_bytes().splitlines()) == 6
    assert DirectoryStore(tmp_path).load() == state


def test_torn_journal_tail_is_ignored_then_cut_off(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    state = load_profile(profile_text())
    store.commit(state)
    tracker = StateTracker(state)
    state.cin = b"\x01"
    _changed(store, tracker)
    good = state.to_dict()
    with (tmp_path / JOURNAL_FILE).open("ab") as journal:
        journal.write(b'0badc0de {"g":1,"d":{"card"')  # a line cut by a crash
    reopened = DirectoryStore(tmp_path)
    loaded = reopened.load()
    assert loaded is not None and loaded.to_dict() == good
    tracker = StateTracker(loaded)
    loaded.cin = b"\x02"
    _changed(reopened, tracker)
    again = DirectoryStore(tmp_path).load()
    assert again is not None and again.cin == b"\x02"


def test_a_state_directory_without_journal_loads_and_takes_deltas(tmp_path: Path) -> None:
    state = load_profile(profile_text())
    (tmp_path / STATE_FILE).write_text(state.to_json())  # as written before the journal existed
    store = DirectoryStore(tmp_path)
    loaded = store.load()
    assert loaded == state and loaded is not None
    tracker = StateTracker(loaded)
    loaded.iin = b"\x12\x34"
    _changed(store, tracker)
    assert DirectoryStore(tmp_path).load() == loaded


def test_journal_is_compacted_and_stale_lines_never_apply(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, compact_bytes=2000)
    state = load_profile(profile_text())
    store.commit(state)
    tracker = StateTracker(state)
    stale = b""
    for n in range(40):
        state.cin = n.to_bytes(2, "big") * 8
        _changed(store, tracker)
        stale = stale or (tmp_path / JOURNAL_FILE).read_bytes()
    assert (tmp_path / JOURNAL_FILE).stat().st_size < 2000 + 400  # compacted on the way
    with (tmp_path / JOURNAL_FILE).open("ab") as journal:
        journal.write(stale)  # a line of an earlier snapshot (a crash between snapshot and truncation)
    assert DirectoryStore(tmp_path).load() == state


_CHILD = textwrap.dedent(
    """
    import sys
    from gpchannel.card.profile import load_profile
    from gpchannel.io.store import DirectoryStore
    sys.path.insert(0, ".")
    from tests.card.harness import profile_text
    store = DirectoryStore(sys.argv[1])
    state = load_profile(profile_text())
    n = 0
    print("ready", flush=True)
    while True:
        n += 1
        # a generation number and a payload derived from it: a mix of two commits would not match
        state.cin = n.to_bytes(4, "big") * 50
        state.iin = n.to_bytes(4, "big")
        store.commit(state)
    """
)


def test_sigkill_leaves_old_or_new_state(tmp_path: Path) -> None:
    kills = int(os.environ.get("GPCHANNEL_KILLS", "20"))
    root = Path(__file__).resolve().parents[2]
    last = 0
    for round_ in range(kills):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path)], cwd=root, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        # Let it commit a variable number of times, then kill it mid-flight.
        try:
            child.wait(timeout=0.005 * (1 + round_ % 7))
        except subprocess.TimeoutExpired:
            pass
        child.send_signal(signal.SIGKILL)
        child.wait()
        state = DirectoryStore(tmp_path).load()
        if state is None:
            continue  # killed before the first commit
        assert isinstance(state, CardState)
        generation = int.from_bytes(state.iin, "big")
        assert state.cin == generation.to_bytes(4, "big") * 50
        last = generation
    assert last > 0
