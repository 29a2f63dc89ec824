"""Token data, token signatures, confirmations and receipts (GP 2.3.1 C.4, C.5, 11.1.6)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.crypto.asym import EcCurve, EcPublicKey, load_private_key_pem, rsa_public_key
from gpchannel.crypto.keys import KeyType
from gpchannel.errors import DecodeError
from gpchannel.gp.install import InstallForExtradition, InstallForInstall, InstallForLoad
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.gp.tokens import (
    Confirmation,
    ConfirmationData,
    SymmetricKey,
    combined_token_data,
    delete_receipt_data,
    delete_token_data,
    extradition_receipt_data,
    install_body,
    install_receipt_data,
    install_token_data,
    load_receipt_data,
    parse_public_key_data,
    public_key_data,
    registry_update_receipt_data,
    sign,
    split_delete_token,
    split_install_token,
    token_data,
    verify,
    with_delete_token,
)
from tests.vectors import VectorCase, cases, params


@pytest.mark.parametrize("case", params("tokens/gpshell.json", "delete-token-data"))
def test_delete_token_data_gpshell(case: VectorCase) -> None:
    p1p2 = case.hex_in("p1p2")
    body = b"".join(b"\x4f" + bytes((len(a),)) + a for a in (bytes.fromhex(x) for x in case.inputs["aids"]))
    assert delete_token_data(p1p2[0], p1p2[1], body) == case.hex_out("token_signature_data")


@pytest.mark.parametrize("case", params("tokens/gpshell.json", "extradition-token-data"))
def test_extradition_token_data_gpshell(case: VectorCase) -> None:
    expected = case.hex_out("token_signature_data")
    variant = InstallForExtradition(
        sd_aid=bytes.fromhex("D4D4D4D4D4010101"), application_aid=bytes.fromhex("D0D1D2D3D4D50101")
    )
    assert install_token_data(0x10, 0x00, variant) == expected
    # The token itself does not enter the signed data, whatever it is.
    with_token = InstallForExtradition(variant.sd_aid, variant.application_aid, token=bytes(128))
    assert install_token_data(0x10, 0x00, with_token) == expected
    assert split_install_token(with_token.to_bytes(), bytes(128)) == expected[3:]


@pytest.mark.parametrize("case", params("tokens/globalplatformpro.json", "dm-token"))
def test_delete_token_layout_globalplatformpro(case: VectorCase) -> None:
    """An RSA-1024 token appended to DELETE data as 9E 81 80 <128 bytes> (GPPro's DMTokenizer)."""
    apdu = case.hex_in("apdu")
    body = apdu[5 : 5 + apdu[4]]
    data = with_delete_token(body, bytes(128))
    assert len(data) == case.expected["data_length"]
    assert data[1] == int(case.expected["byte1"], 16)
    assert split_delete_token(data, bytes(128)) == body


def test_split_delete_token_requires_the_token_last() -> None:
    with pytest.raises(DecodeError):
        split_delete_token(b"\x9e\x01\xaa\x4f\x05" + bytes(5), b"\xaa")


def test_install_token_data_tables_c4_c5() -> None:
    load = InstallForLoad(bytes.fromhex("A000000151AA"), bytes.fromhex("A000000151000000"), bytes(20), token=b"x")
    # Table C-4: P1 P2 Lc | 06 ELF | 08 SD | 14 hash | 00 load parameters (the token's length excluded)
    expected_body = b"\x06" + load.load_file_aid + b"\x08" + load.sd_aid + b"\x14" + bytes(20) + b"\x00"
    assert install_body(load) == expected_body
    assert install_token_data(0x02, 0x00, load) == b"\x02\x00" + bytes((len(expected_body),)) + expected_body
    install = InstallForInstall(
        load.load_file_aid, bytes.fromhex("A000000151AA01"), bytes.fromhex("A000000151AA0101"), Privileges()
    )
    combined = combined_token_data(0x02, 0x01, load, 0x0C, 0x03, install)
    assert combined == install_token_data(0x02, 0x01, load) + install_token_data(0x0C, 0x03, install)
    assert combined[: 2 + 1 + len(expected_body)] == b"\x02\x01" + bytes((len(expected_body),)) + expected_body


def test_token_data_long_length_is_three_bytes() -> None:
    assert token_data(0x0C, 0x00, bytes(300))[:5] == bytes.fromhex("0C 00 00 01 2C")
    assert token_data(0x0C, 0x00, bytes(255))[:3] == bytes.fromhex("0C 00 FF")


def test_split_install_token_accepts_80_for_128() -> None:
    body = b"\x00\x00\x05" + bytes(5) + b"\x01\x00\x00"
    token = bytes(range(128))
    assert split_install_token(body + b"\x81\x80" + token, token) == body
    assert split_install_token(body + b"\x80" + token, token) == body
    with pytest.raises(DecodeError):
        split_install_token(body + b"\x81\x80" + token[:-1] + b"\xff", token)


@pytest.mark.parametrize("case", params("tokens/standards.json", "aes-cmac", "retail-mac"))
def test_symmetric_signatures_are_b1_2_2_and_b2_2(case: VectorCase) -> None:
    if case.kind == "aes-cmac":
        key = SymmetricKey(KeyType.AES, case.hex_in("key"))
        data, tag = case.hex_in("msg"), case.hex_out("cmac")
    else:  # ISO 9797-1 MAC algorithm 3 with padding method 2 = B.1.2.2 with the B.1.3 padding
        key = SymmetricKey(KeyType.DES3, case.hex_in("key"))
        data, tag = case.hex_in("data"), case.hex_out("mac")
    assert sign(key, data) == tag
    assert verify(key, data, tag)
    assert not verify(key, data + b"\x00", tag)
    assert case.inputs["key"].lower() not in repr(key).lower()


def test_rsa_token_roundtrip_uses_scheme_1() -> None:
    case = next(c for c in cases("tokens/asym.json", "rsa-pkcs1-sha1") if c.expected["valid"])
    n, e, d = (int.from_bytes(case.hex_in(x), "big") for x in ("n", "e", "d"))
    p, q = int.from_bytes(case.hex_in("p"), "big"), int.from_bytes(case.hex_in("q"), "big")
    private = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)
    ).private_key()
    key = load_private_key_pem(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert sign(key, case.hex_in("msg")) == case.hex_in("sig")  # the CAVS signature: tokens are RSA Scheme 1
    assert verify(key.public_key(), case.hex_in("msg"), case.hex_in("sig"))


def test_symmetric_key_lengths() -> None:
    with pytest.raises(ValueError, match="DES3"):
        SymmetricKey(KeyType.DES3, bytes(24))
    SymmetricKey(KeyType.AES, bytes(32))


def test_confirmation_layout_table_11_13() -> None:
    data = ConfirmationData(0x0102, b"\x42\x45", token_identifier=b"\x07")
    assert data.to_bytes() == bytes.fromhex("02 0102 02 4245 01 07")
    confirmation = Confirmation(bytes(16), data)
    raw = confirmation.to_bytes()
    assert raw == bytes((1 + 16 + 8,)) + b"\x10" + bytes(16) + data.to_bytes()
    assert Confirmation.from_response(raw) == confirmation
    assert Confirmation.from_response(b"\x00") is None
    with pytest.raises(DecodeError):
        Confirmation.from_response(raw[:-1])


def test_receipt_data_tables_c11_to_c16() -> None:
    cd = ConfirmationData(1, b"\x01")
    head = cd.to_bytes()
    elf, app, sd, new_sd = b"\xa0" * 5, b"\xa1" * 6, b"\xa2" * 7, b"\xa3" * 8
    assert load_receipt_data(cd, elf, sd) == head + b"\x05" + elf + b"\x07" + sd
    assert install_receipt_data(cd, elf, app) == head + b"\x05" + elf + b"\x06" + app
    assert extradition_receipt_data(cd, sd, app, new_sd) == head + b"\x07" + sd + b"\x06" + app + b"\x08" + new_sd
    assert delete_receipt_data(cd, elf) == head + b"\x05" + elf
    privileges = Privileges.of(Privilege.CARD_RESET).to_bytes()
    assert registry_update_receipt_data(cd, b"", app, b"", privileges, b"") == (
        head + b"\x00\x06" + app + b"\x00\x03" + privileges + b"\x00"
    )


@given(
    counter=st.integers(0, 0xFFFF),
    unique=st.binary(min_size=1, max_size=40),
    token_id=st.none() | st.binary(max_size=20),
    digest=st.none() | st.binary(max_size=64),
    receipt=st.binary(max_size=200),
)
def test_confirmation_roundtrip(
    counter: int, unique: bytes, token_id: bytes | None, digest: bytes | None, receipt: bytes
) -> None:
    if token_id is None:
        digest = None
    confirmation = Confirmation(receipt, ConfirmationData(counter, unique, token_id, digest))
    assert Confirmation.from_response(confirmation.to_bytes()) == confirmation


@given(st.binary(max_size=300))
def test_confirmation_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        Confirmation.from_response(raw)
    except DecodeError:
        pass


def test_public_key_data_tables_11_73_11_75() -> None:
    case = next(c for c in cases("tokens/asym.json", "rsa-pkcs1-sha1") if c.expected["valid"])
    rsa_key = rsa_public_key(case.hex_in("n"), case.hex_in("e"))
    raw = public_key_data(rsa_key)
    assert raw[:3] == b"\xa1\x81\x80" and raw[3:131] == rsa_key.modulus_bytes and raw[131:] == b"\xa0\x01\x03\x00"
    assert parse_public_key_data(raw) == rsa_key
    assert parse_public_key_data(b"\xa1\x80" + rsa_key.modulus_bytes + b"\xa0\x01\x03\x00") == rsa_key  # 80 = 128
    ecdsa = next(iter(cases("tokens/asym.json", "ecdsa")))
    ec_key = EcPublicKey(EcCurve.P256, b"\x04" + ecdsa.hex_in("qx") + ecdsa.hex_in("qy"))
    raw = public_key_data(ec_key)
    assert raw[:2] == b"\xb0\x41" and raw[-4:] == b"\xf0\x01\x00\x00"
    assert parse_public_key_data(raw) == ec_key
    for bad in (raw[:-1], raw + b"\x00", b"\xa0\x01\x03\x00", b"\xb0\x41" + bytes(65) + b"\xf0\x01\x00\x00"):
        with pytest.raises(DecodeError):
            parse_public_key_data(bad)


@given(st.binary(max_size=200))
def test_public_key_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        parse_public_key_data(raw)
    except DecodeError:
        pass
