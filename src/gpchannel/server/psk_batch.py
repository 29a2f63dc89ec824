"""The PSK look-ups of the admin handshakes (SCP81, server/ras.py): those of concurrent handshakes in ONE store
call, on the event loop's side, instead of one worker-thread hop and one read transaction each.

Measured (bench/scp81.py, 500 cards connecting at once): every handshake ran its PSK look-up in a worker thread
of its own (io/tls_protocol.py ``lookup_in_thread``): the card row, its key row and the key's unwrapping in a read
transaction, and the thread hand-off, whose threads then contended with the event loop for the interpreter. The
TLS engine now reads the identity from the client's ClientKeyExchange (io/tls_protocol.psk_identity) and awaits
:meth:`PskBatch.get`; the look-ups that arrive while one store call runs wait for the next, which answers all of
them in one read transaction (no timer: a lone handshake is not delayed). What a look-up answers does not change
(:func:`lookup_psks`): the PSK through the key provider, None for an unknown identity, an identity that is not
UTF-8, a card without a PSK or a failure (logged; never a key), and the card found is handed to the session that
the handshake opens.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from gpchannel.keystore import BaseKeyProvider, KeyProvider, KeyPurpose
from gpchannel.server.key_batch import BatchKeyRows
from gpchannel.server.repository import CardRecord, Repository

__all__ = ["PskBatch", "lookup_psks"]

_log = logging.getLogger("gpchannel.server.ras")


def lookup_psks(
    repository: Repository, keys: KeyProvider, identities: Sequence[bytes], cards: MutableMapping[str, CardRecord]
) -> list[bytes | None]:
    """identity -> PSK for each identity, in order, in one read transaction (blocking: run it in a worker thread);
    the card of each identity that has a PSK goes into ``cards`` (by the identity's text). Never raises."""
    texts: list[str | None] = []
    for identity in identities:
        try:
            texts.append(identity.decode("utf-8"))
        except UnicodeDecodeError:
            _log.info("PSK identity %r is not UTF-8: refused", identity)
            texts.append(None)
    try:
        with repository.read_block():  # the cards and their keys: one read transaction, two queries
            found = repository.cards_by_identity([t for t in texts if t is not None])
            ids = [card.id for card in found.values()]
            rows = repository.card_key_rows(ids, KeyPurpose.PSK.value)
            reader = keys
            if isinstance(keys, BaseKeyProvider):  # the key rows from the batch (others, e.g. masters, read)
                reader = keys.reading_from(BatchKeyRows(rows, repository, {(i, KeyPurpose.PSK.value) for i in ids}))
            return [None if t is None else _lookup(reader, t, found.get(t), cards) for t in texts]
    except Exception:
        _log.exception("PSK look-up of %d identities failed", len(identities))
        return [None] * len(identities)


def _lookup(
    keys: KeyProvider, text: str, card: CardRecord | None, cards: MutableMapping[str, CardRecord]
) -> bytes | None:
    if card is None:
        _log.info("unknown PSK identity %r", text)
        return None
    try:
        psk = keys.psk(card)
    except Exception:
        _log.exception("PSK lookup for identity %r failed", text)
        return None
    if psk is None:
        _log.info("card %d (identity %r) has no PSK", card.id, text)
        return None
    cards[text] = card
    return psk


class PskBatch:
    """The pending PSK look-ups of one server process and the store calls that answer them."""

    def __init__(
        self,
        lookup: Callable[[Sequence[bytes]], list[bytes | None]],
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
        limit: int = 500,
    ) -> None:
        self._lookup = lookup
        self._run = run
        """Runs a blocking store call off the event loop (the sessions' StoreGate.call)."""
        self._limit = limit
        self._pending: list[tuple[bytes, asyncio.Future[bytes | None]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.calls = 0
        """Store calls made (for the tests and the bench)."""

    async def get(self, identity: bytes) -> bytes | None:
        """The identity's PSK (None: unknown, or no PSK); the store call's error if it could not be made."""
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._pending.append((identity, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the handshakes whose flights arrived with this one queue theirs
        while self._pending:
            batch, self._pending = self._pending[: self._limit], self._pending[self._limit :]
            try:
                psks: list[bytes | None] = await self._run(functools.partial(self._lookup, [i for i, _ in batch]))
                self.calls += 1
            except BaseException as exc:  # every waiter learns it (the gate is shut, the call was cancelled)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    rest, self._pending = self._pending, []  # nobody would flush them: they learn it too
                    for _, future in rest:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                continue
            for (_, future), psk in zip(batch, psks, strict=True):
                if not future.done():
                    future.set_result(psk)
