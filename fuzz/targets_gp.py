"""Targets: APDUs and BER-TLV (gpchannel.codec), the GP data objects, install parameters, CAP files, tokens,
receipts and DAP blocks (gpchannel.gp), SCP10 certificates (gpchannel.scp.scp10_cert)."""

from __future__ import annotations

import datetime
import hashlib
import io
import zipfile
from collections.abc import Callable, Sequence
from functools import cache

from fuzz.engine import Target, each
from fuzz.seeds import vector_hex
from gpchannel.codec import tlv
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.rsa import RsaPublicKey
from gpchannel.errors import GPChannelError
from gpchannel.gp import card_data, cplc, dap, install, lifecycle, privileges, registry_data, tokens
from gpchannel.gp.cap import CapFile
from gpchannel.scp import scp10_cert

__all__ = ["TARGETS"]

_TODAY = datetime.date(2026, 11, 26)


def _p1p2(data: bytes) -> tuple[int, int, bytes]:
    """The first two bytes as P1 P2 (the targets that take them with the data), the rest as the data."""
    padded = data + b"\x00\x00"
    return padded[0], padded[1], data[2:]


def _command_apdu(data: bytes) -> None:
    apdu = CommandApdu.from_bytes(data)
    assert CommandApdu.from_bytes(apdu.to_bytes()) == apdu, "to_bytes/from_bytes do not round-trip"


_apdu = each(_command_apdu, ResponseApdu.from_bytes)


def _tlv_all(data: bytes) -> None:
    items = tlv.parse_all(data, skip_padding=bool(data and data[0] & 1))
    tlv.find(items, 0x4F)
    for item in items:
        list(item.walk())
        assert tlv.Tlv.from_bytes(item.to_bytes()) == item, "to_bytes/from_bytes do not round-trip"


_tlv = each(_tlv_all, lambda d: tlv.decode_length(d, 1), tlv.parse_one, tlv.Tlv.from_bytes)


def _card_data(data: bytes) -> None:
    card_data.CardRecognitionData.from_bytes(data)


def _card_data_others(data: bytes) -> None:
    which = data[:1]
    rest = data[1:]
    if which == b"\x00":
        card_data.CardCapabilities.from_bytes(rest)
    elif which == b"\x01":
        card_data.decode_key_information_template(rest)
    elif which == b"\x02":
        card_data.KeyInformation.from_bytes(rest)
    elif which == b"\x03":
        card_data.ExtendedCardResources.from_bytes(rest)
    elif which == b"\x04":
        card_data.decode_oid(rest)
    else:
        card_data.decode_simple(0x42 if which == b"\x05" else 0x45, rest)


def _registry(data: bytes) -> None:
    p1, p2, rest = _p1p2(data)
    registry_data.decode_status_response(rest, p1, p2)


def _lifecycle(data: bytes) -> None:
    a = data[0] if data else 0
    lifecycle.CardLifeCycle.from_byte(a)
    lifecycle.application_state_name(a)
    lifecycle.sd_state_name(a)


def _transitions(data: bytes) -> None:
    """Documented: ValueError for a refused transition (the card answers 6985 for it, card/content.py)."""
    a, b, _ = _p1p2(data)
    lifecycle.check_application_transition(a, b)
    lifecycle.check_sd_transition(a, b)


def _install(data: bytes) -> None:
    p1, p2, rest = _p1p2(data)
    install.parse_install(p1, p2, rest)


def _install_params(data: bytes) -> None:
    install.InstallParameters.from_bytes(data, require_c9=bool(data[:1] == b"\xc9"))


def _drbg(seed: bytes) -> Callable[[int], bytes]:
    """Deterministic randomness (SHA-256 in counter mode) for the test PKI's keys."""
    state = {"n": 0}

    def take(k: int) -> bytes:
        out = b""
        while len(out) < k:
            state["n"] += 1
            out += hashlib.sha256(seed + state["n"].to_bytes(8, "big")).digest()
        return out[:k]

    return take


@cache
def _anchor() -> scp10_cert.TestPki:
    return scp10_cert.make_test_pki(_drbg(b"fuzz"), _TODAY)


def _cert_seeds() -> Sequence[bytes]:
    pki = _anchor()
    return [c.to_bytes() for c in pki.oce_chain] + [pki.card_certificate.to_bytes(), *vector_hex("scp10")]


def _certificate(data: bytes) -> None:
    pki = _anchor()
    issuer: RsaPublicKey = pki.tp_ex.public if data[-1:] < b"\x80" else pki.ka_ex.public
    scp10_cert.verify_certificate(data, issuer, self_descriptive=bool(data[-1:] and data[-1] & 1), now=_TODAY)
    scp10_cert.CertificateBody.from_tlv_bytes(data)


def _certificate_body(data: bytes) -> None:
    scp10_cert.CertificateBody.from_value_bytes(data)


def _cap_seeds() -> Sequence[bytes]:
    def component(tag: int, body: bytes) -> bytes:
        return bytes((tag,)) + len(body).to_bytes(2, "big") + body

    aid = bytes.fromhex("A0000000620301")
    parts = {
        "Header": component(1, b"\xde\xca\xff\xed\x01\x02\x04\x00\x01" + bytes((len(aid),)) + aid),
        "Directory": component(2, bytes(range(30))),
        "Applet": component(3, b"\x01\x08" + bytes.fromhex("A000000062030101") + b"\x00\x10"),
        "Import": component(4, b"\x01\x00\x01\x07" + bytes.fromhex("A0000000620101")),
        "ConstantPool": component(5, b"\x00\x02" + bytes(8)),
        "Class": component(6, bytes(range(12))),
        "Method": component(7, b"\x00\x18\x8c\x00\x01\x7a"),
        "StaticField": component(8, bytes(10)),
        "RefLocation": component(9, b"\x00\x01\x05\x00\x01\x07"),
    }
    out = []
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        raw = io.BytesIO()
        with zipfile.ZipFile(raw, "w", method) as z:
            for name, body in parts.items():
                z.writestr(f"com/example/javacard/{name}.cap", body)
        out.append(raw.getvalue())
    return out


def _cap(data: bytes) -> None:
    cap = CapFile.from_bytes(data)
    cap.load_file()


def _token_seeds() -> Sequence[bytes]:
    return vector_hex("tokens")


def _tokens(data: bytes) -> None:
    which, rest = data[:1], data[1:]
    if which == b"\x00":
        tokens.parse_public_key_data(rest)
    else:
        tokens.ConfirmationData.from_bytes(rest)


def _dap(data: bytes) -> None:
    if data[:1] == b"\xe2" and len(data) % 3:
        dap.DapBlock.from_bytes(data)
    else:
        dap.LoadFileParts.from_bytes(data)


def _dap_seeds() -> Sequence[bytes]:
    block = bytes.fromhex("E2 14 4F 08 A000000151000000 C3 08 0102030405060708")
    return [block + bytes.fromhex("C4 04 01020304"), block, bytes.fromhex("D3 08 0000000000000000 D4 02 0102")]


_GP = ("gp", "codec", "card", "applets")
TARGETS: tuple[Target, ...] = (
    Target("codec.apdu", lambda: vector_hex("codec", "host", "card", max_size=600), _apdu),
    Target("codec.tlv", lambda: vector_hex(*_GP), _tlv),
    Target("gp.card_data", lambda: vector_hex("gp/card-data.json", "gp"), _card_data),
    Target(
        "gp.card_data.objects",
        lambda: [b"\x00" + s for s in vector_hex("gp")] + [b"\x01" + s for s in vector_hex("gp")],
        _card_data_others,
    ),
    Target("gp.cplc", lambda: vector_hex("gp/cplc.json"), lambda d: cplc.Cplc.from_bytes(d)),
    Target(
        "gp.registry_data",
        lambda: (
            [b"\x80\x02" + s for s in vector_hex("gp/registry-parse.json")]
            + [b"\x40\x02" + s for s in vector_hex("gp")]
        ),
        _registry,
    ),
    Target(
        "gp.privileges",
        lambda: vector_hex("gp/privileges.json", max_size=3),
        lambda d: privileges.Privileges.from_bytes(d),
    ),
    Target(
        "gp.lifecycle",
        lambda: [bytes((a, b)) for a in (1, 3, 7, 0x0F, 0x7F, 0x83, 0x87, 0xFF) for b in (3, 7, 0x83)],
        _lifecycle,
    ),
    Target(
        "gp.lifecycle.transitions",
        lambda: [bytes((a, b)) for a in (3, 7, 0x0F, 0x87) for b in (7, 0x0F, 0x87)],
        _transitions,
        (GPChannelError, ValueError),
    ),
    Target("gp.install", lambda: [b"\x0c\x00" + s for s in vector_hex("gp", "tokens")], _install),
    Target("gp.install_params", lambda: vector_hex("gp/install-params.json", "gp"), _install_params),
    Target("gp.cap", _cap_seeds, _cap, max_size=8192),
    Target("gp.tokens", lambda: [b"\x00" + s for s in _token_seeds()] + [b"\x01" + s for s in _token_seeds()], _tokens),
    Target("gp.dap", _dap_seeds, _dap),
    Target("scp.scp10_cert", _cert_seeds, _certificate),
    Target("scp.scp10_cert.body", lambda: [c[4:] for c in _cert_seeds()], _certificate_body),
)
