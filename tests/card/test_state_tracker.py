"""The state engine (card/state_tracker.py): read-only commands write nothing, a changing command writes only
the units it changed, a failed command is rolled back unit by unit (its moved sequence counter kept, GP 2.2.1
E.1.2), savepoints, and the debug check that catches a change made behind the tracker's back."""

from __future__ import annotations

from typing import Any

import pytest

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import CardState, MemoryStore
from gpchannel.card.state_tracker import StateTracker, StateTrackingError, known_form
from gpchannel.codec.apdu import CommandApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.scp.put_key import PutKeyData, put_key_command
from tests.card.harness import ECHO_AID, ISD_AID, counter_random, open_session, profile_text, secure, send


class RecordingStore(MemoryStore):
    """A MemoryStore that keeps every delta it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.deltas: list[dict[str, Any]] = []

    def commit_delta(self, delta: dict[str, Any], state: CardState) -> None:
        self.deltas.append(delta)
        super().commit_delta(delta, state)


def _card() -> tuple[Card, RecordingStore]:
    store = RecordingStore()
    card = Card.from_store(store, lambda: load_profile(profile_text()), random=counter_random(), check_state=True)
    return card, store


def test_read_only_commands_write_nothing() -> None:
    card, store = _card()
    host = open_session(card, "03", 0x33)
    store.deltas.clear()
    for _ in range(3):
        assert send(card, "00A4040008" + ISD_AID.hex()).sw == 0x9000
    host = open_session(card, "03", 0x33)
    store.deltas.clear()
    commits = store.commits
    for _ in range(5):
        assert secure(card, host, CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256)).sw == 0x9000
    assert store.deltas == [] and store.commits == commits and not card.ctx.tracker.dirty


def test_put_key_writes_only_the_security_domain() -> None:
    card, store = _card()
    host = open_session(card, "03", 0x03)
    store.deltas.clear()
    data = PutKeyData.from_static_keys(StaticKeys.single(bytes(16), 0x31, KeyType.AES), host.encrypt_key)
    assert secure(card, host, put_key_command(data, key_id=1)).sw == 0x9000
    (delta,) = store.deltas
    assert set(delta) == {"apps", "app_order"} and list(delta["apps"]) == [ISD_AID.hex().upper()]
    assert store.load() == card.state


def test_failed_command_is_rolled_back_and_the_counter_stays_moved() -> None:
    card, store = _card()
    before = card.state.isd.sd.keysets[0].sequence_counter  # type: ignore[union-attr]
    open_session(card, "03", 0x01)  # INITIALIZE UPDATE moves the counter
    assert card.state.isd.sd.keysets[0].sequence_counter == before + 1  # type: ignore[union-attr]
    card.state.cin = b"\x99"  # an edit between commands, undone by the failing command's rollback
    card.state.isd.sd.keysets[0].sequence_counter += 5  # type: ignore[union-attr]
    assert send(card, "80CA00FE00").sw != 0x9000
    assert card.state.cin != b"\x99"
    assert card.state.isd.sd.keysets[0].sequence_counter == before + 6  # type: ignore[union-attr]
    assert store.load() == card.state


def test_savepoint_rollback() -> None:
    state = load_profile(profile_text())
    tracker = StateTracker(state, check=True)
    state.cin = b"\x01"
    state.ota["a"] = {"b": 1}
    savepoint = tracker.pending()
    assert savepoint is not None
    state.cin = b"\x02"
    state.applications.pop()
    state.ota["a"]["b"] = 2
    tracker.rollback(savepoint)
    assert state.cin == b"\x01" and state.ota == {"a": {"b": 1}} and state.application(ECHO_AID) is not None
    tracker.rollback()
    assert state.to_dict() == load_profile(profile_text()).to_dict()
    tracker.check()


def test_a_change_that_escapes_tracking_fails_the_check() -> None:
    card, _ = _card()
    object.__setattr__(card.state, "cin", b"\x42")  # a write behind the tracker's back
    with pytest.raises(StateTrackingError, match="cin"):
        send(card, "00A4040008" + ISD_AID.hex())


def test_nested_json_read_out_and_changed_is_tracked() -> None:
    card, store = _card()
    card.state.ota["x"] = {"n": 1}
    card.save()
    inner = card.state.ota["x"]
    inner["n"] = 2  # changed in place through a reference read out of the tracked dict
    assert send(card, "00A4040008" + ISD_AID.hex()).sw == 0x9000
    loaded = store.load()
    assert loaded is not None and loaded.ota["x"] == {"n": 2}


def test_repeated_select_still_ends_a_session_and_follows_the_state() -> None:
    card, _ = _card()
    select = "00A4040008" + ISD_AID.hex()
    first = send(card, select)
    assert send(card, select) == first  # answered again from the same state
    host = open_session(card, "03", 0x01)
    assert send(card, select) == first
    assert card.channels[0].session is None  # the SELECT ended the session, as processing it does
    refused = secure(card, host, CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256))
    assert refused.sw == 0x6982  # secure messaging without a session
    card.state.lifecycle = CardLifeCycle.CARD_LOCKED
    card.save()
    assert send(card, select).sw == 0x6283  # the state moved: computed again


def test_get_status_follows_the_registry() -> None:
    card, _ = _card()
    host = open_session(card, "03", 0x01)
    status = CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", le=256)
    before = secure(card, host, status)
    assert ECHO_AID in before.data
    delete = CommandApdu(0x80, 0xE4, 0x00, 0x00, b"\x4f" + bytes((len(ECHO_AID),)) + ECHO_AID, le=256)
    assert secure(card, host, delete).sw == 0x9000
    after = secure(card, host, status)
    assert ECHO_AID not in after.data


def test_a_known_form_replaces_the_serialisation_and_is_checked() -> None:
    """known_form: the next tracker of that state takes the form (checked against the state in debug mode); a
    form given for another state, or already taken, is not used."""
    state = load_profile(profile_text())
    form = state.to_dict()
    known_form(state, form)
    tracker = StateTracker(state, check=True)
    assert tracker.committed.header is not form and tracker.committed.blobs["ota"] is form["ota"]
    assert StateTracker(state, check=True).committed.blobs["ota"] is not form["ota"]  # taken once
    known_form(load_profile(profile_text()), form)
    assert StateTracker(state, check=True).committed.blobs["ota"] is not form["ota"]  # another state's
    known_form(state, {**form, "cin": "00"})
    with pytest.raises(StateTrackingError, match="JSON form"):
        StateTracker(state, check=True)
