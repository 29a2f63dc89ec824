"""Cards for the card targets, in memory: the emulator's Card built from a profile, with (or without) a secure
channel opened by the host library through the card's byte interface, exactly as a reader would. Each is built
once; a target deep-copies it per input so that every input starts from the same card (reproducible)."""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives import serialization

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.host.card import GpCard
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.scp.common import HostChannel, ScpProtocol, SecurityLevel
from gpchannel.scp.scp10 import Scp10Option
from gpchannel.scp.scp10_cert import TestPki, make_test_pki
from gpchannel.scp.scp10_host import Scp10Host
from gpchannel.scp.scp11 import Scp11Variant
from gpchannel.scp.scp11_host import Scp11Host
from gpchannel.scp.scp11_pki import Scp11Pki, make_pki

__all__ = ["ISD", "OTA_PROFILE", "CardUnderTest", "drbg", "fresh"]

ISD = bytes.fromhex("A000000151000000")
TODAY = datetime.date(2026, 11, 26)
_KEY = "404142434445464748494A4B4C4D4E4F"
OTA_PROFILE = """
[[ota.keysets]]
kvn = 1
kic = "000102030405060708090A0B0C0D0E0F"
kic_algorithm = "aes-cbc"
kid = "101112131415161718191A1B1C1D1E1F"
kid_algorithm = "aes-cmac"
counter = 0

[[ota.tars]]
tar = "000000"
target = "A000000151000000"
"""


def drbg(seed: bytes) -> Callable[[int], bytes]:
    """Deterministic randomness (SHA-256 in counter mode)."""
    state = [0]

    def take(k: int) -> bytes:
        out = b""
        while len(out) < k:
            state[0] += 1
            out += hashlib.sha256(seed + state[0].to_bytes(8, "big")).digest()
        return out[:k]

    return take


def _profile(scp: str, i: str) -> str:
    key_type = "aes" if scp == "03" else "des3"
    return (
        f"""
[card]
iccid = "8988211000000000001"

[isd]
aid = "A000000151000000"
scp = "{scp}"
i = "{i}"

[[isd.keysets]]
kvn = 0x30
type = "{key_type}"
enc = "{_KEY}"
mac = "{_KEY}"
dek = "{_KEY}"

[[applications]]
aid = "A0000000871002FF49FF0589"
kind = "echo"
"""
        + OTA_PROFILE
    )


@cache
def _pki() -> TestPki:
    return make_test_pki(drbg(b"fuzz-pki"), TODAY)


def _pem(label: str, data: bytes) -> str:
    body = base64.b64encode(data).decode()
    return "\n".join(
        [f"-----BEGIN {label}-----", *(body[i : i + 64] for i in range(0, len(body), 64)), f"-----END {label}-----"]
    )


def _scp10_profile(i: str) -> str:
    p = _pki()
    return f"""
[card]
iccid = "8988211000000000001"

[isd]
aid = "A000000151000000"
scp = "10"
i = "{i}"

[isd.scp10]
private_key = \"\"\"{p.card.to_pem().decode()}\"\"\"
certificate = \"\"\"{_pem("SCP10 CERTIFICATE", p.card_certificate.to_bytes())}\"\"\"
trust_anchor = \"\"\"{p.tp_ex.public.to_pem().decode()}\"\"\"

[[applications]]
aid = "A0000000871002FF49FF0589"
kind = "echo"
"""


_NOON = datetime.datetime.combine(TODAY, datetime.time(12), datetime.UTC)


@cache
def _scp11_pki() -> Scp11Pki:
    return make_pki(_NOON)


def _scp11_profile() -> str:
    """The SCP03 ISD with SCP11 a/b/c keys beside it (inline PEM), the CA-KLOC as KID 10 KVN 03."""
    p = _scp11_pki()
    pem = serialization.Encoding.PEM
    ca = p.card_ca.public_bytes(pem).decode()
    tables = ['\n[isd.scp11]\ncurve = "P-256"']
    for kid, key in sorted(p.sd_keys.items()):
        private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        cert = p.sd_certs[kid].public_bytes(pem).decode()
        tables.append(
            f'[[isd.scp11.keys]]\nkid = {kid}\nkvn = 1\nprivate_key = """{private}"""\n'
            f'certificates = ["""{ca}""", """{cert}"""]'
        )
    tables.append(f'[[isd.scp11.ca]]\nkid = 0x10\nkvn = 3\ncertificate = """{p.oce_ca.public_bytes(pem).decode()}"""')
    return _profile("03", "70") + "\n".join(tables) + "\n"


def _scp11_host(card: Card, variant: Scp11Variant) -> Scp11Host:
    p = _scp11_pki()
    oce = variant.oce_authenticated
    host = Scp11Host(
        variant,
        kvn=1,
        now=_NOON,
        card_anchor=p.card_ca_key.public_key(),
        oce_key=p.oce_key if oce else None,
        oce_chain=(p.oce_ca, p.oce_cert) if oce else (),
        oce_ca=(0x10, 0x03),
    )

    def transmit(command: CommandApdu) -> ResponseApdu:  # the chain (BF21) is longer than one answer: 61xx
        response = ResponseApdu.from_bytes(card.process(command.to_bytes()))
        data = response.data
        while response.sw >> 8 == 0x61:
            response = ResponseApdu.from_bytes(card.process(bytes.fromhex("00C0000000")))
            data += response.data
        return ResponseApdu(data, response.sw)

    card.process(bytes.fromhex("00A4040008") + ISD)
    host.run(transmit)
    return host


@dataclass
class CardUnderTest:
    card: Card
    host: HostChannel | None

    def exchange(self, raw: bytes) -> bytes:
        return self.card.process(raw)


class _Wire:
    def __init__(self, card: Card) -> None:
        self.card = card

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        return ResponseApdu.from_bytes(self.card.process(command.to_bytes()))

    def close(self) -> None:
        pass


def _card(text: str) -> Card:
    state = load_profile(text)
    store = MemoryStore()
    store.commit(state)
    return Card(state, store, random=drbg(b"card"), today=lambda: TODAY)


@cache
def _template(spec: str) -> CardUnderTest:
    """``none`` (no session), ``scp01-15-03``, ``scp02-55-03``, ``scp03-70-33``, ``scp10-02-03`` (protocol, i,
    level), ``scp11-a-3C`` (SCP11 variant, key usage)."""
    if spec == "none":
        return CardUnderTest(_card(_profile("03", "70")), None)
    protocol, i, level = spec.split("-")
    scp = protocol[3:]
    if scp == "11":  # scp11-a-3C: the variant, the key usage (3C: C-MAC, C-DEC, R-MAC, R-ENC)
        card = _card(_scp11_profile())
        return CardUnderTest(card, _scp11_host(card, Scp11Variant.from_name(i)))
    card = _card(_scp10_profile(i) if scp == "10" else _profile(scp, i))
    session = CardSession(_Wire(card), random=drbg(b"host"))
    gp = GpCard.connect(session, ISD)
    if scp == "10":
        p = _pki()

        def factory(lvl: SecurityLevel, channel: int) -> Scp10Host:
            chain = tuple(c.to_bytes() for c in p.oce_chain)
            return Scp10Host(
                Scp10Option(int(i, 16)),
                int(lvl),
                p.oce,
                chain,
                p.oce_chain[-1].body.subject,
                drbg(b"oce"),
                TODAY,
                trust_point=p.tp_in.public,
                channel=channel,
            )

        options = ChannelOptions(lambda _: None, SecurityLevel(int(level, 16)), ScpProtocol.SCP10, driver=factory)  # type: ignore[arg-type, return-value]
        gp.open_channel(options)
    else:
        key_type = KeyType.AES if scp == "03" else KeyType.DES3
        keys = StaticKeys.single(bytes.fromhex(_KEY), 0x30, key_type)
        gp.session.open_secure_channel(
            ChannelOptions(keys, SecurityLevel(int(level, 16)), ScpProtocol(int(scp, 16)), int(i, 16), 0x30), aid=ISD
        )
    assert session.secure is not None and session.secure.is_open
    return CardUnderTest(card, session.secure)


def fresh(spec: str) -> CardUnderTest:
    """A deep copy of the card (and its host channel) built for ``spec``."""
    return copy.deepcopy(_template(spec))
