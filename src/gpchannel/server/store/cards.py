"""The card aggregate of the store: cards, their key references (``card_keys``) and OTA counters
(``ota_counters``; ETSI TS 102 225 5.1.1: the counter of a key set is never used twice)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, TextClause, bindparam, select, text, update

from gpchannel.errors import CounterExhausted, RepositoryError
from gpchannel.server.db import card_keys, cards, ota_counters
from gpchannel.server.store.core import Conflict, StoreCore

__all__ = [
    "KEY_PURPOSES",
    "MAX_OTA_COUNTER",
    "CardRecord",
    "CardStore",
    "advance_counter",
    "advance_counters",
    "card_record",
    "require_card",
]

# What card_keys.purpose may hold: the SCP81 PSK, the SCP80 KIc/KID, the SCP02/03 key set (ENC/MAC/DEK).
KEY_PURPOSES = frozenset({"psk", "kic", "kid", "enc", "mac", "dek"})

# ETSI TS 102 225 5.1.1: the OTA counter (CNTR) is 5 bytes.
MAX_OTA_COUNTER = (1 << 40) - 1


_BY_IDENTITY = select(cards).where(cards.c.psk_identity == bindparam("identity"))
"""Built once: every PSK-TLS handshake runs it (server/ras.py), so only its compiled-cache lookup is paid."""


@dataclass(frozen=True)
class CardRecord:
    id: int
    iccid: str | None
    psk_identity: str | None
    msisdn: str | None
    ota: Mapping[str, Any]  # TARs, SPI/KIc/KID defaults, PSK kvn, ... (free-form JSON object)
    created_at: datetime | None = None
    updated_at: datetime | None = None


def card_record(row: Row[Any]) -> CardRecord:
    m = row._mapping
    return CardRecord(
        id=m["id"],
        iccid=m["iccid"],
        psk_identity=m["psk_identity"],
        msisdn=m["msisdn"],
        ota=dict(m["ota"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def require_card(c: Connection, card_id: int) -> None:
    if c.execute(select(cards.c.id).where(cards.c.id == card_id)).one_or_none() is None:
        raise RepositoryError(f"no card {card_id}")


def advance_counter(store: StoreCore, c: Connection, card_id: int, kvn: int) -> int:
    """Advance the card's OTA counter for key set ``kvn`` by one inside ``c``'s transaction (a missing counter
    starts at 0, so the first is 1) and return it; RepositoryError once it would pass 5 bytes (TS 102 225 5.1.1)."""
    stmt = store._insert(ota_counters).values(card_id=card_id, kvn=kvn, value=1)
    stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=["card_id", "kvn"],
        set_={"value": ota_counters.c.value + 1},
        where=ota_counters.c.value < MAX_OTA_COUNTER,  # at the last value the row is left alone, returned by none
    ).returning(ota_counters.c.value)
    counter = c.execute(stmt).scalar_one_or_none()
    if counter is None or int(counter) > MAX_OTA_COUNTER:
        raise CounterExhausted(f"OTA counter of card {card_id} key set {kvn} is exhausted")
    return int(counter)


@functools.lru_cache(maxsize=64)
def _counters_upsert(rows: int) -> TextClause:
    """The multi-row counter upsert for ``rows`` pairs, one text per batch size (built and compiled once; the
    same SQL on SQLite >= 3.35 and PostgreSQL). Only bound parameters vary, never the text."""
    values = ", ".join(f"(:c{n}, :k{n}, 1)" for n in range(rows))
    return text(
        f"INSERT INTO ota_counters (card_id, kvn, value) VALUES {values} "  # noqa: S608 - numbered placeholders only
        "ON CONFLICT (card_id, kvn) DO UPDATE SET value = ota_counters.value + 1 "
        f"WHERE ota_counters.value < {MAX_OTA_COUNTER} RETURNING card_id, kvn, value"
    )


def advance_counters(store: StoreCore, c: Connection, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """:func:`advance_counter` for several distinct (card id, KVN) pairs in ONE statement (a multi-row upsert
    ``... ON CONFLICT DO UPDATE SET value = value + 1 RETURNING``): the new value of each pair. Each stored value
    only grows, by exactly one; RepositoryError when a pair is named twice, one is missing from what the database
    gives back, or a counter would pass 5 bytes (TS 102 225 5.1.1), so the caller's transaction rolls back."""
    if len(set(pairs)) != len(pairs):
        raise RepositoryError("advance_counters: a (card, key set) pair is named twice")
    if not pairs:
        return {}
    pairs = sorted(pairs)  # rows locked in one order by every worker: two batches cannot deadlock on PostgreSQL
    params: dict[str, int] = {}
    for n, (card_id, kvn) in enumerate(pairs):
        params[f"c{n}"], params[f"k{n}"] = card_id, kvn
    out = {(int(r.card_id), int(r.kvn)): int(r.value) for r in c.execute(_counters_upsert(len(pairs)), params)}
    for card_id, kvn in pairs:
        value = out.get((card_id, kvn))
        if value is None or value > MAX_OTA_COUNTER:  # none: at its last value, the upsert left the row alone
            raise CounterExhausted(f"OTA counter of card {card_id} key set {kvn} is exhausted")
        if value < 1:
            raise RepositoryError(f"OTA counter of card {card_id} key set {kvn} was not advanced")
    return out


class CardStore(StoreCore):
    """Cards, key references and OTA counters (part of the Repository facade)."""

    def upsert_card(
        self,
        *,
        iccid: str | None,
        psk_identity: str | None,
        msisdn: str | None = None,
        ota: Mapping[str, Any] | None = None,
    ) -> int:
        """The id of the card with this ICCID or PSK identity, created if neither is known. Given fields (not
        None) replace the stored ones; ``ota`` replaces the whole object. An ICCID and an identity that belong to
        two different cards are refused."""
        if iccid is None and psk_identity is None:
            raise RepositoryError("a card needs an ICCID or a PSK identity")
        try:
            return self._upsert_card(iccid, psk_identity, msisdn, ota)
        except Conflict:
            # PostgreSQL: another transaction inserted the same card between our SELECT and INSERT.
            return self._upsert_card(iccid, psk_identity, msisdn, ota)

    def _upsert_card(
        self, iccid: str | None, psk_identity: str | None, msisdn: str | None, ota: Mapping[str, Any] | None
    ) -> int:
        now = self._clock()
        with self._write() as c:
            matches: list[Row[Any]] = []
            if iccid is not None:
                matches += c.execute(select(cards.c.id).where(cards.c.iccid == iccid).with_for_update()).all()
            if psk_identity is not None:
                matches += c.execute(
                    select(cards.c.id).where(cards.c.psk_identity == psk_identity).with_for_update()
                ).all()
            ids = sorted({r.id for r in matches})
            if len(ids) > 1:
                raise RepositoryError(f"ICCID {iccid} and PSK identity {psk_identity} belong to two cards {ids}")
            values: dict[str, Any] = {"updated_at": now}
            for name, value in (("iccid", iccid), ("psk_identity", psk_identity), ("msisdn", msisdn)):
                if value is not None:
                    values[name] = value
            if ota is not None:
                values["ota"] = dict(ota)
            if ids:
                c.execute(update(cards).where(cards.c.id == ids[0]).values(values))
                return int(ids[0])
            values.setdefault("ota", {})
            result = c.execute(cards.insert().values(created_at=now, **values).returning(cards.c.id))
            return int(result.scalar_one())

    def card(self, card_id: int) -> CardRecord | None:
        with self._read() as c:
            row = c.execute(select(cards).where(cards.c.id == card_id)).one_or_none()
        return None if row is None else card_record(row)

    def cards_by_id(self, card_ids: Sequence[int]) -> dict[int, CardRecord]:
        """The cards of these ids that exist, by id, in one query (a worker's claimed batch)."""
        if not card_ids:
            return {}
        with self._read() as c:
            rows = c.execute(select(cards).where(cards.c.id.in_(sorted(set(card_ids))))).all()
        return {int(row.id): card_record(row) for row in rows}

    def card_by_identity(self, psk_identity: str) -> CardRecord | None:
        with self._read() as c:
            row = c.execute(_BY_IDENTITY, {"identity": psk_identity}).one_or_none()
        return None if row is None else card_record(row)

    def cards_by_identity(self, identities: Sequence[str]) -> dict[str, CardRecord]:
        """The cards of these PSK identities that exist, by identity, in one query (the admin handshakes' PSK
        look-ups, server/psk_batch.py)."""
        if not identities:
            return {}
        with self._read() as c:
            rows = c.execute(select(cards).where(cards.c.psk_identity.in_(sorted(set(identities))))).all()
        return {str(row.psk_identity): card_record(row) for row in rows}

    def card_key_rows(self, card_ids: Sequence[int], purpose: str) -> dict[tuple[int, str, int], tuple[bytes, str]]:
        """Every ``card_keys`` row of ``purpose`` of these cards, (card id, purpose, KVN) -> (blob, algorithm), in
        one query (for :class:`gpchannel.server.key_batch.BatchKeyRows`)."""
        if not card_ids:
            return {}
        query = select(card_keys.c.card_id, card_keys.c.kvn, card_keys.c.blob, card_keys.c.algorithm).where(
            card_keys.c.card_id.in_(sorted(set(card_ids))), card_keys.c.purpose == purpose
        )
        with self._read() as c:
            rows = c.execute(query).all()
        return {(int(r.card_id), purpose, int(r.kvn)): (bytes(r.blob), str(r.algorithm)) for r in rows}

    def card_by_iccid(self, iccid: str) -> CardRecord | None:
        with self._read() as c:
            row = c.execute(select(cards).where(cards.c.iccid == iccid)).one_or_none()
        return None if row is None else card_record(row)

    def cards(self, *, after_id: int = 0, limit: int = 1000) -> list[CardRecord]:
        """Cards by id, ``limit`` at a time after ``after_id`` (keyset paging)."""
        with self._read() as c:
            rows = c.execute(select(cards).where(cards.c.id > after_id).order_by(cards.c.id).limit(limit)).all()
        return [card_record(r) for r in rows]

    def set_card_key(self, card_id: int, purpose: str, kvn: int, blob: bytes, algorithm: str) -> None:
        """Store (or replace) the key provider's reference for the card's key ``purpose``/``kvn``. ``blob`` is
        a wrapped key or a token label, never a plain key (the provider's business)."""
        if purpose not in KEY_PURPOSES:
            raise RepositoryError(f"key purpose {purpose!r} is not one of {sorted(KEY_PURPOSES)}")
        if not 0 <= kvn <= 0xFF:
            raise RepositoryError(f"key version {kvn} is not one byte")
        values = {
            "card_id": card_id,
            "purpose": purpose,
            "kvn": kvn,
            "blob": bytes(blob),
            "algorithm": algorithm,
            "updated_at": self._clock(),
        }
        stmt = self._insert(card_keys).values(values)
        stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["card_id", "purpose", "kvn"],
            set_={"blob": stmt.excluded.blob, "algorithm": stmt.excluded.algorithm, "updated_at": values["updated_at"]},  # type: ignore[attr-defined]
        )
        with self._write() as c:
            require_card(c, card_id)
            c.execute(stmt)

    def card_key(self, card_id: int, purpose: str, kvn: int | None = None) -> tuple[int, bytes, str] | None:
        """``(kvn, blob, algorithm)`` of the card's key ``purpose`` at ``kvn`` (None: the highest version)."""
        query = select(card_keys.c.kvn, card_keys.c.blob, card_keys.c.algorithm).where(
            card_keys.c.card_id == card_id, card_keys.c.purpose == purpose
        )
        query = query.where(card_keys.c.kvn == kvn) if kvn is not None else query.order_by(card_keys.c.kvn.desc())
        with self._read() as c:
            row = c.execute(query.limit(1)).one_or_none()
        return None if row is None else (int(row.kvn), bytes(row.blob), str(row.algorithm))

    def set_counter(self, card_id: int, kvn: int, value: int) -> None:
        """Set the last OTA counter used with the card's key set ``kvn`` (an import, or after a card answered
        "counter low"); the next :meth:`mark_sent` uses ``value + 1``."""
        if not 0 <= value <= MAX_OTA_COUNTER:
            raise RepositoryError(f"OTA counter {value} does not fit 5 bytes")
        if not 0 <= kvn <= 0xFF:
            raise RepositoryError(f"key version {kvn} is not one byte")
        stmt = self._insert(ota_counters).values(card_id=card_id, kvn=kvn, value=value)
        stmt = stmt.on_conflict_do_update(index_elements=["card_id", "kvn"], set_={"value": value})  # type: ignore[attr-defined]
        with self._write() as c:
            require_card(c, card_id)
            c.execute(stmt)

    def counter(self, card_id: int, kvn: int) -> int | None:
        """The last OTA counter used with the card's key set ``kvn`` (None: never used)."""
        with self._read() as c:
            value = c.execute(
                select(ota_counters.c.value).where(ota_counters.c.card_id == card_id, ota_counters.c.kvn == kvn)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def next_counter(self, card_id: int, kvn: int) -> int:
        """Advance the card's OTA counter for key set ``kvn`` by one in one transaction (a missing counter starts
        at 0, so the first is 1) and return it: a packet that is not a job's script (the SCP80 trigger of an
        scp81+sms job, which stays QUEUED for the admin session) gets a counter never used before."""
        with self._write() as c:
            require_card(c, card_id)
            return advance_counter(self, c, card_id, kvn)
