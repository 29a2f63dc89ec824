"""Key management of a Security Domain beyond PUT KEY: DELETE [key] of every kind of key the emulator keeps,
GENERATE KEY of an SCP11 SK.SD.ECKA, and the CA identifiers of GET DATA FF33 / FF34.

* DELETE [key] (GP Card Specification 2.3.1, 11.2.2.3.2, Table 11-24): ``D0`` key identifier and / or ``D2`` key
  version number, one byte each; every key matching the ones given is deleted (11.2.2.3.2: "all keys with the
  specified Key Identifier or Key Version Number"). A symmetric key set (KIDs 01-03) is deleted whole; the
  content keys (KVN 70, 71, 73; KID 01), the SCP11 SK.SD.ECKA keys (KID 11, 13, 15, with their certificates)
  and PK.CA-KLOC keys (KID 10, 20-2F, with their allowlists) one by one. Nothing matching: 6A88. The card's
  policy (7.6: "the Security Domain provider may apply its own key management policy regarding deletion of
  keys"): a delete that would leave the Security Domain without any key to open a secure channel is refused with
  6985, unless P2 b1 is set on a Security Domain answering as a YubiKey (``getdata_style = "yubikey"``; yubikit's
  ``delete_key(delete_last=True)``), in which case an SCP03 Security Domain gets back the default key set
  (KVN FF, keys 40..4F), as Yubico documents for its Security Domain. The answer is ``00`` (11.2.3.1).
* GENERATE KEY (INS F1; not in GP 2.3.1, taken as yubikit's ``SecurityDomainSession.generate_ec_key`` sends it
  and as Yubico documents it): P1 the KVN replaced (00: a new key), P2 the KID (11, 13 or 15), data the new
  KVN and ``F0 01 <curve>`` (the key parameter reference of GP 2.3.1 Table 11-16 / B.5); the card draws a key
  pair on the curve and answers ``B0 <uncompressed point>``. A replaced key's certificates and issuer go with it.
* GET DATA FF33 (CA-KLOC identifiers) / FF34 (CA-KLCC identifiers): ``42 <key identifier> 83 <KID KVN>`` for every
  key whose CA identifier was stored (STORE DATA ``A6 { 80 00|01, 42, 83 }``); none: 6A88. The form is the one
  yubikit's ``get_supported_ca_identifiers`` reads (pairs of TLVs, identifier first).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.card.scp11_material import CA_KIDS, CURVE_NAMES, SD_KIDS, Scp11Material
from gpchannel.card.state import Application, KeySet
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import parse_pairs, tlv
from gpchannel.crypto.asym import EcCurve
from gpchannel.crypto.keys import KeyType
from gpchannel.errors import (
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    ReferencedDataNotFound,
)
from gpchannel.scp.scp11 import SCP11_CURVES, encode_point

__all__ = ["YUBIKEY_DEFAULT_KVN", "ca_identifiers", "delete_keys", "generate_key", "material_of", "store_ca_issuer"]

YUBIKEY_DEFAULT_KVN = 0xFF
_YUBIKEY_DEFAULT_KEY = bytes(range(0x40, 0x50))  # Yubico: the published default SCP03 key set (KVN FF)


def material_of(sd: Application) -> Scp11Material:
    """The Security Domain's SCP11 material, made (empty, P-256) when it has none."""
    assert sd.sd is not None
    if sd.sd.scp11 is None:
        sd.sd.scp11 = Scp11Material()
    return sd.sd.scp11


def generate_key(sd: Application, command: CommandApdu) -> ResponseApdu:
    """GENERATE KEY of an SK.SD.ECKA (see the module docstring); answers ``B0`` and the new public point."""
    kid, old = command.p2, command.p1
    if kid not in SD_KIDS:
        raise IncorrectP1P2(f"KID {kid:02X} is not an SK.SD.ECKA key (11, 13 or 15)")
    data = command.data
    if len(data) != 4 or data[1:3] != b"\xf0\x01":
        raise IncorrectData("GENERATE KEY data is the new KVN and F0 01 <curve>")
    new_kvn = data[0]
    if new_kvn in (0x00, 0xFF):
        raise IncorrectData(f"KVN {new_kvn:02X} is not a key version number for a new key")
    try:
        curve_name = CURVE_NAMES[EcCurve(data[3])]
    except ValueError:
        raise IncorrectData(f"key parameter reference {data[3]:02X} names no supported curve") from None
    material = material_of(sd)
    if (material.keys or material.cas) and curve_name != material.curve:
        raise IncorrectData(f"this Security Domain's SCP11 keys are on {material.curve}, not {curve_name}")
    existing = {(k.kid, k.kvn) for k in material.keys}
    if old and (kid, old) not in existing:
        raise ReferencedDataNotFound(f"no SCP11 key KID {kid:02X} KVN {old:02X} to replace")
    if (kid, new_kvn) in existing and new_kvn != old:
        raise IncorrectData(f"key KID {kid:02X} KVN {new_kvn:02X} exists; replace it with P1 = {new_kvn:02X}")
    material.curve = curve_name
    private = ec.generate_private_key(SCP11_CURVES[curve_name])
    material.keys = [k for k in material.keys if (k.kid, k.kvn) != (kid, old)]
    material.put_key(kid, new_kvn, private)
    return ResponseApdu(tlv(0xB0, encode_point(private.public_key())))


def _byte_field(items: list[tuple[int, bytes]], tag: int) -> int | None:
    values = [v for t, v in items if t == tag]
    if not values:
        return None
    if len(values) > 1 or len(values[0]) != 1:
        raise IncorrectData(f"DELETE [key]: {tag:02X} is one byte, given once (Table 11-24)")
    return values[0][0]


def delete_keys(sd: Application, items: list[tuple[int, bytes]], *, last: bool) -> ResponseApdu:
    """DELETE [key] with the data objects ``items`` (D0 and / or D2); ``last`` is P2 b1 on a YubiKey-style
    Security Domain. See the module docstring."""
    assert sd.sd is not None
    if any(t not in (0xD0, 0xD2) for t, _ in items):
        raise IncorrectData("DELETE [key] data holds D0 (key identifier) and D2 (key version number) only")
    kid, kvn = _byte_field(items, 0xD0), _byte_field(items, 0xD2)
    if kid is None and kvn is None:
        raise IncorrectData("DELETE [key] needs a key identifier (D0), a key version number (D2) or both")

    def hit(key_kid: int, key_kvn: int) -> bool:
        return (kid is None or kid == key_kid) and (kvn is None or kvn == key_kvn)

    config = sd.sd
    keysets = [k for k in config.keysets if not any(hit(i, k.kvn) for i in (1, 2, 3))]
    content = [k for k in config.content_keys if not hit(1, k.kvn)]
    material = config.scp11
    sd_keys = [k for k in material.keys if not hit(k.kid, k.kvn)] if material else []
    cas = [c for c in material.cas if not hit(c.kid, c.kvn)] if material else []
    before = len(config.keysets) + len(config.content_keys)
    if material is not None:
        before += len(material.keys) + len(material.cas)
    if len(keysets) + len(content) + len(sd_keys) + len(cas) == before:
        raise ReferencedDataNotFound("no key matches the key identifier / key version number given")
    channel_keys_before = len(config.keysets) + (len(material.keys) if material else 0)
    if channel_keys_before and not keysets and not sd_keys:
        if not last:
            raise ConditionsNotSatisfied("the Security Domain's last secure channel key is not deleted")
        if config.scp == 0x03 and config.getdata_style == "yubikey":
            key = _YUBIKEY_DEFAULT_KEY
            keysets = [KeySet(YUBIKEY_DEFAULT_KVN, KeyType.AES, key, key, key, 0)]
    config.keysets, config.content_keys = keysets, content
    if material is not None:
        material.keys, material.cas = sd_keys, cas
    return ResponseApdu(b"\x00")


def ca_identifiers(sd: Application, *, klcc: bool) -> ResponseApdu:
    """GET DATA FF33 (``klcc`` False) or FF34: ``42 identifier 83 KID KVN`` per key with a stored CA identifier."""
    material = sd.sd.scp11 if sd.sd is not None else None
    entries = (material.keys if klcc else material.cas) if material is not None else []
    data = b"".join(tlv(0x42, e.issuer) + tlv(0x83, bytes((e.kid, e.kvn))) for e in entries if e.issuer)
    if not data:
        raise ReferencedDataNotFound(f"no CA-{'KLCC' if klcc else 'KLOC'} identifier is stored")
    return ResponseApdu(data)


def store_ca_issuer(sd: Application, kid: int, kvn: int, template: bytes) -> None:
    """STORE DATA ``A6 { 80 00|01, 42 key identifier, 83 KID KVN }``: the identifier of the CA-KLOC (80 = 00, a CA
    key, KID 10 / 20-2F) or of the CA-KLCC that issued an SK.SD.ECKA's certificate (80 = 01, KID 11 / 13 / 15)."""
    try:
        items = parse_pairs(template)
    except DecodeError:
        raise IncorrectData("the CA identifier template is not BER-TLV") from None
    role = next((v for t, v in items if t == 0x80), None)
    ski = next((v for t, v in items if t == 0x42), None)
    klcc = kid in SD_KIDS
    if role is not None and role != (b"\x01" if klcc else b"\x00"):
        raise IncorrectData(f"80 {role.hex()} does not fit KID {kid:02X} (00: CA-KLOC, 01: CA-KLCC)")
    if not ski or len(ski) > 64:
        raise IncorrectData("the CA key identifier (42) is 1 to 64 bytes")
    material = material_of(sd)
    entry = material.key(kid, kvn) if klcc else material.ca(kid, kvn) if kid in CA_KIDS else None
    if entry is None:
        raise ReferencedDataNotFound(f"no key KID {kid:02X} KVN {kvn:02X} for a CA identifier")
    entry.issuer = ski
