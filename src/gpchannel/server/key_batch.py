"""The SCP80 key sets of a worker's claimed batch, resolved from the key rows read with the claim
(:meth:`gpchannel.server.repository.Repository.claim_batch`) instead of two ``card_keys`` reads per card.

Measured (docs/deploy.md): the two key reads of every SCP80 send were a quarter of a worker's CPU. The rows of
the whole batch come in one query; :class:`BatchKeyRows` serves them to the key provider
(:meth:`gpchannel.keystore.BaseKeyProvider.reading_from`), which opens the blobs as it always does (AES-GCM under
the master key, or a token label), so what a key set is and how it is checked does not change. A row the batch
does not hold (a derived key's master card, a look-up without a KVN) is read from the repository as before. The
resolved key sets live in the worker's memory for one round and are never logged; a card whose key set cannot be
had is left out, and its send reads it again and meets the error itself (the job fails with its reason).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from gpchannel.errors import GPChannelError
from gpchannel.keystore import BaseKeyProvider, CardRef, KeyProvider, KeyRepository
from gpchannel.ota.algorithms import Scp80KeySet

__all__ = ["BatchKeyRows", "resolve_keysets"]


class BatchKeyRows:
    """A :class:`~gpchannel.keystore.KeyRepository` over prefetched ``card_keys`` rows, (card id, purpose, KVN)
    -> (blob, algorithm), falling back to ``repository`` for any other look-up. ``complete``: the (card id,
    purpose) pairs whose rows are ALL in ``rows``, for which a look-up without a KVN (the highest) is answered
    too (the admin handshakes' PSKs, server/psk_batch.py)."""

    def __init__(
        self,
        rows: Mapping[tuple[int, str, int], tuple[bytes, str]],
        repository: KeyRepository,
        complete: Collection[tuple[int, str]] = (),
    ) -> None:
        self._rows = rows
        self._repository = repository
        self._highest: dict[tuple[int, str], int] = {}
        for card_id, purpose, kvn in rows:
            if (card_id, purpose) in complete and kvn > self._highest.get((card_id, purpose), -1):
                self._highest[(card_id, purpose)] = kvn
        self._complete = frozenset(complete)

    def set_card_key(self, card_id: int, purpose: str, kvn: int, blob: bytes, algorithm: str) -> None:
        self._repository.set_card_key(card_id, purpose, kvn, blob, algorithm)

    def card_key(self, card_id: int, purpose: str, kvn: int | None = None) -> tuple[int, bytes, str] | None:
        if kvn is None and (card_id, purpose) in self._complete:
            kvn = self._highest.get((card_id, purpose))
            if kvn is None:
                return None  # the card has no row of that purpose
        if kvn is not None:
            found = self._rows.get((card_id, purpose, kvn))
            if found is not None:
                return kvn, found[0], found[1]
        return self._repository.card_key(card_id, purpose, kvn)


def resolve_keysets(
    provider: KeyProvider,
    rows: Mapping[tuple[int, str, int], tuple[bytes, str]],
    repository: KeyRepository,
    wanted: Iterable[tuple[CardRef, int]],
) -> dict[tuple[int, int], Scp80KeySet]:
    """The SCP80 key set of every (card, KVN) in ``wanted`` that can be had, by (card id, KVN). Blocking (a row
    outside the batch is read from ``repository``): run it off the event loop. A provider that is not a
    :class:`~gpchannel.keystore.BaseKeyProvider` gives nothing (its sends read their keys one by one)."""
    if not isinstance(provider, BaseKeyProvider):
        return {}
    reader = provider.reading_from(BatchKeyRows(rows, repository))
    out: dict[tuple[int, int], Scp80KeySet] = {}
    for card, kvn in wanted:
        if (card.id, kvn) in out:
            continue
        try:
            out[(card.id, kvn)] = reader.scp80_keyset(card, kvn)
        except (GPChannelError, ValueError):
            continue  # the send reads it again and fails the job with the reason
    return out
