"""server/key_batch.py: the key sets of a claimed batch, opened from the rows read with the claim, are the ones
the key provider gives card by card; a row outside the batch (a derived key's master) is read as before; a card
whose keys cannot be had is left out (its send reads them and fails the job with the reason)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpchannel.crypto.diversification import Diversification
from gpchannel.keystore import DerivedKey
from gpchannel.server.key_batch import BatchKeyRows, resolve_keysets
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.repository import CardRecord, JobTransport, Repository

MASTER = bytes(range(32))
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class CountingRepository:
    """The provider's key repository, counting the rows read from the database."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.reads: list[tuple[int, str, int | None]] = []

    def set_card_key(self, card_id: int, purpose: str, kvn: int, blob: bytes, algorithm: str) -> None:
        self.repo.set_card_key(card_id, purpose, kvn, blob, algorithm)

    def card_key(self, card_id: int, purpose: str, kvn: int | None = None) -> tuple[int, bytes, str] | None:
        self.reads.append((card_id, purpose, kvn))
        return self.repo.card_key(card_id, purpose, kvn)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    with Repository(f"sqlite:///{tmp_path / 'keys.db'}", clock=lambda: NOW) as r:
        yield r


def _card(repo: Repository, n: int) -> CardRecord:
    card = repo.card(repo.upsert_card(iccid=f"89882110000000000{n:02d}", psk_identity=None, msisdn=f"49170000{n:04d}"))
    assert card is not None
    return card


def test_the_batch_key_sets_are_the_providers_and_read_nothing_more(repo: Repository) -> None:
    keys = DbKeyProvider(repo, MASTER)
    plain, derived, bare, master = (_card(repo, n) for n in range(4))
    keys.store_card_keys(plain.id, {("kic", 1): (b"\x11" * 16, "aes-cbc"), ("kid", 1): (b"\x22" * 16, "aes-cmac")})
    keys.store_card_keys(master.id, {("kic", 1): (b"\x33" * 16, "aes-cbc"), ("kid", 1): (b"\x44" * 16, "aes-cmac")})
    ref = DerivedKey(master.id, Diversification.KDF3, bytes(range(10)))
    keys.store_derived_keys(derived.id, {("kic", 1): (ref, "aes-cbc"), ("kid", 1): (ref, "aes-cmac")})
    for card in (plain, derived, bare):
        repo.add_job(card_id=card.id, transport=JobTransport.SCP80, script=[b"\x80\xca\x00\x42"], not_before=NOW)
    batch = repo.claim_batch(transports=[JobTransport.SCP80], owner="w", limit=10, lease_seconds=60, now=NOW)
    assert sorted(batch.cards) == [plain.id, derived.id, bare.id]
    assert {(card, purpose) for card, purpose, _ in batch.keys} == {
        (plain.id, "kic"), (plain.id, "kid"), (derived.id, "kic"), (derived.id, "kid")
    }  # fmt: skip
    counting = CountingRepository(repo)
    found = resolve_keysets(keys, batch.keys, counting, [(plain, 1), (derived, 1), (bare, 1), (plain, 1)])
    assert sorted(found) == [(plain.id, 1), (derived.id, 1)]  # the card without keys is left out
    for card in (plain, derived):
        alone = keys.scp80_keyset(card, 1)
        got = found[(card.id, 1)]
        assert (got.kic_key, got.kid_key, got.cipher, got.mac) == (
            alone.kic_key,
            alone.kid_key,
            alone.cipher,
            alone.mac,
        )
    # read from the database: only the derived keys' master rows and the keyless card's missing row
    assert sorted(counting.reads) == sorted([(master.id, "kic", 1), (master.id, "kid", 1), (bare.id, "kic", 1)])


def test_rows_outside_the_batch_and_other_providers(repo: Repository) -> None:
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo, 1)
    keys.store_card_keys(card.id, {("kic", 2): (b"\x11" * 16, "aes-cbc"), ("kid", 2): (b"\x22" * 16, "aes-cmac")})
    counting = CountingRepository(repo)
    rows = BatchKeyRows({}, counting)
    assert rows.card_key(card.id, "kic", None) == repo.card_key(card.id, "kic", None)  # no KVN: the repository's
    assert rows.card_key(card.id, "kic", 2) is not None and len(counting.reads) == 2
    assert resolve_keysets(object(), {}, counting, [(card, 2)]) == {}  # type: ignore[arg-type]
