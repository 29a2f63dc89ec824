"""Key management of a Security Domain from the host, beyond PUT KEY: DELETE [key] (GP Card Specification 2.3.1,
11.2.2.3.2) and GENERATE KEY of an SCP11 SK.SD.ECKA (INS F1, as YubiKeys take it; docs/scp11.md), through an open
secure channel (Table 11-2; SCP11b is not enough, the off-card entity must be authenticated).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.codec.apdu import CommandApdu, cla_for_channel
from gpchannel.codec.tlv import parse_pairs, tlv
from gpchannel.crypto.asym import EcCurve
from gpchannel.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from gpchannel.host.session import CardSession
from gpchannel.scp.scp11 import SCP11_CURVES, public_key_from_point

__all__ = ["delete_key", "delete_key_command", "generate_key_command", "generate_sd_key"]

_REFERENCES = {
    "P-256": EcCurve.P256,
    "P-384": EcCurve.P384,
    "P-521": EcCurve.P521,
    "brainpoolP256r1": EcCurve.BRAINPOOL_P256R1,
    "brainpoolP384r1": EcCurve.BRAINPOOL_P384R1,
    "brainpoolP512r1": EcCurve.BRAINPOOL_P512R1,
}


def _open(session: CardSession, what: str) -> None:
    if session.secure is None or not session.secure.is_open:
        raise LocalProtocolError(f"{what} needs an open secure channel (GP 2.3.1 Table 11-2)")


def delete_key_command(kid: int | None, kvn: int | None, *, last: bool = False, channel: int = 0) -> CommandApdu:
    """DELETE [key]: ``D0`` KID and / or ``D2`` KVN; P2 b1 (``last``) is YubiKey's "delete the last key"."""
    if kid is None and kvn is None:
        raise ValueError("give a key identifier, a key version number or both")
    for value in (kid, kvn):
        if value is not None and not 0 <= value <= 0xFF:
            raise ValueError(f"a KID or KVN is a byte, got {value}")
    data = (tlv(0xD0, bytes((kid,))) if kid is not None else b"") + (
        tlv(0xD2, bytes((kvn,))) if kvn is not None else b""
    )
    return CommandApdu(cla_for_channel(0x80, channel), 0xE4, 0x00, 0x01 if last else 0x00, data, le=256)


def delete_key(session: CardSession, kid: int | None, kvn: int | None, *, last: bool = False) -> None:
    """DELETE [key] in the open secure channel; CardStatusError with the card's refusal (6A88: nothing matches,
    6985: the last key without ``last``)."""
    _open(session, "DELETE [key]")
    response = session.send(delete_key_command(kid, kvn, last=last, channel=session.channel), "DELETE [key]")
    if response.data not in (b"", b"\x00"):
        raise RemoteProtocolError(f"DELETE [key] answered {response.data.hex().upper()}; expected 00 (11.2.3.1)")


def generate_key_command(
    kid: int, kvn: int, curve: str = "P-256", *, replace_kvn: int = 0, channel: int = 0
) -> CommandApdu:
    """GENERATE KEY: P1 the KVN replaced (0: a new key), P2 the KID; data the new KVN and ``F0 01 <curve>``."""
    if curve not in _REFERENCES:
        raise ValueError(f"{curve!r} is none of {', '.join(_REFERENCES)}")
    if not (0 <= kid <= 0xFF and 0 <= kvn <= 0xFF and 0 <= replace_kvn <= 0xFF):
        raise ValueError("KID and KVNs are bytes")
    data = bytes((kvn,)) + tlv(0xF0, bytes((_REFERENCES[curve],)))
    return CommandApdu(cla_for_channel(0x80, channel), 0xF1, replace_kvn, kid, data, le=256)


def generate_sd_key(
    session: CardSession, kid: int, kvn: int, curve: str = "P-256", *, replace_kvn: int = 0
) -> ec.EllipticCurvePublicKey:
    """GENERATE KEY in the open secure channel; returns the new PK.SD.ECKA (``B0`` point on ``curve``).
    RemoteProtocolError when the answer is not one."""
    _open(session, "GENERATE KEY")
    command = generate_key_command(kid, kvn, curve, replace_kvn=replace_kvn, channel=session.channel)
    response = session.send(command, "GENERATE KEY")
    try:
        items = parse_pairs(response.data)
        if len(items) != 1 or items[0][0] != 0xB0:
            raise DecodeError("expected one B0 object")
        return public_key_from_point(SCP11_CURVES[curve], items[0][1])
    except DecodeError as exc:
        raise RemoteProtocolError(f"GENERATE KEY answered {response.data.hex().upper()}: {exc}") from None
