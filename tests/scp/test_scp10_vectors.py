"""SCP10 cryptographic steps against vectors made with the OpenSSL command line (tests/vectors/scp10/).

Each case's expected bytes were computed by ``make_vectors.sh`` with openssl, xxd and bc, not by gpchannel.
"""

from __future__ import annotations

import datetime

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.rsa import (
    RsaPrivateKey,
    iso9796_2_ds1_open,
    iso9796_2_ds1_sign,
    pkcs1_v15_sign_sha1,
    pkcs1_v15_verify_sha1,
)
from gpchannel.errors import AuthenticationError
from gpchannel.scp.scp10 import (
    Crt,
    KeyUsage,
    SessionKeyData,
    SessionKeys,
    derive_agreement_keys,
    pkcs1_type2_block,
    pkcs1_type2_open,
)
from gpchannel.scp.scp10 import leftmost_key_data as _leftmost_key_data
from gpchannel.scp.scp10_cert import CertificateBody, issue_certificate, verify_certificate
from gpchannel.scp.scp10_sm import SecureMessaging
from tests.vectors import VectorCase, cases

FILE = "scp10/openssl.json"


def one(kind: str) -> VectorCase:
    (case,) = cases(FILE, kind)
    return case


def key(case: VectorCase, name: str) -> RsaPrivateKey:
    return RsaPrivateKey.from_pem_or_der(str(case.inputs[name]).encode())


def _keys(**values: tuple[bytes, int]) -> SessionKeys:
    """Session keys for secure messaging tests: usage name -> (key, counter)."""
    out = SessionKeys()
    for name, (value, counter) in values.items():
        out.add(KeyUsage(name.replace("_", "-")), value, counter)
    return out


def test_every_vector_names_openssl() -> None:
    all_cases = cases(FILE)
    assert len(all_cases) == 13
    assert all(c.source.startswith("openssl ") for c in all_cases)


def test_pso_decipher_block_and_cryptogram() -> None:
    case = one("pso_decipher")
    card = key(case, "card_key")
    crts = (
        Crt(0xB4, 0x30, key=case.hex_in("mac_key"), counter=case.hex_in("mac_counter")),
        Crt(0xB8, 0x30, key=case.hex_in("enc_key")),
        Crt(0xB8, 0xC0, key=case.hex_in("dek")),
    )
    data = SessionKeyData(int(case.inputs["level"], 16), crts)
    assert data.to_bytes() == case.hex_out("session_key_data")
    block = pkcs1_type2_block(data.to_bytes(), card.public.size)
    assert block == case.hex_out("block")
    assert card.public.raw(block) == case.hex_out("cryptogram")
    # and the card side opens openssl's cryptogram
    opened = SessionKeyData.from_bytes(pkcs1_type2_open(card.raw(case.hex_out("cryptogram"))))
    assert opened == data
    keys = SessionKeys.from_transport(opened.crts)
    assert keys.get(KeyUsage.R_MAC).counter == int.from_bytes(case.hex_in("mac_counter"), "big")


@pytest.mark.parametrize(
    ("kind", "signer", "parts"),
    [
        ("oce_signature_transport", "oce_key", ("session_key_data", "card_challenge")),
        ("card_signature_transport", "card_key", ("session_keys", "oce_challenge")),
    ],
)
def test_pkcs1_signatures(kind: str, signer: str, parts: tuple[str, str]) -> None:
    case = one(kind)
    sk = key(case, signer)
    message = case.hex_in(parts[0]) + case.hex_in(parts[1])
    assert pkcs1_v15_sign_sha1(sk, message) == case.hex_out("signature")
    assert pkcs1_v15_verify_sha1(sk.public, message, case.hex_out("signature"))
    assert not pkcs1_v15_verify_sha1(sk.public, message + b"\x00", case.hex_out("signature"))


def test_oce_signature_agreement() -> None:
    case = one("oce_signature_agreement")
    oce, card = key(case, "oce_key"), key(case, "card_key")
    middle = case.hex_in("session_key_data") + case.hex_in("oes")
    rest = case.hex_in("card_challenge") + case.hex_in("card_id")
    sigma = iso9796_2_ds1_sign(oce, case.hex_in("rpd") + middle, rest)
    assert sigma == case.hex_out("sigma")
    assert card.public.raw(sigma) == case.hex_out("encrypted")
    # card side: decrypt with SK.SD, recover with PK.OCE, split RPD from the security level and CRTs
    recovered, digest = iso9796_2_ds1_open(oce.public, card.raw(case.hex_out("encrypted")))
    assert b"\x6a" + recovered + digest + b"\xbc" == case.hex_out("block")
    parsed = _leftmost_key_data(recovered[:-32])
    assert parsed.to_bytes() == case.hex_in("session_key_data")


def test_card_signature_agreement() -> None:
    case = one("card_signature_agreement")
    card, oce = key(case, "card_key"), key(case, "oce_key")
    sigma = iso9796_2_ds1_sign(
        card, case.hex_in("rp") + case.hex_in("cs"), case.hex_in("oce_challenge") + case.hex_in("oce_id")
    )
    assert sigma == case.hex_out("sigma")
    assert oce.public.raw(sigma) == case.hex_out("encrypted")
    recovered, _ = iso9796_2_ds1_open(card.public, oce.raw(case.hex_out("encrypted")))
    assert recovered[-32:] == case.hex_in("cs")


def test_agreement_keys() -> None:
    case = one("agreement_keys")
    crts = SessionKeyData.from_bytes(case.hex_in("crts")).crts
    keys = derive_agreement_keys(crts, case.hex_in("oes"), case.hex_in("cs"))
    counter = int.from_bytes(case.hex_out("counter"), "big")
    for usage, name in ((KeyUsage.C_MAC, "mac_key"), (KeyUsage.R_ENC, "enc_key"), (KeyUsage.DEK_COMMAND, "dek")):
        assert keys.get(usage).value == case.hex_out(name)
    assert keys.get(KeyUsage.R_MAC).counter == counter


@pytest.mark.parametrize("kind", ["command_cmac", "command_cenc_cmac", "command_cenc"])
def test_command_protection(kind: str) -> None:
    case = one(kind)
    counter = int.from_bytes(case.hex_in("counter"), "big") if "counter" in case.inputs else 0
    values: dict[str, tuple[bytes, int]] = {}
    if "mac_key" in case.inputs:
        values["c_mac"] = (case.hex_in("mac_key"), counter)
    if "enc_key" in case.inputs:
        values["c_enc"] = (case.hex_in("enc_key"), 0)
    level = int(case.inputs["level"], 16)
    command = CommandApdu.from_bytes(case.hex_in("command"))
    protected = SecureMessaging(level, _keys(**values)).protect_command(command)
    assert protected.to_bytes() == case.hex_out("protected")
    card_side = SecureMessaging(level, _keys(**values))
    assert card_side.unprotect_command(CommandApdu.from_bytes(case.hex_out("protected"))) == command


def test_response_protection() -> None:
    case = one("response_rmac_renc")
    counter = int.from_bytes(case.hex_in("counter"), "big")
    response = ResponseApdu(case.hex_in("data"), 0x9000)
    both = _keys(r_mac=(case.hex_in("rmac_key"), counter), r_enc=(case.hex_in("renc_key"), 0))
    assert SecureMessaging(0x30, both).protect_response(response).to_bytes() == case.hex_out("protected")
    mac_only = _keys(r_mac=(case.hex_in("rmac_key"), counter))
    assert SecureMessaging(0x10, mac_only).protect_response(response).to_bytes() == case.hex_out("rmac_only")
    host = SecureMessaging(0x30, _keys(r_mac=(case.hex_in("rmac_key"), counter), r_enc=(case.hex_in("renc_key"), 0)))
    assert host.unprotect_response(ResponseApdu.from_bytes(case.hex_out("protected"))) == response


def test_certificate_self_descriptive() -> None:
    case = one("certificate_self_descriptive")
    issuer, subject = key(case, "issuer_key"), key(case, "subject_key")
    body = CertificateBody(
        case.hex_in("issuer"),
        case.hex_in("subject"),
        subject.public,
        datetime.date.fromisoformat(case.inputs["effective"]),
        datetime.date.fromisoformat(case.inputs["expiry"]),
    )
    assert issue_certificate(issuer, body).to_bytes() == case.hex_out("certificate")
    cert = verify_certificate(
        case.hex_out("certificate"), issuer.public, self_descriptive=True, now=datetime.date(2026, 6, 1)
    )
    assert cert.body == body


def test_certificate_with_recovery_non_self_descriptive() -> None:
    case = one("certificate_recovery_values")
    issuer, subject = key(case, "issuer_key"), key(case, "subject_key")
    body = CertificateBody(
        case.hex_in("issuer"),
        case.hex_in("subject"),
        subject.public,
        datetime.date.fromisoformat(case.inputs["effective"]),
        datetime.date.fromisoformat(case.inputs["expiry"]),
    )
    made = issue_certificate(issuer, body, self_descriptive=False, recovery=True)
    assert made.to_bytes() == case.hex_out("certificate")
    cert = verify_certificate(
        case.hex_out("certificate"), issuer.public, self_descriptive=False, now=datetime.date(2026, 6, 1)
    )
    assert cert.body == body and cert.recovery
    with pytest.raises(AuthenticationError):
        verify_certificate(case.hex_out("certificate"), subject.public, self_descriptive=False, now=cert.body.expiry)


def test_sensitive_data() -> None:
    case = one("sensitive_data")
    for key_type, name in ((None, "ecb"), (0x82, "cbc")):
        keys = SessionKeys()
        keys.add(KeyUsage.DEK_COMMAND, case.hex_in("dek"), key_type=key_type)
        keys.add(KeyUsage.DEK_RESPONSE, case.hex_in("dek"), key_type=key_type)
        sm = SecureMessaging(0, keys)
        assert sm.crypt_sensitive(KeyUsage.DEK_COMMAND, case.hex_in("data"), encrypt=True) == case.hex_out(name)
        assert sm.crypt_sensitive(KeyUsage.DEK_RESPONSE, case.hex_out(name), encrypt=False) == case.hex_in("data")
