"""Card inventory import: a CSV or JSON file of cards with their numbers, SCP81 PSK and SCP80 key sets, parsed and
checked here, written into the Repository (cards, counters) and the KeyProvider (keys) by
:mod:`gpchannel.server.inventory_import`.

**CSV** (RFC 4180, UTF-8, a header line naming the columns; one row per card and SCP80 key set; rows with the
same ICCID add key sets to the same card)::

    iccid,msisdn,psk_identity,psk,psk_kvn,kvn,kic,kic_algorithm,kid,kid_algorithm,tar,spi,counter
    8988211000000000001,4915550001,8988211000000000001,0102...10,1,1,0001...0F,aes-cbc,1011...1F,aes-cmac,B00001,1619,0

**JSON**: an array of card objects (or ``{"cards": [...]}``); a card has the card columns above and
``"keysets": [{"kvn", "kic", "kic_algorithm", "kid", "kid_algorithm", "tar", "spi", "counter"}, ...]``.

Columns: ``iccid`` (ITU-T E.118: 18 to 20 digits, a trailing ``F`` allowed) or ``psk_identity`` identifies the
card (at least one); ``msisdn`` (digits, an optional leading ``+``) is where SMS go; ``psk`` (16 to 64 bytes,
hex) with ``psk_kvn`` (default 1) is the SCP81 TLS PSK; ``kvn`` (1..15, TS 102 225 5.1.1 KIc/KID b8-b5) with
``kic`` + ``kic_algorithm`` (``des-cbc``, ``3des-2key``, ``3des-3key``, ``aes-cbc``) and ``kid`` +
``kid_algorithm`` (``des-cbc-mac``, ``3des-2key``, ``3des-3key``, ``aes-cmac``) is one SCP80 key set; ``tar``
(3 bytes hex) the TAR a campaign with no target of its own sends to with this key set (default: the ISD's RAM
TAR ``000000``); ``spi`` (2 bytes hex, default ``1619``: CC, ciphered, counter higher, PoR with CC, ciphered);
``counter`` the last counter the card accepted for that key set (TS 102 225 5.1.1 CNTR); ``tags`` (words
separated by spaces, ``;`` or ``,``; a JSON array) the card's inventory tags, which an API token may be limited
to (``--cards TAG``; given, they replace the stored ones).

**Key references** (keys diversified per card from a master key): a key cell ``master:LABEL`` stands for the
key derived from the master key named ``LABEL`` (given to
:func:`~gpchannel.server.inventory_import.import_inventory` in ``masters``, never stored in the file) with NIST
SP 800-108 in counter mode over AES-CMAC (:func:`diversify_card_key`: label = the purpose ``KIC``/``KID``/``PSK``,
context = the ICCID's digits, a 32-bit counter before the fixed data, a 00 separator, L in 32 bits; OpenSSL's
KBKDF gives the same bytes), the scheme of ``gpchannel fleet generate --master-key`` for emulated cards. A KIc /
KID cell ``derive:SCHEME:MASTER`` stores a *reference* instead (:class:`gpchannel.keystore.DerivedKey`): the key
provider derives the card key from the key of the same purpose and KVN of the master card ``MASTER`` (its ICCID
or PSK identity; import it first) with ``SCHEME`` ``emv`` / ``visa2`` (3DES 2-key masters) or ``kdf3`` (AES),
the key diversification data being the card's ICCID as 10 bytes
(:func:`~gpchannel.server.inventory_import.iccid_kdd`); with a PKCS#11 token the derivation runs in the token and
no card key exists outside it.

Rules: every row is checked before anything is written (a bad file imports nothing); the error names the line
(CSV: the physical line, header = 1; JSON: the card's index from 1) and the field, and never a key's value.
Keys go to :meth:`KeyProvider.store_card_keys` only; the card's ``ota`` document keeps the non-secret parts
(``msisdn``, ``scp80``: per KVN the TAR and SPI, ``scp80_kvn``: the first KVN). A counter is only ever raised:
importing an older inventory never lowers the counter the server holds, so no counter value is used twice.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpchannel.crypto.ciphers import aes_cmac
from gpchannel.errors import DecodeError, InventoryError
from gpchannel.ota.algorithms import KIC_ALGORITHMS, KID_ALGORITHMS, key_lengths
from gpchannel.ota.scp80 import MAX_COUNTER
from gpchannel.ota.spi import Spi

__all__ = [
    "CARD_COLUMNS",
    "DEFAULT_SPI",
    "ISD_TAR",
    "KEYSET_COLUMNS",
    "InventoryCard",
    "InventoryKeySet",
    "diversify_card_key",
    "parse_inventory",
    "read_inventory",
]

CARD_COLUMNS = ("iccid", "msisdn", "psk_identity", "psk", "psk_kvn", "tags")
KEYSET_COLUMNS = ("kvn", "kic", "kic_algorithm", "kid", "kid_algorithm", "tar", "spi", "counter")
DEFAULT_SPI = bytes.fromhex("1619")
ISD_TAR = bytes(3)
"""The Issuer Security Domain's RAM TAR (TS 101 220 Annex D: 00 00 00)."""
_MASTER = "master:"
_DERIVE = "derive:"
_SCHEMES = ("emv", "visa2", "kdf3")
"""Diversification schemes of gpchannel.crypto.diversification (EMV CPS 1.1, VISA2 for 3DES; KDF3 for AES)."""
_ICCID = re.compile(r"^[0-9]{18,20}F?$", re.IGNORECASE)
_MSISDN = re.compile(r"^\+?[0-9]{1,20}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def diversify_card_key(master: bytes, purpose: str, iccid: str, length: int = 16) -> bytes:
    """A card key from ``master`` (an AES key): NIST SP 800-108 KDF in counter mode with AES-CMAC as the PRF,
    ``K(i) = CMAC(master, [i]_32 || purpose || 00 || iccid || [8*length]_32)``, blocks concatenated and cut."""
    if len(master) not in (16, 24, 32):
        raise ValueError(f"a master key is an AES key (16, 24 or 32 bytes), got {len(master)}")
    fixed = purpose.encode() + b"\x00" + iccid.encode() + (8 * length).to_bytes(4, "big")
    out = b"".join(aes_cmac(master, i.to_bytes(4, "big") + fixed) for i in range(1, (length + 15) // 16 + 1))
    return out[:length]


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key given in the inventory: its bytes, a reference to a master key given at import (``master``), or a
    reference to a master card of the key provider (``derive``: scheme and the master card's ICCID / identity)."""

    key: bytes | None = field(default=None, repr=False)
    master: str | None = None
    derive: tuple[str, str] | None = None

    def resolve(self, masters: Mapping[str, bytes], purpose: str, iccid: str | None, length: int) -> bytes:
        if self.key is not None:
            return self.key
        assert self.master is not None
        secret = masters.get(self.master)
        if secret is None:  # labels match case-insensitively (environment variable names are upper case)
            secret = {k.lower(): v for k, v in masters.items()}.get(self.master.lower())
        if secret is None:
            raise InventoryError(f"no master key named {self.master!r} was given", field=purpose.lower())
        if iccid is None:
            raise InventoryError("a diversified key needs the card's ICCID", field=purpose.lower())
        return diversify_card_key(secret, purpose, iccid.rstrip("Ff"), length)


@dataclass(frozen=True, slots=True)
class InventoryKeySet:
    """One SCP80 key set of a card (keys never in the repr)."""

    kvn: int
    kic: KeyValue
    kic_algorithm: str
    kid: KeyValue
    kid_algorithm: str
    tar: bytes = ISD_TAR
    spi: bytes = DEFAULT_SPI
    counter: int | None = None


@dataclass(frozen=True, slots=True)
class InventoryCard:
    """One card of the inventory, checked; ``line`` is where it was first seen."""

    line: int
    iccid: str | None
    msisdn: str | None
    psk_identity: str | None
    psk: KeyValue | None
    psk_kvn: int
    keysets: tuple[InventoryKeySet, ...]
    tags: tuple[str, ...] | None = None
    """The card's tags (None: not given, the stored ones stay); an API token may be limited to one tag."""


# --------------------------------------------------------------------------------------------- field parsing


def _text(row: Mapping[str, Any], name: str, line: int) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InventoryError("a string or number is expected", line=line, field=name)
    text = str(value).strip()
    return text or None


def _int(row: Mapping[str, Any], name: str, line: int, low: int, high: int) -> int | None:
    text = _text(row, name, line)
    if text is None:
        return None
    try:
        value = int(text, 0)
    except ValueError:
        raise InventoryError(f"an integer is expected, got {text!r}", line=line, field=name) from None
    if not low <= value <= high:
        raise InventoryError(f"must be {low}..{high}, got {value}", line=line, field=name)
    return value


def _hex(row: Mapping[str, Any], name: str, line: int, lengths: Sequence[int], secret: bool = False) -> bytes | None:
    text = _text(row, name, line)
    if text is None:
        return None
    try:
        value = bytes.fromhex(text.replace(" ", "").replace(":", ""))
    except ValueError:
        shown = "" if secret else f", got {text!r}"
        raise InventoryError(f"hex digits are expected{shown}", line=line, field=name) from None
    if len(value) not in lengths:
        expected = " or ".join(str(n) for n in lengths) if len(lengths) < 5 else f"{min(lengths)}..{max(lengths)}"
        raise InventoryError(f"must be {expected} bytes, got {len(value)}", line=line, field=name)
    return value


def _key(row: Mapping[str, Any], name: str, line: int, lengths: Sequence[int]) -> KeyValue | None:
    text = _text(row, name, line)
    if text is not None and text.lower().startswith(_DERIVE):
        scheme, _, master = text[len(_DERIVE) :].partition(":")
        if scheme.lower() not in _SCHEMES or not master.strip():
            raise InventoryError(
                f"derive:SCHEME:MASTER with SCHEME one of {', '.join(_SCHEMES)} and the master card's ICCID",
                line=line,
                field=name,
            )
        if name == "psk":
            raise InventoryError("a PSK cannot be derived from a master card", line=line, field=name)
        return KeyValue(derive=(scheme.lower(), master.strip()))
    if text is not None and text.lower().startswith(_MASTER):
        label = text[len(_MASTER) :].strip()
        if not label:
            raise InventoryError("master:LABEL names a master key; the label is empty", line=line, field=name)
        return KeyValue(master=label)
    key = _hex(row, name, line, lengths, secret=True)
    return None if key is None else KeyValue(key=key)


def _algorithm(row: Mapping[str, Any], name: str, line: int, table: Mapping[str, object]) -> str:
    text = _text(row, name, line)
    if text is None:
        raise InventoryError(f"required with the key (one of {', '.join(table)})", line=line, field=name)
    if text.lower() not in table:
        raise InventoryError(f"unknown algorithm {text!r} (one of {', '.join(table)})", line=line, field=name)
    return text.lower()


def _keyset(row: Mapping[str, Any], line: int) -> InventoryKeySet | None:
    kvn = _int(row, "kvn", line, 1, 15)
    given = [c for c in KEYSET_COLUMNS if c != "kvn" and _text(row, c, line) is not None]
    if kvn is None:
        if given:
            raise InventoryError(f"a key set ({', '.join(given)}) needs its kvn", line=line, field="kvn")
        return None
    kic_algorithm = _algorithm(row, "kic_algorithm", line, KIC_ALGORITHMS)
    kid_algorithm = _algorithm(row, "kid_algorithm", line, KID_ALGORITHMS)
    kic = _key(row, "kic", line, key_lengths(KIC_ALGORITHMS[kic_algorithm]))
    kid = _key(row, "kid", line, key_lengths(KID_ALGORITHMS[kid_algorithm]))
    for name, value, algorithm in (("kic", kic, kic_algorithm), ("kid", kid, kid_algorithm)):
        if value is not None and value.derive is not None:
            aes = algorithm.startswith("aes")
            if (value.derive[0] == "kdf3") != aes or (not aes and algorithm != "3des-2key"):
                raise InventoryError(
                    f"derive:{value.derive[0]} gives {'AES' if value.derive[0] == 'kdf3' else '3DES 2-key'} keys, "
                    f"not {algorithm}",
                    line=line,
                    field=name,
                )
    if kic is None or kid is None:
        raise InventoryError(
            "the key is required (hex, or master:LABEL)", line=line, field="kic" if kic is None else "kid"
        )
    tar = _hex(row, "tar", line, (3,)) or ISD_TAR
    spi = _hex(row, "spi", line, (2,)) or DEFAULT_SPI
    try:
        Spi.from_bytes(spi)
    except DecodeError as exc:
        raise InventoryError(str(exc), line=line, field="spi") from None
    counter = _int(row, "counter", line, 0, MAX_COUNTER)
    return InventoryKeySet(kvn, kic, kic_algorithm, kid, kid_algorithm, tar, spi, counter)


def _tags(row: Mapping[str, Any], line: int) -> tuple[str, ...] | None:
    value = row.get("tags")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        items = re.split(r"[\s;,]+", value.strip())
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise InventoryError("tags: a string (separated by spaces, ';' or ',') or an array", line=line, field="tags")
    for tag in items:
        if not _TAG.match(tag):
            raise InventoryError(f"a tag is letters, digits, '.', '_' or '-', got {tag!r}", line=line, field="tags")
    return tuple(sorted(set(items)))


def _card(row: Mapping[str, Any], line: int, keysets: Sequence[InventoryKeySet]) -> InventoryCard:
    iccid = _text(row, "iccid", line)
    if iccid is not None and not _ICCID.match(iccid):
        raise InventoryError("an ICCID is 18 to 20 digits (a trailing F allowed)", line=line, field="iccid")
    msisdn = _text(row, "msisdn", line)
    if msisdn is not None and not _MSISDN.match(msisdn):
        raise InventoryError(f"an MSISDN is digits with an optional +, got {msisdn!r}", line=line, field="msisdn")
    identity = _text(row, "psk_identity", line)
    if iccid is None and identity is None:
        raise InventoryError("a card needs an iccid or a psk_identity", line=line, field="iccid")
    psk = _key(row, "psk", line, tuple(range(16, 65)))
    psk_kvn = _int(row, "psk_kvn", line, 0, 0xFF)
    return InventoryCard(
        line,
        iccid.upper() if iccid else None,
        msisdn.lstrip("+") if msisdn else None,
        identity,
        psk,
        1 if psk_kvn is None else psk_kvn,
        tuple(keysets),
        _tags(row, line),
    )


def _merge(cards: list[InventoryCard], card: InventoryCard) -> None:
    """Add ``card`` (one row) to ``cards``, joining rows of the same ICCID (or PSK identity)."""
    for n, seen in enumerate(cards):
        same = (card.iccid is not None and card.iccid == seen.iccid) or (
            card.iccid is None and card.psk_identity is not None and card.psk_identity == seen.psk_identity
        )
        if not same:
            continue
        for name in ("msisdn", "psk_identity"):
            mine, theirs = getattr(card, name), getattr(seen, name)
            if mine is not None and theirs is not None and mine != theirs:
                raise InventoryError(f"the card of line {seen.line} has another {name}", line=card.line, field=name)
        kvns = {k.kvn for k in seen.keysets}
        for keyset in card.keysets:
            if keyset.kvn in kvns:
                raise InventoryError(
                    f"key set {keyset.kvn} of this card is already on line {seen.line}", line=card.line, field="kvn"
                )
        cards[n] = InventoryCard(
            seen.line,
            seen.iccid,
            seen.msisdn or card.msisdn,
            seen.psk_identity or card.psk_identity,
            seen.psk or card.psk,
            seen.psk_kvn,
            seen.keysets + card.keysets,
            None
            if seen.tags is None and card.tags is None
            else tuple(sorted({*(seen.tags or ()), *(card.tags or ())})),
        )
        return
    cards.append(card)


def _check_unique(cards: Sequence[InventoryCard]) -> None:
    identities: dict[str, int] = {}
    for card in cards:
        if card.psk_identity is None:
            continue
        if card.psk_identity in identities:
            raise InventoryError(
                f"PSK identity already used by the card of line {identities[card.psk_identity]}",
                line=card.line,
                field="psk_identity",
            )
        identities[card.psk_identity] = card.line


def _parse_csv(text: str) -> list[InventoryCard]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames
    if not columns:
        raise InventoryError("the CSV has no header line", line=1)
    names = [c.strip().lower() for c in columns]
    unknown = [c for c in names if c not in CARD_COLUMNS + KEYSET_COLUMNS]
    if unknown:
        raise InventoryError(f"unknown column(s): {', '.join(unknown)}", line=1, field=unknown[0])
    if len(set(names)) != len(names):
        raise InventoryError("a column appears twice", line=1)
    reader.fieldnames = names
    cards: list[InventoryCard] = []
    line = 1
    for row in reader:
        line = reader.line_num
        if None in row:
            raise InventoryError("more cells than columns", line=line)
        if not any((v or "").strip() for v in row.values()):
            continue
        keyset = _keyset(row, line)
        _merge(cards, _card(row, line, [keyset] if keyset else []))
    return cards


def _parse_json(text: str) -> list[InventoryCard]:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InventoryError(f"not JSON: {exc}") from None
    except RecursionError:  # json recurses once per nesting level; an inventory is two levels deep
        raise InventoryError("not an inventory: JSON nested too deeply") from None
    if isinstance(raw, dict):
        raw = raw.get("cards")
    if not isinstance(raw, list):
        raise InventoryError('a JSON inventory is an array of cards (or {"cards": [...]})')
    cards: list[InventoryCard] = []
    for index, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise InventoryError("a card is a JSON object", line=index)
        unknown = [k for k in item if k not in (*CARD_COLUMNS, "keysets")]
        if unknown:
            raise InventoryError(f"unknown key(s): {', '.join(map(str, unknown))}", line=index, field=str(unknown[0]))
        sets = item.get("keysets", [])
        if not isinstance(sets, list) or not all(isinstance(s, dict) for s in sets):
            raise InventoryError("keysets is an array of objects", line=index, field="keysets")
        keysets = []
        for entry in sets:
            bad = [k for k in entry if k not in KEYSET_COLUMNS]
            if bad:
                raise InventoryError(f"unknown key set key(s): {', '.join(bad)}", line=index, field=bad[0])
            keyset = _keyset(entry, index)
            if keyset is None:
                raise InventoryError("a key set needs its kvn", line=index, field="kvn")
            keysets.append(keyset)
        if len({k.kvn for k in keysets}) != len(keysets):
            raise InventoryError("two key sets with the same kvn", line=index, field="kvn")
        _merge(cards, _card(item, index, keysets))
    return cards


def parse_inventory(data: bytes | str, *, format: str | None = None) -> list[InventoryCard]:
    """Parse and check an inventory (``format``: ``csv`` or ``json``; None: JSON when it starts with ``[`` or
    ``{``). :class:`InventoryError` naming the line and field of the first bad row."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InventoryError(f"not UTF-8 text: {exc}") from None
    if format is None:
        format = "json" if data.lstrip()[:1] in ("[", "{") else "csv"
    if format not in ("csv", "json"):
        raise InventoryError(f"unknown inventory format {format!r} (csv or json)")
    cards = _parse_csv(data) if format == "csv" else _parse_json(data)
    _check_unique(cards)
    return cards


def read_inventory(path: str | Path) -> list[InventoryCard]:
    """:func:`parse_inventory` of a file (JSON for ``.json``, else sniffed)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InventoryError(f"cannot read {file}: {exc.strerror}") from None
    return parse_inventory(raw, format="json" if file.suffix.lower() == ".json" else None)
