"""CardState serialisation: JSON round trip, field-naming errors, the in-memory store."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.card.profile import load_profile
from gpchannel.card.state import Application, CardState, LoadFile, MemoryStore
from gpchannel.errors import DecodeError
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.gp.privileges import Privilege, Privileges
from tests.card.harness import profile_text


def test_round_trip_and_no_key_in_repr() -> None:
    state = load_profile(profile_text())
    state.load_files.append(LoadFile(bytes.fromhex("A000000001"), state.isd_aid, [bytes.fromhex("A00000000101")]))
    again = CardState.from_json(state.to_json())
    assert again == state
    assert "404142" not in repr(state.isd.sd)


def test_memory_store_keeps_json() -> None:
    store = MemoryStore()
    assert store.load() is None
    state = load_profile(profile_text())
    store.commit(state)
    loaded = store.load()
    assert loaded == state and loaded is not state
    assert json.loads(store.text or "")["format"] == 1


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("lifecycle",), "LOCKED", "state.lifecycle"),
        (("format",), 99, "state.format"),
        (("isd_aid",), "A0", "state.isd_aid"),
        (("applications", 0, "privileges"), "4000", "state.applications[0].privileges"),
        (("applications", 0, "sd", "keysets", 0, "enc"), "00", "state.applications[0].sd.keysets[0]"),
        (("applications", 0, "sd", "keysets", 0, "type"), "rsa", "keysets[0].type"),
        (("applications", 1, "lifecycle"), 300, "state.applications[1].lifecycle"),
        (("key_diversification_data",), "zz", "key_diversification_data"),
    ],
)
def test_bad_state_names_the_field(path: tuple[object, ...], value: object, message: str) -> None:
    raw = load_profile(profile_text()).to_dict()
    target = raw
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    with pytest.raises(DecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        CardState.from_dict(raw)


def test_state_without_isd_is_refused() -> None:
    raw = load_profile(profile_text()).to_dict()
    raw["applications"] = raw["applications"][1:]
    with pytest.raises(DecodeError, match="ISD"):
        CardState.from_dict(raw)


@given(st.binary(max_size=200))
def test_from_json_returns_state_or_decode_error(raw: bytes) -> None:
    try:
        CardState.from_json(raw)
    except DecodeError:
        pass


_aids = st.binary(min_size=5, max_size=16)
_privileges = st.frozensets(st.sampled_from(list(Privilege))).map(
    lambda m: Privileges.from_bytes(Privileges(m).to_bytes())
)
_applications = st.builds(
    Application,
    _aids,
    st.integers(0, 255),
    _privileges,
    _aids,
    load_file_aid=st.just(b"") | _aids,
    applet=st.sampled_from(["", "echo"]),
    install_parameters=st.binary(max_size=8),
    implicit_selection=st.lists(st.integers(0, 255), max_size=2),
    data=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
)
_load_files = st.builds(LoadFile, _aids, _aids, st.lists(_aids, max_size=2), st.binary(max_size=2), st.integers(0, 255))


@given(st.lists(_applications, max_size=4), st.lists(_load_files, max_size=3), st.sampled_from(list(CardLifeCycle)))
def test_state_round_trip(apps: list[Application], files: list[LoadFile], lifecycle: CardLifeCycle) -> None:
    state = load_profile(profile_text())
    state.applications += apps
    state.load_files = files
    state.lifecycle = lifecycle
    assert CardState.from_json(state.to_json()) == state


def test_ota_keys_stay_out_of_repr() -> None:
    from pathlib import Path

    example = Path("/work/shared/docs/example.toml")
    state = load_profile(example.read_text() if example.exists() else profile_text())
    state.ota.setdefault("scp81", {"psk": "0102030405060708090A0B0C0D0E0F10"})
    assert "0102030405060708090A0B0C0D0E0F10" not in repr(state)
    assert "404142434445464748494A4B4C4D4E4F" not in repr(state).upper()
