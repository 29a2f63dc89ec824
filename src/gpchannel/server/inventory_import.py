"""Card inventory import, the writing half: a parsed inventory (:mod:`gpchannel.server.inventory`, which describes
the format, the key references and the rules) into the Repository (cards, counters) and the KeyProvider (keys).

``master:LABEL`` key cells are resolved here with the master keys the caller gives (:func:`resolved_json` for a
server that does not hold them), ``derive:SCHEME:MASTER`` cells become :class:`gpchannel.keystore.DerivedKey`
references to the master card's keys (its key diversification data the ICCID, :func:`iccid_kdd`). Every card is
checked before anything is written; a counter is only ever raised (TS 102 225 5.1.1: no counter value used twice).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpchannel.crypto.diversification import Diversification
from gpchannel.errors import InventoryError
from gpchannel.keystore import DerivedKey, KeyProvider
from gpchannel.ota.algorithms import KIC_ALGORITHMS, KID_ALGORITHMS, key_lengths
from gpchannel.server.inventory import InventoryCard, KeyValue

if TYPE_CHECKING:
    from gpchannel.server.repository import Repository

__all__ = ["ImportResult", "has_references", "iccid_kdd", "import_inventory", "resolved_json"]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: the card ids in inventory order, and how many cards were new."""

    card_ids: tuple[int, ...]
    created: int
    updated: int
    keysets: int


def has_references(cards: Sequence[InventoryCard]) -> bool:
    """Whether any key of ``cards`` is a ``master:LABEL`` reference."""
    values = [c.psk for c in cards] + [k for c in cards for ks in c.keysets for k in (ks.kic, ks.kid)]
    return any(v is not None and v.master is not None for v in values)


def resolved_json(cards: Sequence[InventoryCard], masters: Mapping[str, bytes]) -> str:
    """``cards`` as a JSON inventory with every ``master:LABEL`` reference replaced by the derived key (what the
    command line sends to a server that does not hold the master keys). The text holds keys: send it over the
    local API only, never log it."""
    out: list[dict[str, Any]] = []
    for card in cards:
        keys = _resolve(card, masters)
        item: dict[str, Any] = {
            k: v
            for k, v in (("iccid", card.iccid), ("msisdn", card.msisdn), ("psk_identity", card.psk_identity))
            if v is not None
        }
        if card.tags is not None:
            item["tags"] = list(card.tags)
        if card.psk is not None:
            item["psk"] = keys[("psk", card.psk_kvn)][0].hex().upper()
            item["psk_kvn"] = card.psk_kvn

        def cell(
            purpose: str, kvn: int, value: KeyValue, keys: Mapping[tuple[str, int], tuple[bytes, str]] = keys
        ) -> str:
            if value.derive is not None:
                return f"derive:{value.derive[0]}:{value.derive[1]}"
            return keys[(purpose, kvn)][0].hex().upper()

        item["keysets"] = [
            {
                "kvn": ks.kvn,
                "kic": cell("kic", ks.kvn, ks.kic),
                "kic_algorithm": ks.kic_algorithm,
                "kid": cell("kid", ks.kvn, ks.kid),
                "kid_algorithm": ks.kid_algorithm,
                "tar": ks.tar.hex().upper(),
                "spi": ks.spi.hex().upper(),
                **({"counter": ks.counter} if ks.counter is not None else {}),
            }
            for ks in card.keysets
        ]
        out.append(item)
    return json.dumps({"cards": out})


# --------------------------------------------------------------------------------------------- import


def _resolve(card: InventoryCard, masters: Mapping[str, bytes]) -> dict[tuple[str, int], tuple[bytes, str]]:
    """The card's keys with ``master:`` references derived (``derive:`` ones are left to :func:`_derived`)."""
    keys: dict[tuple[str, int], tuple[bytes, str]] = {}
    try:
        if card.psk is not None:
            keys[("psk", card.psk_kvn)] = (card.psk.resolve(masters, "PSK", card.iccid, 16), "tls-psk")
        for ks in card.keysets:
            kic_len = key_lengths(KIC_ALGORITHMS[ks.kic_algorithm])[0]
            kid_len = key_lengths(KID_ALGORITHMS[ks.kid_algorithm])[0]
            if ks.kic.derive is None:
                keys[("kic", ks.kvn)] = (ks.kic.resolve(masters, "KIC", card.iccid, kic_len), ks.kic_algorithm)
            if ks.kid.derive is None:
                keys[("kid", ks.kvn)] = (ks.kid.resolve(masters, "KID", card.iccid, kid_len), ks.kid_algorithm)
    except InventoryError as exc:
        raise InventoryError(str(exc).split(": ", 1)[-1], line=card.line, field=exc.field) from None
    return keys


def iccid_kdd(iccid: str) -> bytes:
    """The key diversification data of a card from its ICCID: the digits padded with F to 20 nibbles, as the
    ICCID is written in EF ICCID without the nibble swap (10 bytes; our choice, GP names no SCP80 KDD)."""
    return bytes.fromhex(iccid.upper().ljust(20, "F")[:20])


def _derived(repository: Repository, card: InventoryCard) -> dict[tuple[str, int], tuple[DerivedKey, str]]:
    """The card's ``derive:`` references as key-provider references, their master cards looked up."""
    refs: dict[tuple[str, int], tuple[DerivedKey, str]] = {}
    for ks in card.keysets:
        for purpose, value, algorithm in (("kic", ks.kic, ks.kic_algorithm), ("kid", ks.kid, ks.kid_algorithm)):
            if value.derive is None:
                continue
            scheme, selector = value.derive
            if card.iccid is None:
                raise InventoryError("a derived key needs the card's ICCID", line=card.line, field=purpose)
            master = repository.card_by_iccid(selector.upper()) or repository.card_by_identity(selector)
            if master is None:
                raise InventoryError(
                    f"no master card {selector!r} in the store (import it first)", line=card.line, field=purpose
                )
            refs[(purpose, ks.kvn)] = (DerivedKey(master.id, Diversification(scheme), iccid_kdd(card.iccid)), algorithm)
    return refs


def _ota(card: InventoryCard, existing: Mapping[str, Any]) -> dict[str, Any]:
    ota = dict(existing)
    if card.msisdn is not None:
        ota["msisdn"] = card.msisdn
    scp80 = dict(ota.get("scp80") or {})
    for ks in card.keysets:
        scp80[str(ks.kvn)] = {"tar": ks.tar.hex().upper(), "spi": ks.spi.hex().upper()}
    if scp80:
        ota["scp80"] = scp80
        ota.setdefault("scp80_kvn", card.keysets[0].kvn if card.keysets else min(int(k) for k in scp80))
    if card.psk is not None:
        ota["psk_kvn"] = card.psk_kvn
    if card.tags is not None:
        ota["tags"] = list(card.tags)
    return ota


def import_inventory(
    repository: Repository,
    keys: KeyProvider,
    cards: Sequence[InventoryCard],
    *,
    masters: Mapping[str, bytes] | None = None,
) -> ImportResult:
    """Write ``cards`` (from :func:`parse_inventory`): upsert each card, store its keys through ``keys``, raise its
    counters. Every key reference is resolved before the first write, so a missing master key imports nothing.
    Each card is written in its own calls (the Repository's transactions); a failure part-way leaves the cards
    before it imported, which a second import of the same file completes (imports are idempotent)."""
    resolved = [(card, _resolve(card, masters or {}), _derived(repository, card)) for card in cards]
    ids: list[int] = []
    created = 0
    total_keysets = 0
    for card, card_keys, refs in resolved:
        existing = None
        if card.iccid is not None:
            existing = repository.card_by_iccid(card.iccid)
        if existing is None and card.psk_identity is not None:
            existing = repository.card_by_identity(card.psk_identity)
        card_id = repository.upsert_card(
            iccid=card.iccid,
            psk_identity=card.psk_identity,
            msisdn=card.msisdn,
            ota=_ota(card, existing.ota if existing is not None else {}),
        )
        created += existing is None
        if card_keys:
            keys.store_card_keys(card_id, card_keys)
        if refs:
            keys.store_derived_keys(card_id, refs)
        for ks in card.keysets:
            total_keysets += 1
            if ks.counter is not None:
                _raise_counter(repository, card_id, ks.kvn, ks.counter)
        ids.append(card_id)
    return ImportResult(tuple(ids), created, len(ids) - created, total_keysets)


def _raise_counter(repository: Repository, card_id: int, kvn: int, value: int) -> None:
    """Set the (card, kvn) counter to ``value`` unless the server already holds a higher one."""
    held = repository.counter(card_id, kvn)
    if held is None or held < value:
        repository.set_counter(card_id, kvn, value)
