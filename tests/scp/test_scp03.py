"""SCP03 against external vectors: GPShell traces, pySim (real sysmocom cards / eUICCs), GlobalPlatformPro.

Every trace is replayed through both our host (with the trace's host challenge) and our card (with the trace's
card challenge: from the sequence counter and AID when it is pseudo-random, else injected through ``random``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.ciphers import aes_cbc_decrypt, aes_cmac
from gpchannel.crypto.keys import KeyType, StaticKeys, kcv
from gpchannel.scp.common import ChannelState, SecurityLevel
from gpchannel.scp.scp03 import (
    I_PSEUDO_RANDOM,
    card_challenge,
    card_cryptogram,
    derive_session_keys,
    encrypt_sensitive_data,
    host_cryptogram,
)
from gpchannel.scp.scp03_card import Scp03Card
from gpchannel.scp.scp03_host import Scp03Host
from tests.vectors import VectorCase, params

GPSHELL = "scp03/gpshell.json"
PYSIM = "scp03/pysim.json"
GPPRO = "scp03/globalplatformpro.json"

GPSHELL_ISD_AID = bytes.fromhex("A000000151000000")
"""The ISD AID the GPShell traces' pseudo-random challenges are computed over (stated in their notes)."""
PYSIM_ISD_R_AID = bytes.fromhex("A0000005591010FFFFFFFF8900000100")
"""The eUICC ISD-R AID (SGP.22): every pySim challenge reproduces over it (see tests/vectors/scp03/SOURCES.md)."""


def _h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def _keys(inputs: dict[str, Any], kvn: int = 0) -> StaticKeys:
    return StaticKeys(_h(inputs["key_enc"]), _h(inputs["key_mac"]), _h(inputs["key_dek"]), kvn)


def _no_random(n: int) -> bytes:
    raise AssertionError("a pseudo-random card must not draw random bytes")


class _Fixed:
    """A random source that returns one given challenge, once."""

    def __init__(self, value: bytes) -> None:
        self.value: bytes | None = value

    def __call__(self, n: int) -> bytes:
        assert self.value is not None and len(self.value) == n
        value, self.value = self.value, None
        return value


def _card_for(resp: bytes, keys: StaticKeys, aid: bytes, *, pseudo_random: bool = True) -> Scp03Card:
    """A card set up to reproduce the INITIALIZE UPDATE response ``resp`` (data only)."""
    keys = replace(keys, kvn=resp[10])
    i = resp[12]
    if pseudo_random:
        assert i & I_PSEUDO_RANDOM
        seq = int.from_bytes(resp[-3:], "big")
        return Scp03Card(
            keys, i_param=i, key_diversification_data=resp[:10], sequence_counter=seq - 1, random=_no_random, aid=aid
        )
    n = 16 if i & 1 else 8
    return Scp03Card(
        keys,
        i_param=i & ~I_PSEUDO_RANDOM,
        key_diversification_data=resp[:10],
        sequence_counter=0,
        random=_Fixed(resp[13 : 13 + n]),
        aid=aid,
    )


# -- primitives -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(GPSHELL, "aes-cmac"))
def test_aes_cmac(case: VectorCase) -> None:
    assert aes_cmac(case.hex_in("key"), case.hex_in("msg")) == case.hex_out("cmac")


@pytest.mark.parametrize("case", params(GPPRO, "kdf-raw"))
def test_kdf_counter_mode_layout(case: VectorCase) -> None:
    """BouncyCastle's counter-mode layout CMAC(key, a || i || b): the PRF step our KDF is built from."""
    key = case.hex_in("key")
    out = b""
    i = 1
    while len(out) < case.inputs["bytes"]:
        out += aes_cmac(key, case.hex_in("prefix_a") + bytes((i,)) + case.hex_in("suffix_b"))
        i += 1
    assert kcv(out[: case.inputs["bytes"]], KeyType.AES) == case.hex_out("kcv_aes_of_output")


@pytest.mark.parametrize("case", params(GPPRO, "session-keys-scp03"))
def test_session_keys_gppro(case: VectorCase) -> None:
    keys = StaticKeys.single(case.hex_in("static_key"))
    session = derive_session_keys(keys, case.hex_in("context"))
    assert kcv(session.s_enc, KeyType.AES) == case.hex_out("kcv_s_enc")
    assert kcv(session.s_mac, KeyType.AES) == case.hex_out("kcv_s_mac")
    assert kcv(session.s_rmac, KeyType.AES) == case.hex_out("kcv_s_rmac")
    assert kcv(keys.dek, KeyType.AES) == case.hex_out("kcv_dek_static")


@pytest.mark.parametrize("case", params(PYSIM, "scp03-session-keys"))
def test_session_keys_and_cryptograms_pysim(case: VectorCase) -> None:
    keys = StaticKeys(case.hex_in("key_enc"), case.hex_in("key_mac"), case.hex_in("key_mac"))
    host, card = case.hex_in("host_challenge"), case.hex_in("card_challenge")
    session = derive_session_keys(keys, host + card)
    assert session.s_enc == case.hex_out("s_enc")
    assert session.s_mac == case.hex_out("s_mac")
    assert session.s_rmac == case.hex_out("s_rmac")
    assert card_cryptogram(session.s_mac, host, card) == case.hex_out("card_cryptogram")
    assert host_cryptogram(session.s_mac, host, card) == case.hex_out("host_cryptogram")
    assert session.s_enc.hex() not in repr(session) and session.s_mac.hex() not in repr(session)


@pytest.mark.parametrize("case", params(PYSIM, "scp03-handshake"))
def test_pseudo_random_challenge_pysim(case: VectorCase) -> None:
    resp = case.hex_in("init_update_resp")
    seq = int.from_bytes(resp[-3:], "big")
    assert card_challenge(case.hex_in("key_enc"), seq, PYSIM_ISD_R_AID) == resp[13:21]


@pytest.mark.parametrize("case", params(GPPRO, "key-encryption-scp03"))
def test_key_encryption_gppro(case: VectorCase) -> None:
    dek, key = case.hex_in("dek"), case.hex_in("key_to_encrypt")
    cryptogram = encrypt_sensitive_data(dek, key)
    assert len(cryptogram) == case.expected["cryptogram_length"]
    assert aes_cbc_decrypt(dek, cryptogram, bytes(16)) == key


def test_key_encryption_24_byte_key_is_padded_with_80_00() -> None:
    dek = bytes(range(16))
    key = bytes(range(100, 124))
    cryptogram = encrypt_sensitive_data(dek, key)
    assert len(cryptogram) == 32
    assert aes_cbc_decrypt(dek, cryptogram, bytes(16)) == key + b"\x80" + bytes(7)


# -- pySim: handshakes and wrapped APDUs from real cards ----------------------------------------------------------


def _pysim_host(case: VectorCase) -> Scp03Host:
    level = SecurityLevel(int(case.inputs["security_level"], 16))
    host = Scp03Host(
        _keys(case.inputs, case.inputs["kvn"]),
        level=level,
        host_challenge=case.hex_in("host_challenge"),
        kvn=case.inputs["kvn"],
        aid=PYSIM_ISD_R_AID,
    )
    return host


@pytest.mark.parametrize("case", params(PYSIM, "scp03-handshake"))
def test_pysim_handshake_host(case: VectorCase) -> None:
    host = _pysim_host(case)
    assert host.initialize_update().to_bytes() == case.hex_out("init_update_cmd")
    parsed = host.receive_initialize_update(ResponseApdu(case.hex_in("init_update_resp")))
    assert parsed.kvn == case.inputs["kvn"]
    assert host.state is ChannelState.CARD_AUTHENTICATED
    assert host.external_authenticate().to_bytes() == case.hex_out("ext_auth_cmd")
    host.receive_external_authenticate(ResponseApdu())
    assert host.is_open


@pytest.mark.parametrize("case", params(PYSIM, "scp03-handshake"))
def test_pysim_handshake_card(case: VectorCase) -> None:
    resp = case.hex_in("init_update_resp")
    card = _card_for(resp, _keys(case.inputs, case.inputs["kvn"]), PYSIM_ISD_R_AID)
    answer = card.initialize_update(CommandApdu.from_bytes(case.hex_out("init_update_cmd")))
    assert answer == ResponseApdu(resp)
    assert card.sequence_counter == int.from_bytes(resp[-3:], "big")
    assert card.external_authenticate(CommandApdu.from_bytes(case.hex_out("ext_auth_cmd"))) == ResponseApdu()
    assert card.is_open
    assert card.level == SecurityLevel(int(case.inputs["security_level"], 16))


@pytest.mark.parametrize("case", params(PYSIM, "scp03-wrap"))
def test_pysim_wrap_host_and_card(case: VectorCase) -> None:
    resp = case.hex_in("init_update_resp")
    host = _pysim_host(case)
    card = _card_for(resp, _keys(case.inputs, case.inputs["kvn"]), PYSIM_ISD_R_AID)
    card.initialize_update(host.initialize_update())
    host.receive_initialize_update(ResponseApdu(resp))
    host.receive_external_authenticate(card.external_authenticate(host.external_authenticate()))
    outputs = [_h(o) for o in case.expected["outputs"]]
    last_plain: CommandApdu | None = None
    for step, expected in zip(case.inputs["steps"], outputs, strict=True):
        if step["op"] == "wrap":
            plain = CommandApdu.from_bytes(_h(step["apdu"]))
            wire = host.wrap(plain)
            assert wire.to_bytes() == expected
            seen = card.unwrap(CommandApdu.from_bytes(expected))
            assert seen.to_bytes() == plain.to_bytes()
            last_plain = plain
        else:
            assert last_plain is not None
            sw = int(step["sw"], 16)
            protected = ResponseApdu(_h(step["rapdu_data"]), sw)
            assert host.unwrap(protected) == ResponseApdu(expected, sw)
            assert card.wrap(ResponseApdu(expected, sw)) == protected


# -- GPShell: full APDU traces ----------------------------------------------------------------------------------


def _gpshell_pseudo_random(case: VectorCase) -> bool:
    return "does not match the pseudo-random formula" not in case.notes


@pytest.mark.parametrize("case", params(GPSHELL, "scp03-trace"))
def test_gpshell_trace_host(case: VectorCase) -> None:
    raw = ResponseApdu.from_bytes(case.hex_in("initialize_update_resp"))
    level = SecurityLevel(int(case.inputs["security_level"], 16))
    host = Scp03Host(
        _keys(case.inputs),
        level=level,
        host_challenge=case.hex_in("host_challenge"),
        i_param=int(case.inputs["i"], 16),
        aid=GPSHELL_ISD_AID if _gpshell_pseudo_random(case) else b"",
    )
    assert host.initialize_update().data == case.hex_in("host_challenge")
    host.receive_initialize_update(raw)
    session = host.session_keys
    assert session is not None
    for name in ("s_enc", "s_mac", "s_rmac"):
        if name in case.expected:
            assert getattr(session, name) == case.hex_out(name)
    assert host.external_authenticate().to_bytes() == case.hex_out("external_authenticate")
    host.receive_external_authenticate(ResponseApdu())
    plains = [_h(c) for c in case.inputs.get("plain_cmds", [])]
    wires = [_h(c) for c in case.expected.get("wrapped_cmds", [])]
    protected = [_h(r) for r in case.expected.get("protected_responses", [])]
    responses = [_h(r) for r in case.expected.get("responses", [])]
    for n, (plain, wire) in enumerate(zip(plains, wires, strict=True)):
        assert host.wrap(CommandApdu.from_bytes(plain)).to_bytes() == wire
        if protected:
            # The echo applet returns the command's data (see the case's expected.unwrapped_responses).
            unwrapped = host.unwrap(ResponseApdu.from_bytes(protected[n]))
            assert unwrapped == ResponseApdu(CommandApdu.from_bytes(plain).data, 0x9000)
        elif n < len(responses):
            assert host.unwrap(ResponseApdu.from_bytes(responses[n])) == ResponseApdu.from_bytes(responses[n])


@pytest.mark.parametrize("case", params(GPSHELL, "scp03-trace"))
def test_gpshell_trace_card(case: VectorCase) -> None:
    raw = ResponseApdu.from_bytes(case.hex_in("initialize_update_resp"))
    pseudo = _gpshell_pseudo_random(case)
    card = _card_for(raw.data, _keys(case.inputs), GPSHELL_ISD_AID, pseudo_random=pseudo)
    host_challenge = case.hex_in("host_challenge")
    answer = card.initialize_update(CommandApdu(0x80, 0x50, 0, 0, host_challenge, 256))
    if pseudo:
        assert answer == raw
    else:
        # Synthetic card: its challenge is injected through `random`, so i loses b5 and the counter is absent;
        # challenge and cryptogram must still be the trace's.
        assert answer.data[13:29] == raw.data[13:29]
    ea = card.external_authenticate(CommandApdu.from_bytes(case.hex_out("external_authenticate")))
    assert ea == ResponseApdu() and card.is_open
    plains = [_h(c) for c in case.inputs.get("plain_cmds", [])]
    wires = [_h(c) for c in case.expected.get("wrapped_cmds", [])]
    protected = [_h(r) for r in case.expected.get("protected_responses", [])]
    for n, (plain, wire) in enumerate(zip(plains, wires, strict=True)):
        seen = card.unwrap(CommandApdu.from_bytes(wire))
        assert seen.to_bytes() == plain
        if protected:
            assert card.wrap(ResponseApdu(seen.data)) == ResponseApdu.from_bytes(protected[n])


@pytest.mark.parametrize("counter", [1, 2, 255, 0xFFFFFF])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 200])
def test_counted_data_is_the_block_data_under_the_counter_icv(counter: int, size: int) -> None:
    """The one-lookup helpers give what the ICV helpers and the block helpers give together (6.2.6, 6.2.7)."""
    from gpchannel.errors import DecodeError
    from gpchannel.scp.scp03 import (
        command_block,
        command_icv,
        decrypt_block_data,
        decrypt_counted_data,
        encrypt_block_data,
        encrypt_counted_data,
        response_block,
        response_icv,
    )

    s_enc, data = bytes(range(16)), bytes(range(size))
    for block, icv in ((command_block(counter), command_icv), (response_block(counter), response_icv)):
        expected = encrypt_block_data(s_enc, icv(s_enc, counter), data)
        assert encrypt_counted_data(s_enc, block, data) == expected
        assert decrypt_counted_data(s_enc, block, expected) == data
        assert decrypt_block_data(s_enc, icv(s_enc, counter), expected) == data
    with pytest.raises(DecodeError):
        decrypt_counted_data(s_enc, command_block(counter), bytes(17))
