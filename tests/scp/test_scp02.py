"""SCP02 against external vectors (GPShell traces, pySim from a real sysmocom card, GlobalPlatformPro) and the
self-made traces for implicit initiation and R-MAC (generator cross-checked against the GPShell and pySim
vectors here).

Every trace is replayed through both our host (with the trace's host challenge) and our card (with the trace's
card challenge injected through ``random``, or pseudo-random from the AID, and the trace's sequence counter).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys, kcv
from gpchannel.errors import AuthenticationError, ChannelClosedError, RemoteProtocolError
from gpchannel.scp.common import ChannelState, SecurityLevel
from gpchannel.scp.scp02 import (
    derive_session_keys,
    encrypt_sensitive_data,
    host_cryptogram,
    is_explicit,
)
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp02_host import Scp02Host
from tests.vectors import VECTORS, VectorCase, cases, params

GPSHELL = "scp02/gpshell.json"
PYSIM = "scp02/pysim.json"
GPPRO = "scp02/globalplatformpro.json"
SELFMADE = "scp02/selfmade.json"
ISD_AID = bytes.fromhex("A000000151000000")


def _h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class _Fixed:
    """A random source that returns one given challenge, once."""

    def __init__(self, value: bytes) -> None:
        self.value: bytes | None = value

    def __call__(self, n: int) -> bytes:
        assert self.value is not None and len(self.value) == n
        value, self.value = self.value, None
        return value


def _no_random(n: int) -> bytes:
    raise AssertionError("this card must not draw random bytes")


def _keys(enc: str, mac: str, dek: str, kvn: int = 0) -> StaticKeys:
    return StaticKeys(_h(enc), _h(mac), _h(dek), kvn, KeyType.DES3)


def _card_for(resp: bytes, keys: StaticKeys, i: int, aid: bytes = ISD_AID, channel: int = 0) -> Scp02Card:
    """A card set up to reproduce the INITIALIZE UPDATE response data ``resp`` (challenge injected)."""
    return Scp02Card(
        replace(keys, kvn=resp[10]),
        i_param=i,
        key_diversification_data=resp[:10],
        sequence_counter=int.from_bytes(resp[12:14], "big"),
        random=_Fixed(resp[14:20]),
        aid=aid,
        channel=channel,
    )


# -- primitives: GlobalPlatformPro -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(GPPRO, "session-keys-scp02"))
def test_session_keys_gppro(case: VectorCase) -> None:
    keys = StaticKeys.single(case.hex_in("static_key"), key_type=KeyType.DES3)
    session = derive_session_keys(keys, 0x55, int(case.inputs["sequence_counter"], 16))
    assert kcv(session.enc, KeyType.DES3) == case.hex_out("kcv_s_enc")
    assert kcv(session.c_mac, KeyType.DES3) == case.hex_out("kcv_s_mac")
    assert kcv(session.dek, KeyType.DES3) == case.hex_out("kcv_s_dek")
    assert kcv(session.r_mac, KeyType.DES3) == case.hex_out("kcv_s_rmac")
    assert session.enc.hex() not in repr(session)


@pytest.mark.parametrize("case", params(GPPRO, "key-encryption-scp02"))
def test_key_encryption_gppro(case: VectorCase) -> None:
    keys = StaticKeys.single(case.hex_in("dek"), key_type=KeyType.DES3)
    session = derive_session_keys(keys, 0x15, int(case.inputs["sequence_counter"], 16))
    cryptogram = encrypt_sensitive_data(session.dek, case.hex_in("key_to_encrypt"), explicit=True)
    assert cryptogram == case.hex_out("cryptogram")


def test_key_encryption_gppro_through_host_and_card() -> None:
    """The GPPro cryptogram through a whole session whose sequence counter is 0000."""
    (case,) = cases(GPPRO, "key-encryption-scp02")
    keys = StaticKeys.single(case.hex_in("dek"), key_type=KeyType.DES3)
    card = Scp02Card(
        keys, i_param=0x15, key_diversification_data=bytes(10), sequence_counter=0, random=lambda n: bytes(n), aid=b""
    )
    host = Scp02Host(keys, level=SecurityLevel.C_MAC, host_challenge=bytes(8), i_param=0x15)
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    host.receive_external_authenticate(card.external_authenticate(host.external_authenticate()))
    cryptogram = host.encrypt_key(case.hex_in("key_to_encrypt"))
    assert cryptogram == case.hex_out("cryptogram")
    assert card.decrypt_key(cryptogram) == case.hex_in("key_to_encrypt")
    assert card.sequence_counter == 1 and host.sequence_counter == 1


# -- GPShell: full i=15 traces ------------------------------------------------------------------------------------


def _gpshell_keys(case: VectorCase) -> StaticKeys:
    return _keys(case.inputs["enc"], case.inputs["mac"], case.inputs["dek"])


@pytest.mark.parametrize("case", params(GPSHELL, "scp02-trace"))
def test_gpshell_trace_host(case: VectorCase) -> None:
    level = SecurityLevel(int(case.inputs["security_level"], 16))
    host = Scp02Host(
        _gpshell_keys(case),
        level=level,
        host_challenge=case.hex_in("host_challenge"),
        i_param=int(case.inputs["i"], 16),
    )
    command = host.initialize_update()
    if "initialize_update_cmd" in case.inputs:
        assert command.to_bytes() == case.hex_in("initialize_update_cmd")
    raw = case.hex_in("initialize_update_resp")
    parsed = host.receive_initialize_update(ResponseApdu.from_bytes(raw))
    assert parsed.sequence_counter == raw[12:14]
    assert host.external_authenticate().to_bytes() == case.hex_out("external_authenticate")
    host.receive_external_authenticate(ResponseApdu())
    assert host.is_open and host.sequence_counter == int.from_bytes(raw[12:14], "big") + 1
    for plain, wrapped, response in zip(
        case.inputs["plain_cmds"], case.expected["wrapped_cmds"], case.expected["responses"], strict=True
    ):
        assert host.wrap(CommandApdu.from_bytes(_h(plain))).to_bytes() == _h(wrapped)
        assert host.unwrap(ResponseApdu.from_bytes(_h(response))) == ResponseApdu.from_bytes(_h(response))


@pytest.mark.parametrize("case", params(GPSHELL, "scp02-trace"))
def test_gpshell_trace_card(case: VectorCase) -> None:
    raw = case.hex_in("initialize_update_resp")
    card = _card_for(raw[:-2], _gpshell_keys(case), int(case.inputs["i"], 16))
    command = CommandApdu(0x80, 0x50, 0, 0, case.hex_in("host_challenge"), le=256)
    assert card.initialize_update(command).to_bytes() == raw
    assert card.external_authenticate(CommandApdu.from_bytes(case.hex_out("external_authenticate"))) == ResponseApdu()
    assert card.level == SecurityLevel(int(case.inputs["security_level"], 16))
    assert card.sequence_counter == int.from_bytes(raw[12:14], "big") + 1
    for plain, wrapped, response in zip(
        case.inputs["plain_cmds"], case.expected["wrapped_cmds"], case.expected["responses"], strict=True
    ):
        assert card.unwrap(CommandApdu.from_bytes(_h(wrapped))) == CommandApdu.from_bytes(_h(plain))
        assert card.wrap(ResponseApdu.from_bytes(_h(response))).to_bytes() == _h(response)


# -- pySim: a real sysmocom card ----------------------------------------------------------------------------------


def _pysim_keys(case: VectorCase) -> StaticKeys:
    return _keys(case.inputs["key_enc"], case.inputs["key_mac"], case.inputs["key_dek"], case.inputs["kvn"])


def _pysim_host(case: VectorCase, kvn: int = 0) -> Scp02Host:
    level = SecurityLevel(int(case.inputs.get("security_level", "01"), 16))
    return Scp02Host(_pysim_keys(case), level=level, host_challenge=case.hex_in("host_challenge"), kvn=kvn)


@pytest.mark.parametrize("case", params(PYSIM, "scp02-mutual-auth"))
def test_pysim_mutual_auth_host(case: VectorCase) -> None:
    # pySim asks for KVN 20 and the card answers with key version 70 (pySim does not compare): the command bytes
    # come from a host asking for KVN 20, the rest from a host that lets the card choose (KVN 00).
    assert _pysim_host(case, kvn=case.inputs["kvn"]).initialize_update().to_bytes() == case.hex_out("init_update_cmd")
    host = _pysim_host(case)
    parsed = host.receive_initialize_update(ResponseApdu(case.hex_in("init_update_resp")))
    assert parsed.card_challenge == case.hex_in("init_update_resp")[14:20]
    session = host.session_keys
    assert session is not None
    cryptogram = host_cryptogram(session.enc, case.hex_in("host_challenge"), 1, parsed.card_challenge)
    assert cryptogram == case.hex_out("ext_auth_cmd")[5:13]
    assert host.external_authenticate().to_bytes() == case.hex_out("ext_auth_cmd")
    host.receive_external_authenticate(ResponseApdu())
    assert host.is_open


def test_pysim_derived_session_keys() -> None:
    """Session keys pySim derived for its real-card handshake (its note: cross-checked independently)."""
    raw = (VECTORS / PYSIM).read_text()
    (case,) = [c for c in json.loads(raw) if c["kind"] == "scp02-mutual-auth"]
    keys = _keys(case["inputs"]["key_enc"], case["inputs"]["key_mac"], case["inputs"]["key_dek"])
    derived = case["derived"]
    session = derive_session_keys(keys, 0x55, int(derived["seq_counter"], 16))
    assert session.c_mac == _h(derived["session_c_mac"])
    assert session.r_mac == _h(derived["session_r_mac"])
    assert session.enc == _h(derived["session_enc"])
    assert session.dek == _h(derived["session_dek"])


@pytest.mark.parametrize("case", params(PYSIM, "scp02-mutual-auth"))
def test_pysim_kvn_mismatch_is_refused(case: VectorCase) -> None:
    host = _pysim_host(case, kvn=case.inputs["kvn"])
    host.initialize_update()
    with pytest.raises(RemoteProtocolError, match="KVN 70, expected 20"):
        host.receive_initialize_update(ResponseApdu(case.hex_in("init_update_resp")))
    with pytest.raises(ChannelClosedError):
        host.external_authenticate()


@pytest.mark.parametrize("case", params(PYSIM, "scp02-mutual-auth"))
def test_pysim_mutual_auth_card(case: VectorCase) -> None:
    resp = case.hex_in("init_update_resp")
    card = _card_for(resp, _pysim_keys(case), 0x15)
    assert card.initialize_update(CommandApdu.from_bytes(case.hex_out("init_update_cmd")).with_changes(p1=0x70)) == (
        ResponseApdu(resp)
    )
    assert card.external_authenticate(CommandApdu.from_bytes(case.hex_out("ext_auth_cmd"))) == ResponseApdu()
    assert card.is_open and card.level == SecurityLevel.C_MAC and card.sequence_counter == 2


@pytest.mark.parametrize("case", params(PYSIM, "scp02-mutual-auth-fail"))
def test_pysim_wrong_card_cryptogram(case: VectorCase) -> None:
    host = _pysim_host(case)
    assert host.initialize_update().to_bytes()[5:13] == case.hex_in("host_challenge")
    with pytest.raises(AuthenticationError) as info:
        host.receive_initialize_update(ResponseApdu(case.hex_in("init_update_resp")))
    message = str(info.value)
    assert "did not verify" in message and "00000000000000000000" in message
    for key in (case.inputs["key_enc"], case.inputs["key_mac"], case.inputs["key_dek"]):
        assert key.upper() not in message.upper()
    assert kcv(_h(case.inputs["key_enc"]), KeyType.DES3).hex().upper() in message
    assert host.state is ChannelState.TERMINATED
    with pytest.raises(ChannelClosedError):
        host.external_authenticate()


@pytest.mark.parametrize("case", params(PYSIM, "scp02-wrap"))
def test_pysim_wrap_host_and_card(case: VectorCase) -> None:
    resp = case.hex_in("init_update_resp")
    host = _pysim_host(case)
    card = _card_for(resp, _pysim_keys(case), 0x15)
    card.initialize_update(host.initialize_update())
    host.receive_initialize_update(ResponseApdu(resp))
    host.receive_external_authenticate(card.external_authenticate(host.external_authenticate()))
    for step, expected in zip(case.inputs["steps"], case.expected["outputs"], strict=True):
        plain = CommandApdu.from_bytes(_h(step["apdu"]))
        wrapped = host.wrap(plain)
        assert wrapped.to_bytes() == _h(expected)
        assert card.unwrap(wrapped) == plain
        assert host.unwrap(card.wrap(ResponseApdu())) == ResponseApdu()


# -- self-made traces: implicit initiation, R-MAC, BEGIN / END R-MAC SESSION -------------------------------------


def _generator() -> ModuleType:
    path = Path(VECTORS / "scp02" / "make_selfmade.py")
    spec = importlib.util.spec_from_file_location("scp02_make_selfmade", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", params(GPSHELL, "scp02-trace"))
def test_generator_reproduces_gpshell(case: VectorCase) -> None:
    """The independent generator of selfmade.json reproduces the external GPShell traces byte for byte."""
    raw = case.hex_in("initialize_update_resp")
    trace: dict[str, Any] = {
        "i": case.inputs["i"],
        "enc": case.inputs["enc"],
        "mac": case.inputs["mac"],
        "dek": case.inputs["dek"],
        "aid": ISD_AID.hex(),
        "kvn": raw[10],
        "kdd": raw[:10].hex(),
        "level": case.inputs["security_level"],
        "host_challenge": case.inputs["host_challenge"],
        "card_challenge": raw[14:20].hex(),
        "sequence_counter": raw[12:14].hex(),
        "key_to_encrypt": "00" * 16,
        "steps": [
            {"op": "wrap", "apdu": a, "response": r}
            for a, r in zip(case.inputs["plain_cmds"], case.expected["responses"], strict=True)
        ],
    }
    out = _generator().run(trace)
    assert _h(out["initialize_update_resp"]) == raw
    assert out["external_authenticate"] == case.expected["external_authenticate"]
    assert [s["wire_cmd"] for s in out["steps"]] == case.expected["wrapped_cmds"]


@pytest.mark.parametrize("case", params(PYSIM, "scp02-wrap"))
def test_generator_reproduces_pysim(case: VectorCase) -> None:
    raw = case.hex_in("init_update_resp")
    trace: dict[str, Any] = {
        "i": "15",
        "enc": case.inputs["key_enc"],
        "mac": case.inputs["key_mac"],
        "dek": case.inputs["key_dek"],
        "aid": ISD_AID.hex(),
        "kvn": raw[10],
        "kdd": raw[:10].hex(),
        "level": "01",
        "host_challenge": case.inputs["host_challenge"],
        "card_challenge": raw[14:20].hex(),
        "sequence_counter": raw[12:14].hex(),
        "key_to_encrypt": "00" * 16,
        "steps": [{"op": "wrap", "apdu": s["apdu"], "response": "9000"} for s in case.inputs["steps"]],
    }
    out = _generator().run(trace)
    assert [_h(s["wire_cmd"]) for s in out["steps"]] == [_h(o) for o in case.expected["outputs"]]


def test_selfmade_file_is_what_the_generator_makes() -> None:
    generator = _generator()
    for case in cases(SELFMADE):
        inputs = dict(case.inputs)
        assert generator.run(inputs) == case.expected


def _selfmade_pair(case: VectorCase) -> tuple[Scp02Host, Scp02Card]:
    inp = case.inputs
    i = int(inp["i"], 16)
    keys = _keys(inp["enc"], inp["mac"], inp["dek"], inp.get("kvn", 0))
    aid = case.hex_in("aid")
    channel = inp.get("channel", 0)
    seq = int(inp["sequence_counter"], 16)
    level = SecurityLevel(int(inp.get("level", "01"), 16))
    host = Scp02Host(
        keys, level=level, host_challenge=_h(inp.get("host_challenge", "00" * 8)), i_param=i, aid=aid, channel=channel
    )
    card = Scp02Card(
        keys,
        i_param=i,
        key_diversification_data=_h(inp.get("kdd", "00" * 10)),
        sequence_counter=seq,
        random=_Fixed(case.hex_in("card_challenge")) if "card_challenge" in inp else _no_random,
        aid=aid,
        channel=channel,
    )
    return host, card


@pytest.mark.parametrize("case", params(SELFMADE))
def test_selfmade_trace_host_and_card(case: VectorCase) -> None:
    host, card = _selfmade_pair(case)
    i = int(case.inputs["i"], 16)
    seq = int(case.inputs["sequence_counter"], 16)
    if is_explicit(i):
        resp = card.initialize_update(host.initialize_update())
        assert resp.to_bytes() == case.hex_out("initialize_update_resp")
        host.receive_initialize_update(resp)
        ea = host.external_authenticate()
        assert ea.to_bytes() == case.hex_out("external_authenticate")
        host.receive_external_authenticate(card.external_authenticate(ea))
    else:
        host.begin_implicit(seq)
        assert card.state is ChannelState.IDLE
    for step, expected in zip(case.inputs["steps"], case.expected["steps"], strict=True):
        if step["op"] == "wrap":
            plain = CommandApdu.from_bytes(_h(step["apdu"]))
            wire = host.wrap(plain)
            assert wire.to_bytes() == _h(expected["wire_cmd"])
            assert card.unwrap(wire) == plain
            response = ResponseApdu.from_bytes(_h(step["response"]))
            wire_resp = card.wrap(response)
            expected_plain = response if response.is_success or response.sw1 == 0x61 else ResponseApdu(b"", response.sw)
        elif step["op"] == "begin_rmac":
            wire = host.begin_rmac_session(_h(step["data"]), every_response=step["every_response"])
            assert wire.to_bytes() == _h(expected["wire_cmd"])
            wire_resp = card.wrap(card.begin_rmac_session(card.unwrap(wire)))
            expected_plain = ResponseApdu()
        else:
            wire = host.end_rmac_session(end=step["end"])
            assert wire.to_bytes() == _h(expected["wire_cmd"])
            wire_resp = card.wrap(card.end_rmac_session(card.unwrap(wire)))
            expected_plain = ResponseApdu.from_bytes(_h(expected["wire_resp"]))
        assert wire_resp.to_bytes() == _h(expected["wire_resp"])
        assert host.unwrap(wire_resp) == expected_plain
    final = int(case.expected["final_sequence_counter"], 16)
    assert card.sequence_counter == final and host.sequence_counter == final
    key = case.hex_in("key_to_encrypt")
    cryptogram = host.encrypt_key(key)
    assert cryptogram == case.hex_out("key_cryptogram")
    assert card.decrypt_key(cryptogram) == key
    keys = host.session_keys
    assert keys is not None and keys.sequence_counter == int(case.expected["session_key_sequence_counter"], 16)
