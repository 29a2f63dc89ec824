"""PUT KEY key data (GP 2.3.1 11.8, Amendment D 7.2) against GlobalPlatformPro's key-encryption vectors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.ciphers import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    des3_cbc_encrypt,
    des3_ecb_decrypt,
    des3_ecb_encrypt,
)
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import DecodeError, IncorrectData, IncorrectP1P2, RemoteProtocolError, SecurityNotSatisfied
from gpchannel.scp.common import SecurityLevel
from gpchannel.scp.put_key import KeyComponent, PutKeyCommand, PutKeyData, put_key_command
from gpchannel.scp.scp01_card import Scp01Card
from gpchannel.scp.scp01_host import Scp01Host
from tests.vectors import VectorCase, cases, params

_FILE = "put_key/globalplatformpro.json"


def _kcv_vector(name: str) -> bytes:
    case = next(c for c in cases(_FILE, "kcv") if name in c.inputs)
    return case.hex_out("kcv")


def _scp02_session_dek(dek: bytes, sequence_counter: bytes) -> bytes:
    # GP 2.2.1 E.4.1: 3DES-CBC(static DEK, IV 0) over 0181 || counter || 00 x 12.
    return des3_cbc_encrypt(dek, b"\x01\x81" + sequence_counter + bytes(12))


@pytest.mark.parametrize("case", params(_FILE, "key-encryption-scp01", "key-encryption-scp02"))
def test_des_key_block(case: VectorCase) -> None:
    """SCP01: 3DES-ECB under the static DEK (GP 2.1.1 D.3.5); SCP02: under the session DEK (GP 2.2.1 E.4.7)."""
    dek = case.hex_in("dek")
    if case.kind == "key-encryption-scp02":
        dek = _scp02_session_dek(dek, case.hex_in("sequence_counter"))
    key = case.hex_in("key_to_encrypt")
    cryptogram = case.hex_out("cryptogram")
    data = PutKeyData.build(0x21, [key], KeyType.DES3, lambda k: des3_ecb_encrypt(dek, k))
    assert key == bytes.fromhex("404142434445464748494A4B4C4D4E4F")  # the key of the KCV vector
    kcv = _kcv_vector("key_3des")
    # GPPro's layout: 80 10 <cryptogram> 03 <KCV> (Table 11-71: no length before the encrypted key).
    assert data.to_bytes() == b"\x21\x80\x10" + cryptogram + b"\x03" + kcv
    parsed = PutKeyData.from_bytes(data.to_bytes())
    assert parsed == data
    assert parsed.decrypt(lambda c: des3_ecb_decrypt(dek, c)) == (key,)
    assert parsed.response_data() == b"\x21" + kcv


@pytest.mark.parametrize("case", params(_FILE, "key-encryption-scp03"))
def test_aes_key_block(case: VectorCase) -> None:
    """Amendment D 6.2.8 / Table 7-10: 88 11 10 <AES-CBC(static DEK, IV 0, key)> 03 <KCV>."""
    dek = case.hex_in("dek")
    key = case.hex_in("key_to_encrypt")
    data = PutKeyData.build(0x30, [key], KeyType.AES, lambda k: aes_cbc_encrypt(dek, k))
    raw = data.to_bytes()
    n = case.expected["cryptogram_length"]
    assert raw[:4] == bytes((0x30, 0x88, n + 1, len(key)))
    assert raw[4 : 4 + n] == aes_cbc_encrypt(dek, key)
    assert raw[4 + n :] == b"\x03" + _kcv_vector("key_aes")
    assert PutKeyData.from_bytes(raw).decrypt(lambda c: aes_cbc_decrypt(dek, c)) == (key,)


def test_aes_192_key_is_padded_and_its_length_kept() -> None:
    dek = bytes(range(16))
    key = bytes(range(100, 124))

    def encrypt(k: bytes) -> bytes:  # the SCP03 rule: pad 24-byte keys to 32 (Amendment D 6.2.8)
        return aes_cbc_encrypt(dek, k + b"\x80" + bytes(7))

    raw = PutKeyData.build(0x30, [key], KeyType.AES, encrypt).to_bytes()
    assert raw[1:4] == b"\x88\x21\x18"
    assert PutKeyData.from_bytes(raw).decrypt(lambda c: aes_cbc_decrypt(dek, c)) == (key,)


def test_kcv_mismatch_is_6982() -> None:
    """GP 2.3.1 Table 11-78: "Invalid key check value" is 6982 (9485 is deprecated), not 6A80 (wrong data)."""
    dek = bytes(range(16))
    data = PutKeyData.build(0x21, [bytes(range(16))], KeyType.DES3, lambda k: des3_ecb_encrypt(dek, k))
    raw = bytearray(data.to_bytes())
    raw[-1] ^= 0x01
    with pytest.raises(SecurityNotSatisfied) as info:
        PutKeyData.from_bytes(bytes(raw)).decrypt(lambda c: des3_ecb_decrypt(dek, c))
    assert info.value.sw == 0x6982
    with pytest.raises(SecurityNotSatisfied):  # the wrong DEK gives another key, hence another KCV
        data.decrypt(lambda c: des3_ecb_decrypt(bytes(16), c))


@pytest.mark.parametrize(
    "component",
    [
        KeyComponent(0x80, bytes(16), None, b""),  # no KCV
        KeyComponent(0x80, bytes(16), None, b"\x01\x02"),  # 2-byte KCV
        KeyComponent(0xA1, bytes(16), None, b""),  # RSA modulus: not a secret key we can check
        KeyComponent(0x80, bytes(16), 8, b"\x01\x02\x03"),  # single DES length
    ],
)
def test_unusable_key_fields_are_incorrect_data(component: KeyComponent) -> None:
    with pytest.raises(IncorrectData):
        component.decrypt(lambda c: c)


def test_check_response() -> None:
    data = PutKeyData.build(0x21, [bytes(16), bytes(range(16))], KeyType.DES3, lambda k: k)
    data.check_response(data.response_data())
    with pytest.raises(RemoteProtocolError):
        data.check_response(b"\x21")


# -- the command ----------------------------------------------------------------------------------------------------
def test_command_header() -> None:
    data = PutKeyData.build(0x22, [bytes(16)] * 3, KeyType.DES3, lambda k: k)
    replace = put_key_command(data, key_id=1, old_kvn=0x21, channel=2)
    assert (replace.cla, replace.ins, replace.p1, replace.p2, replace.le) == (0x82, 0xD8, 0x21, 0x81, 256)
    assert replace.data == data.to_bytes()
    single = PutKeyData.build(0x22, [bytes(16)], KeyType.DES3, lambda k: k)
    add = put_key_command(single, key_id=3, more=True)
    assert (add.p1, add.p2) == (0x80, 0x03)
    assert PutKeyCommand.from_apdu(add) == PutKeyCommand(single, 3, 0, True)
    assert PutKeyCommand.from_apdu(replace) == PutKeyCommand(data, 1, 0x21, False)


def test_command_parse_errors() -> None:
    single = PutKeyData.build(0x22, [bytes(16)], KeyType.DES3, lambda k: k)
    with pytest.raises(IncorrectP1P2):
        PutKeyCommand.from_apdu(CommandApdu(0x80, 0xD8, 0x00, 0x81, single.to_bytes()))
    with pytest.raises(IncorrectData):
        PutKeyCommand.from_apdu(CommandApdu(0x80, 0xD8, 0x00, 0x01, b"\x22\x80\x10"))


@pytest.mark.parametrize("level", [0x01, 0x03])
def test_through_an_scp01_channel(level: int) -> None:
    """Host builds with Scp01Host.encrypt_key; the card unwraps, parses and decrypts with Scp01Card.decrypt_key."""
    keys = StaticKeys.single(bytes.fromhex("404142434445464748494A4B4C4D4E4F"), 0x01, KeyType.DES3)
    host = Scp01Host(keys, level=SecurityLevel(level), host_challenge=bytes(range(8)), i_param=0x15)
    card = Scp01Card(keys, i_param=0x15, key_diversification_data=bytes(10), sequence_counter=0, random=bytes, aid=b"")
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    host.receive_external_authenticate(card.external_authenticate(host.external_authenticate()))
    new = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x02, KeyType.DES3)
    data = PutKeyData.from_static_keys(new, host.encrypt_key)
    wire = CommandApdu.from_bytes(host.wrap(put_key_command(data, key_id=1, old_kvn=0x01)).to_bytes())
    request = PutKeyCommand.from_apdu(card.unwrap(wire))
    assert (request.old_kvn, request.key_id, request.data.new_kvn) == (0x01, 1, 0x02)
    assert request.data.decrypt(card.decrypt_key) == (new.enc, new.mac, new.dek)
    answer = host.unwrap(card.wrap(ResponseApdu(request.data.response_data())))
    data.check_response(answer.data)


# -- codec properties -------------------------------------------------------------------------------------------------
@st.composite
def _components(draw: Callable[..., object]) -> KeyComponent:
    key_type = draw(st.integers(0x80, 0xFE))
    blocks = draw(st.integers(1, 40))
    assert isinstance(key_type, int) and isinstance(blocks, int)
    encrypted = bytes(8 * blocks)
    with_length = draw(st.booleans())
    key_length = draw(st.integers(1, len(encrypted))) if with_length else None
    kcv = draw(st.binary(max_size=0x7F))
    assert key_length is None or isinstance(key_length, int)
    assert isinstance(kcv, bytes)
    return KeyComponent(key_type, encrypted, key_length, kcv)


@given(new_kvn=st.integers(1, 0x7F), keys=st.lists(_components(), min_size=1, max_size=4))
def test_round_trip(new_kvn: int, keys: list[KeyComponent]) -> None:
    data = PutKeyData(new_kvn, tuple(keys))
    assert PutKeyData.from_bytes(data.to_bytes()) == data
    for key in keys:
        assert KeyComponent.from_bytes(key.to_bytes()) == key


def _parse_or_decode_error(raw: bytes) -> None:
    try:
        data = PutKeyData.from_bytes(raw)
    except DecodeError:
        return
    assert PutKeyData.from_bytes(data.to_bytes()) == data


@given(raw=st.binary(max_size=120))
def test_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    _parse_or_decode_error(raw)


@given(new_kvn=st.integers(1, 0x7F), keys=st.lists(_components(), min_size=1, max_size=2))
def test_parser_on_every_prefix(new_kvn: int, keys: list[KeyComponent]) -> None:
    raw = PutKeyData(new_kvn, tuple(keys)).to_bytes()
    for end in range(len(raw)):
        _parse_or_decode_error(raw[:end])


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00 80 10" + "00" * 16 + "00",  # KVN 00
        "21 FF 80 10" + "00" * 16 + "00",  # Extended Format
        "21 80 10" + "00" * 16 + "01 A0 03 00 00 00",  # a second component
        "21 80 11 20" + "00" * 16 + "00",  # clear length 32 > 16 encrypted bytes
        "21 80 81 10" + "00" * 16 + "00",  # 81 with a value below 80
        "21 40 10" + "00" * 16 + "00",  # key type below 80
        "21 80 10" + "00" * 16,  # no KCV length
    ],
)
def test_malformed(raw: str) -> None:
    with pytest.raises(DecodeError):
        PutKeyData.from_bytes(bytes.fromhex(raw.replace(" ", "")))
