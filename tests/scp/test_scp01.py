"""SCP01 (GP 2.1.1 Appendix D): GPShell traces through both sides, GPPro session keys, round trips, failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel, cla_with_secure_messaging
from gpchannel.crypto.diversification import Diversification, diversify, resolver
from gpchannel.crypto.keys import KeyType, StaticKeys, kcv
from gpchannel.errors import (
    AuthenticationError,
    CardStatusError,
    ChannelClosedError,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    LocalProtocolError,
    ReferencedDataNotFound,
    RemoteProtocolError,
    SecurityNotSatisfied,
    UnsupportedError,
    WrongLength,
)
from gpchannel.scp.common import ChannelState, KeyResolver, SecurityLevel
from gpchannel.scp.scp01 import (
    command_mac,
    decrypt_command_data,
    derive_session_keys,
    encrypt_command_data,
    encrypt_sensitive_data,
)
from gpchannel.scp.scp01_card import Scp01Card
from gpchannel.scp.scp01_host import Scp01Host
from tests.vectors import VectorCase, cases, params

_DEFAULT = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
_OK = ResponseApdu(b"", 0x9000)
_LEVELS = (0x00, 0x01, 0x03)


def _cmd(hex_text: str) -> CommandApdu:
    return CommandApdu.from_bytes(bytes.fromhex(hex_text))


def _trace_keys(case: VectorCase) -> tuple[StaticKeys | KeyResolver, StaticKeys]:
    """(host keys or resolver, card keys) for a GPShell trace; the card key set carries the response's KVN."""
    resp = case.hex_in("initialize_update_resp")
    kdd, kvn = resp[:10], resp[10]
    if "master_key" in case.inputs:
        assert case.inputs["derivation"] == "VISA2"
        master = StaticKeys.single(case.hex_in("master_key"), kvn, KeyType.DES3)
        return resolver(master, Diversification.VISA2), diversify(master, Diversification.VISA2, kdd)
    keys = StaticKeys(case.hex_in("enc"), case.hex_in("mac"), case.hex_in("dek"), kvn, KeyType.DES3)
    return keys, keys


def _command_pairs(case: VectorCase) -> list[tuple[str, str]]:
    return list(zip(case.inputs.get("plain_cmds", []), case.expected.get("wrapped_cmds", []), strict=True))


# -- vectors -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", params("scp01/globalplatformpro.json", "session-keys-scp01"))
def test_session_keys(case: VectorCase) -> None:
    keys = StaticKeys(case.hex_in("static_enc"), case.hex_in("static_mac"), _DEFAULT, key_type=KeyType.DES3)
    s = derive_session_keys(keys, case.hex_in("host_challenge"), case.hex_in("card_challenge"))
    assert kcv(s.s_enc, KeyType.DES3) == case.hex_out("kcv_s_enc")
    assert kcv(s.s_mac, KeyType.DES3) == case.hex_out("kcv_s_mac")
    assert kcv(keys.dek, KeyType.DES3) == case.hex_out("kcv_dek_static")  # the DEK is not derived (D.3.1)


@pytest.mark.parametrize("case", params("scp01/globalplatformpro.json", "key-encryption-scp01"))
def test_key_encryption(case: VectorCase) -> None:
    assert encrypt_sensitive_data(case.hex_in("dek"), case.hex_in("key_to_encrypt")) == case.hex_out("cryptogram")


@pytest.mark.parametrize("case", params("scp01/gpshell.json", "scp01-trace"))
def test_trace_host(case: VectorCase) -> None:
    host_keys, _ = _trace_keys(case)
    level = SecurityLevel(int(case.inputs["security_level"], 16))
    host = Scp01Host(host_keys, level=level, host_challenge=case.hex_in("host_challenge"), i_param=0x05)
    init = host.initialize_update()
    if "initialize_update_cmd" in case.inputs:
        assert init.to_bytes() == case.hex_in("initialize_update_cmd")
    host.receive_initialize_update(ResponseApdu.from_bytes(case.hex_in("initialize_update_resp")))
    assert host.external_authenticate().to_bytes() == case.hex_out("external_authenticate")
    host.receive_external_authenticate(_OK)
    assert host.is_open
    responses = case.expected.get("responses", [])
    for i, (plain, wrapped) in enumerate(_command_pairs(case)):
        assert host.wrap(_cmd(plain)).to_bytes() == bytes.fromhex(wrapped)
        if i < len(responses):
            rapdu = ResponseApdu.from_bytes(bytes.fromhex(responses[i]))
            assert host.unwrap(rapdu) == rapdu  # SCP01 has no R-MAC


@pytest.mark.parametrize("case", params("scp01/gpshell.json", "scp01-trace"))
def test_trace_card(case: VectorCase) -> None:
    _, card_keys = _trace_keys(case)
    resp = case.hex_in("initialize_update_resp")
    card_challenge = resp[12:20]
    card = Scp01Card(
        card_keys,
        i_param=0x05,
        key_diversification_data=resp[:10],
        sequence_counter=7,
        random=lambda n: card_challenge[:n],
        aid=b"",
    )
    init_cmd = case.inputs.get("initialize_update_cmd", "8050000008" + case.inputs["host_challenge"] + "00")
    assert card.initialize_update(_cmd(init_cmd)).to_bytes() == resp
    assert card.external_authenticate(_cmd(case.expected["external_authenticate"])) == _OK
    assert card.level == int(case.inputs["security_level"], 16)
    responses = case.expected.get("responses", [])
    for i, (plain, wrapped) in enumerate(_command_pairs(case)):
        assert card.unwrap(_cmd(wrapped)) == _cmd(plain)
        if i < len(responses):
            rapdu = ResponseApdu.from_bytes(bytes.fromhex(responses[i]))
            assert card.wrap(rapdu) == rapdu
    assert card.sequence_counter == 7


def _independent_3des_cbc_last_block(key: bytes, data: bytes) -> bytes:
    enc = Cipher(TripleDES(key + key[:8]), modes.CBC(bytes(8))).encryptor()
    return (enc.update(data) + enc.finalize())[-8:]


def test_i15_icv_encryption_cross_check() -> None:
    """i=15 (D.1.5) on the GPShell get_status trace, expected values computed here independently.

    No published i=15 trace exists. CBC-MAC with ICV = 3DES(S-MAC, previous MAC) equals the last block of a
    zero-IV CBC over ``previous MAC || padded input``, which is what this test computes with `cryptography`
    directly (not through gpchannel.crypto). EXTERNAL AUTHENTICATE (ICV zero) must stay the GPShell bytes.
    """
    case = next(c for c in cases("scp01/gpshell.json", "scp01-trace") if c.source.endswith("(get_status)"))
    keys, card_keys = _trace_keys(case)
    resp = case.hex_in("initialize_update_resp")
    host = Scp01Host(keys, level=SecurityLevel.C_MAC, host_challenge=case.hex_in("host_challenge"), i_param=0x15)
    card = Scp01Card(
        card_keys,
        i_param=0x15,
        key_diversification_data=resp[:10],
        sequence_counter=0,
        random=lambda n: resp[12:20],
        aid=b"",
    )
    card.initialize_update(host.initialize_update())
    host.receive_initialize_update(ResponseApdu.from_bytes(resp))
    ea = host.external_authenticate()
    assert ea.to_bytes() == case.hex_out("external_authenticate")
    assert card.external_authenticate(ea) == _OK
    host.receive_external_authenticate(_OK)
    session = host.session_keys
    assert session is not None
    previous = ea.data[8:]
    for plain_hex, i05_hex in zip(case.inputs["plain_cmds"], case.expected["wrapped_cmds"], strict=True):
        plain = _cmd(plain_hex)
        mac_input = bytes((0x84, plain.ins, plain.p1, plain.p2, len(plain.data) + 8)) + plain.data
        mac_input += b"\x80" + bytes(-(len(mac_input) + 1) % 8)
        expected_mac = _independent_3des_cbc_last_block(session.s_mac, previous + mac_input)
        wrapped = host.wrap(plain)
        assert wrapped.data == plain.data + expected_mac
        assert wrapped.to_bytes() != bytes.fromhex(i05_hex)
        assert card.unwrap(wrapped) == plain
        previous = expected_mac


# -- the pure functions ----------------------------------------------------------------------------------------
@given(data=st.binary(min_size=1, max_size=255), key=st.binary(min_size=16, max_size=16))
def test_command_data_encryption_round_trip(data: bytes, key: bytes) -> None:
    cipher = encrypt_command_data(key, data)
    assert len(cipher) % 8 == 0
    assert len(cipher) == 1 + len(data) + (-(1 + len(data)) % 8)
    assert decrypt_command_data(key, cipher) == data


@given(blob=st.binary(max_size=64), key=st.binary(min_size=16, max_size=16))
def test_command_data_decryption_returns_or_raises_decode_error(blob: bytes, key: bytes) -> None:
    try:
        plain = decrypt_command_data(key, blob)
    except DecodeError:
        return
    assert encrypt_command_data(key, plain) == blob


# -- paired endpoints --------------------------------------------------------------------------------------------
def _pair(
    level: int = 0x01,
    i_param: int = 0x05,
    channel: int = 0,
    host_keys: StaticKeys | None = None,
    card_keys: StaticKeys | None = None,
    kvn: int = 0,
) -> tuple[Scp01Host, Scp01Card]:
    keys = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x21, KeyType.DES3)
    host = Scp01Host(
        host_keys or keys,
        level=SecurityLevel(level),
        host_challenge=bytes.fromhex("0102030405060708"),
        i_param=i_param,
        kvn=kvn,
        channel=channel,
    )
    card = Scp01Card(
        card_keys or keys,
        i_param=i_param,
        key_diversification_data=bytes(range(0xA0, 0xAA)),
        sequence_counter=0,
        random=lambda n: bytes.fromhex("1122334455667788")[:n],
        aid=b"",
        channel=channel,
    )
    return host, card


def _open(host: Scp01Host, card: Scp01Card) -> None:
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    host.receive_external_authenticate(card.external_authenticate(host.external_authenticate()))
    assert host.is_open and card.is_open


def _wire(command: CommandApdu) -> CommandApdu:
    return CommandApdu.from_bytes(command.to_bytes())


@st.composite
def _commands(draw: Callable[..., object], channel: int, max_data: int) -> CommandApdu:
    base = draw(st.sampled_from([0x00, 0x80, 0x10, 0x90]))
    data = draw(st.binary(max_size=max_data))
    le = draw(st.one_of(st.none(), st.integers(1, 256)))
    assert isinstance(base, int) and isinstance(data, bytes) and (le is None or isinstance(le, int))
    ins, p1, p2 = (draw(st.integers(0, 255)) for _ in range(3))
    assert isinstance(ins, int) and isinstance(p1, int) and isinstance(p2, int)
    return CommandApdu(cla_for_channel(base, channel), ins, p1, p2, data, le)


@given(data=st.data())
@pytest.mark.parametrize("i_param", [0x05, 0x15])
@pytest.mark.parametrize("level", _LEVELS)
def test_round_trip(i_param: int, level: int, data: st.DataObject) -> None:
    channel = data.draw(st.integers(0, 19))
    host, card = _pair(level, i_param, channel)
    _open(host, card)
    max_data = 239 if level == 0x03 else 247
    for _ in range(data.draw(st.integers(1, 4))):
        command = data.draw(_commands(channel, max_data))
        if level and cla_with_secure_messaging(command.cla) == 0xFF:
            with pytest.raises(LocalProtocolError):
                host.wrap(command)
            continue
        wrapped = _wire(host.wrap(command))
        assert card.unwrap(wrapped) == command
        response = ResponseApdu(data.draw(st.binary(max_size=64)), data.draw(st.sampled_from([0x9000, 0x6A80, 0x6310])))
        assert host.unwrap(card.wrap(response)) == response


@pytest.mark.parametrize(("level", "fits", "too_long"), [(0x01, 247, 248), (0x03, 239, 240)])
def test_apdu_too_long_once_wrapped(level: int, fits: int, too_long: int) -> None:
    host, card = _pair(level)
    _open(host, card)
    with pytest.raises(LocalProtocolError):
        host.wrap(CommandApdu(0x80, 0xE8, 0, 0, bytes(too_long)))
    with pytest.raises(LocalProtocolError):
        host.wrap(CommandApdu(0x80, 0xE8, 0, 0, b"\x01", le=257))
    assert host.is_open  # nothing changed: the next command still verifies on the card
    command = CommandApdu(0x80, 0xE8, 0, 0, bytes(fits))
    assert card.unwrap(_wire(host.wrap(command))) == command


def test_level_00_passes_commands_and_still_checks_macs() -> None:
    host, card = _pair(0x00)
    _open(host, card)
    command = CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256)
    assert host.wrap(command) == command
    assert card.unwrap(command) == command


# -- failures -------------------------------------------------------------------------------------------------------
def _flip(command: CommandApdu, index: int) -> CommandApdu:
    data = bytearray(command.data)
    data[index] ^= 0x01
    return command.with_changes(data=bytes(data))


def _assert_card_terminated(card: Scp01Card) -> None:
    assert card.state is ChannelState.TERMINATED
    assert card.level == SecurityLevel.NONE
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00"))
    with pytest.raises(SecurityNotSatisfied):
        card.initialize_update(CommandApdu(0x80, 0x50, 0, 0, bytes(8), le=256))


@pytest.mark.parametrize("level", [0x01, 0x03])
@pytest.mark.parametrize("where", [-1, 0])  # the C-MAC, then the (possibly encrypted) data
def test_tampered_command(level: int, where: int) -> None:
    host, card = _pair(level)
    _open(host, card)
    wrapped = host.wrap(CommandApdu(0x80, 0xE2, 0x90, 0x00, bytes(range(20))))
    with pytest.raises(SecurityNotSatisfied) as info:
        card.unwrap(_flip(wrapped, where))
    assert info.value.sw == 0x6982
    _assert_card_terminated(card)


@pytest.mark.parametrize("field", ["cla", "ins", "p1", "p2"])
def test_tampered_header(field: str) -> None:
    host, card = _pair(0x01)
    _open(host, card)
    wrapped = host.wrap(CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\x01\x02"))
    change = 0x80 if field == "cla" else 0x40  # channel bits are not MACed (D.3.3); the class bit is
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(wrapped.with_changes(**{field: getattr(wrapped, field) ^ change}))
    _assert_card_terminated(card)


@pytest.mark.parametrize("i_param", [0x05, 0x15])
@pytest.mark.parametrize("scenario", ["replayed", "reordered", "dropped"])
def test_sequence_integrity(i_param: int, scenario: str) -> None:
    host, card = _pair(0x01, i_param)
    _open(host, card)
    first = host.wrap(CommandApdu(0x80, 0xF2, 0x40, 0x00, b"\x4f\x00", le=256))
    second = host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00", le=256))
    if scenario == "replayed":
        card.unwrap(first)
        culprit = first
    else:
        culprit = second  # reordered: second before first; dropped: first never arrives
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(culprit)
    _assert_card_terminated(card)


def test_command_without_secure_messaging_is_refused_at_c_mac() -> None:
    host, card = _pair(0x01)
    _open(host, card)
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00"))
    _assert_card_terminated(card)


def test_wrong_card_cryptogram() -> None:
    other = StaticKeys.single(_DEFAULT, 0x21, KeyType.DES3)
    host, card = _pair(0x01, host_keys=other)
    response = card.initialize_update(host.initialize_update())
    with pytest.raises(AuthenticationError) as info:
        host.receive_initialize_update(response)
    message = str(info.value)
    assert "did not verify" in message
    assert "A0A1A2A3A4A5A6A7A8A9" in message  # the key diversification data
    assert kcv(_DEFAULT, KeyType.DES3).hex().upper() in message
    assert _DEFAULT.hex().upper() not in message and _DEFAULT.hex() not in message
    assert host.state is ChannelState.TERMINATED
    with pytest.raises(ChannelClosedError):
        host.external_authenticate()


def test_wrong_host_cryptogram() -> None:
    host, card = _pair(0x01)
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    session = host.session_keys
    assert session is not None
    header = CommandApdu(0x84, 0x82, 0x01, 0x00)
    bad = bytes(8)
    command = header.with_changes(data=bad + command_mac(session.s_mac, bytes(8), header, bad))
    with pytest.raises(SecurityNotSatisfied) as info:
        card.external_authenticate(command)
    assert info.value.sw == 0x6300  # Table D-9
    _assert_card_terminated(card)


def test_tampered_external_authenticate_mac() -> None:
    host, card = _pair(0x03)
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    with pytest.raises(SecurityNotSatisfied) as info:
        card.external_authenticate(_flip(host.external_authenticate(), -1))
    assert info.value.sw == 0x6982
    _assert_card_terminated(card)


@pytest.mark.parametrize(
    ("p1", "p2", "data_len", "error"),
    [(0x11, 0, 16, IncorrectP1P2), (0x33, 0, 16, IncorrectP1P2), (0x02, 0, 16, IncorrectP1P2),
     (0x01, 1, 16, IncorrectP1P2), (0x01, 0, 15, WrongLength)],
)  # fmt: skip
def test_external_authenticate_malformed(p1: int, p2: int, data_len: int, error: type[Exception]) -> None:
    host, card = _pair(0x01)
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    with pytest.raises(error):
        card.external_authenticate(CommandApdu(0x84, 0x82, p1, p2, bytes(data_len)))
    assert card.state is ChannelState.TERMINATED


def test_wrong_kvn() -> None:
    host, card = _pair(0x01, kvn=0x22)
    with pytest.raises(ReferencedDataNotFound) as info:
        card.initialize_update(host.initialize_update())
    assert info.value.sw == 0x6A88
    host2, card2 = _pair(0x01)
    response = card2.initialize_update(host2.initialize_update())  # KVN 21
    with pytest.raises(RemoteProtocolError):
        host.receive_initialize_update(response)
    assert host.state is ChannelState.TERMINATED


def test_initialize_update_errors_on_the_card() -> None:
    _, card = _pair()
    with pytest.raises(WrongLength):
        card.initialize_update(CommandApdu(0x80, 0x50, 0, 0, bytes(7), le=256))
    _, card = _pair()
    with pytest.raises(ReferencedDataNotFound):
        card.initialize_update(CommandApdu(0x80, 0x50, 0, 0x05, bytes(8), le=256))


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (ResponseApdu(b"", 0x6982), CardStatusError),
        (ResponseApdu(bytes(27), 0x9000), DecodeError),
        (ResponseApdu(bytes(11) + b"\x02" + bytes(16), 0x9000), RemoteProtocolError),  # SCP02
    ],
)
def test_host_rejects_initialize_update_response(response: ResponseApdu, error: type[Exception]) -> None:
    host, _ = _pair()
    host.initialize_update()
    with pytest.raises(error):
        host.receive_initialize_update(response)
    assert host.state is ChannelState.TERMINATED
    with pytest.raises(ChannelClosedError):
        host.external_authenticate()


def test_external_authenticate_refused_terminates_the_host() -> None:
    host, card = _pair()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    host.external_authenticate()
    with pytest.raises(CardStatusError) as info:
        host.receive_external_authenticate(ResponseApdu(b"", 0x6300))
    assert info.value.sw == 0x6300
    with pytest.raises(ChannelClosedError):
        host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00))


def test_order_of_calls_is_enforced() -> None:
    host, card = _pair()
    with pytest.raises(LocalProtocolError):
        host.external_authenticate()
    with pytest.raises(LocalProtocolError):
        host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00))
    with pytest.raises(SecurityNotSatisfied):
        card.external_authenticate(CommandApdu(0x84, 0x82, 0x01, 0x00, bytes(16)))


def test_use_after_close_and_terminate() -> None:
    host, card = _pair(0x03)
    _open(host, card)
    host.close()
    card.terminate()
    with pytest.raises(ChannelClosedError):
        host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00))
    with pytest.raises(ChannelClosedError):
        host.unwrap(_OK)
    with pytest.raises(ChannelClosedError):
        host.encrypt_key(_DEFAULT)
    _assert_card_terminated(card)
    with pytest.raises(SecurityNotSatisfied):
        card.wrap(_OK)


def test_host_refuses_foreign_channel_and_secure_messaging_cla() -> None:
    host, card = _pair(0x01, channel=5)
    _open(host, card)
    with pytest.raises(LocalProtocolError):
        host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00))  # channel 0
    with pytest.raises(LocalProtocolError):
        host.wrap(CommandApdu(0xE1, 0xF2, 0x80, 0x00))  # channel 5 with the SM bit
    assert host.is_open


def test_unsupported_options() -> None:
    keys = StaticKeys.single(_DEFAULT, key_type=KeyType.DES3)
    for level in (0x11, 0x13, 0x33):
        with pytest.raises(UnsupportedError):
            Scp01Host(keys, level=SecurityLevel(level), host_challenge=bytes(8))
    with pytest.raises(UnsupportedError):
        Scp01Host(keys, level=SecurityLevel.C_MAC, host_challenge=bytes(8), i_param=0x55)
    with pytest.raises(UnsupportedError):
        Scp01Host(StaticKeys.single(_DEFAULT), level=SecurityLevel.C_MAC, host_challenge=bytes(8))  # AES
    with pytest.raises(UnsupportedError):
        _pair(card_keys=StaticKeys.single(_DEFAULT + bytes(8), key_type=KeyType.DES3))  # 24-byte keys


def test_keys_round_trip_and_stay_out_of_reprs() -> None:
    host, card = _pair(0x03)
    _open(host, card)
    new_key = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    assert card.decrypt_key(host.encrypt_key(new_key)) == new_key
    with pytest.raises(LocalProtocolError):
        host.encrypt_key(bytes(12))
    with pytest.raises(IncorrectData):
        card.decrypt_key(bytes(12))
    for text in (repr(host), repr(card), repr(host.session_keys)):
        assert bytes(range(16)).hex() not in text.lower()
        assert "s_enc=" not in text


# -- fuzzing the state machines ---------------------------------------------------------------------------------
@given(data=st.binary(max_size=40), sw=st.sampled_from([0x9000, 0x6A88, 0x6982]))
def test_host_initialize_update_fuzz(data: bytes, sw: int) -> None:
    host, _ = _pair()
    host.initialize_update()
    try:
        host.receive_initialize_update(ResponseApdu(data, sw))
    except (DecodeError, RemoteProtocolError, AuthenticationError, CardStatusError):
        assert host.state is ChannelState.TERMINATED
    else:  # pragma: no cover - a random 28-byte answer with a valid cryptogram is not expected
        raise AssertionError("a random INITIALIZE UPDATE response was accepted")


@given(data=st.data())
@pytest.mark.parametrize("level", _LEVELS)
def test_card_unwrap_fuzz(level: int, data: st.DataObject) -> None:
    host, card = _pair(level)
    _open(host, card)
    cla = data.draw(st.sampled_from([0x80, 0x84, 0x00, 0x04, 0xC0, 0xE0]))
    command = CommandApdu(cla, 0xE2, 0, 0, data.draw(st.binary(max_size=64)), data.draw(st.none() | st.just(256)))
    try:
        plain = card.unwrap(command)
    except SecurityNotSatisfied:
        assert card.state is ChannelState.TERMINATED
    else:
        assert level == 0x00 and plain == command  # only level 00 lets a command without a C-MAC through
