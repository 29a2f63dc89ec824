"""Key loading with STORE DATA (GP Card Specification 2.3.1, 11.11.4.1: symmetric keys).

DGI ``00B9`` carries one ``B9`` control reference template per key (``95`` usage, ``96`` access, ``80`` key
type, ``81`` length, ``82`` key identifier, ``83`` KVN, ``84`` KCV); each is followed, in order, by a DGI
``8113`` with that key enciphered under the secure channel's DEK rule (right-padded to the block size). A key
whose check value does not match answers 6982 (11.11.4.1). The keys of one KVN must make a whole key set
(identifiers 1, 2, 3: ENC, MAC, DEK), which is added, or replaces the key set of that KVN with its sequence
counter reset (Amendment D 6.2.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpchannel.card.state import Application, KeySet
from gpchannel.codec.tlv import first_value, parse_pairs
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import KeyType, kcv
from gpchannel.errors import ConditionsNotSatisfied, DecodeError, IncorrectData, SecurityNotSatisfied
from gpchannel.scp.common import CardChannel

__all__ = ["DGI_KEY_CRT", "DGI_SECRET_KEY", "store_keys"]

DGI_KEY_CRT = 0x00B9
DGI_SECRET_KEY = 0x8113
_TYPES = {0x80: KeyType.DES3, 0x88: KeyType.AES}


@dataclass(frozen=True, slots=True)
class _Crt:
    key_type: KeyType
    length: int
    key_id: int
    kvn: int
    check: bytes


def _one_byte(items: list[tuple[int, bytes]], tag: int, what: str) -> int:
    value = first_value(items, tag)
    if value is None or not 1 <= len(value) <= 2:
        raise IncorrectData(f"key CRT: {what} (tag {tag:02X}) is missing or malformed")
    return int.from_bytes(value, "big")


def _crts(value: bytes) -> list[_Crt]:
    try:
        templates = parse_pairs(value)
        out = []
        for tag, body in templates:
            if tag != 0xB9:
                raise IncorrectData(f"DGI 00B9 holds B9 templates, got tag {tag:X}")
            items = parse_pairs(body)
            if first_value(items, 0x95) is None:
                raise IncorrectData("key CRT without its key usage qualifier (95)")
            key_type = _TYPES.get(_one_byte(items, 0x80, "key type"))
            if key_type is None:
                raise IncorrectData("key CRT: only DES (80) and AES (88) secret keys are loaded")
            check = first_value(items, 0x84)
            if check is None or len(check) != 3:
                raise IncorrectData("key CRT: the key check value (84) is 3 bytes")
            out.append(
                _Crt(
                    key_type,
                    _one_byte(items, 0x81, "key length"),
                    _one_byte(items, 0x82, "key identifier"),
                    _one_byte(items, 0x83, "key version number"),
                    check,
                )
            )
        return out
    except DecodeError:
        raise IncorrectData("DGI 00B9 is not BER-TLV") from None


def store_keys(sd: Application, session: CardChannel, objects: list[tuple[int, bytes]]) -> None:
    """Apply the key DGIs of one STORE DATA command to ``sd``'s key sets (validating everything first)."""
    assert sd.sd is not None
    pending: list[_Crt] = []
    keys: dict[int, dict[int, tuple[KeyType, bytes]]] = {}
    for dgi, value in objects:
        if dgi == DGI_KEY_CRT:
            pending.extend(_crts(value))
            continue
        if not pending:
            raise IncorrectData("DGI 8113 must follow the DGI 00B9 that describes it (11.11.4.1.1)")
        crt = pending.pop(0)
        if not value or len(value) % 8 or len(value) < crt.length:
            raise IncorrectData("DGI 8113 holds the enciphered key, padded to the cipher's block size")
        clear = session.decrypt_key(value)[: crt.length]
        if crt.length not in crt.key_type.allowed_lengths:
            raise IncorrectData(f"a {crt.key_type.name} key is not {crt.length} bytes")
        if not constant_time_equal(kcv(clear, crt.key_type), crt.check):
            raise SecurityNotSatisfied("the loaded key does not match its key check value (11.11.4.1)")
        per_kvn = keys.setdefault(crt.kvn, {})
        if crt.key_id in per_kvn:
            raise IncorrectData(f"key {crt.key_id:02X} of KVN {crt.kvn:02X} is given twice")
        per_kvn[crt.key_id] = (crt.key_type, clear)
    if pending:
        raise IncorrectData("a key CRT (00B9) has no DGI 8113 with its value")
    expected = KeyType.AES if sd.sd.scp in (0x03, 0x11) else KeyType.DES3
    new_sets: list[KeySet] = []
    for kvn, per_id in keys.items():
        if sorted(per_id) != [1, 2, 3]:
            raise ConditionsNotSatisfied(f"KVN {kvn:02X}: a key set is loaded whole (key identifiers 01, 02, 03)")
        types = {t for t, _ in per_id.values()}
        lengths = {len(k) for _, k in per_id.values()}
        if types != {expected} or len(lengths) != 1 or not 1 <= kvn <= 0x7F:
            raise IncorrectData(f"KVN {kvn:02X}: three {expected.name} keys of one length under KVN 01..7F")
        new_sets.append(KeySet(kvn, expected, per_id[1][1], per_id[2][1], per_id[3][1], 0))
    for new in new_sets:
        index = next((n for n, k in enumerate(sd.sd.keysets) if k.kvn == new.kvn), None)
        if index is None:
            sd.sd.keysets.append(new)
        else:
            sd.sd.keysets[index] = new
