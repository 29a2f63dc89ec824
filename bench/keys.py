"""SCP80 packets per second with the keys in the database (DbKeyProvider) versus in a PKCS#11 token
(Pkcs11KeyProvider on SoftHSM2, made by scripts/softhsm.sh in a temporary directory).

Two figures per cipher suite, each the PKCS#11 rate beside the DB rate measured in the same process:

- ``per card``: what the SCP80 campaign worker does for each card: the key set looked up
  (``scp80_keyset``: one ``card_keys`` read per key, then GCM unwrap or a token object) and one command packet
  secured (``secure_command`` of a 100-byte script, ciphered + CC);
- ``packet only``: ``secure_command`` with a key set already in hand (the cost of doing the cipher and CC calls
  in the token rather than in-process).

Run: ``python -m bench.keys`` (``--seconds``, ``--cards``); part of ``make bench``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.timing import Comparison, rate
from gpchannel.errors import TransportError
from gpchannel.keystore import BaseKeyProvider
from gpchannel.ota import CipherAlgorithm, CounterMode, Kic, Kid, MacAlgorithm, Spi, secure_command
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.repository import CardRecord, Repository

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = bytes(range(100))
TAR = bytes.fromhex("b00011")
SPI = Spi(counter_mode=CounterMode.HIGHER)
_SUITES = {
    "AES-CBC + AES-CMAC": (CipherAlgorithm.AES_CBC, MacAlgorithm.AES_CMAC, "aes-cbc", "aes-cmac"),
    "3DES-2KEY CBC + CBC-MAC": (
        CipherAlgorithm.DES3_2KEY_CBC,
        MacAlgorithm.DES3_2KEY_CBC_MAC,
        "3des-2key",
        "3des-2key",
    ),
}


@contextmanager
def _softhsm(base: Path) -> Iterator[tuple[str, str, str]]:
    env = dict(os.environ, SOFTHSM_DIR=str(base / "softhsm"))
    try:
        result = subprocess.run(
            [str(ROOT / "scripts" / "softhsm.sh"), "url"], env=env, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TransportError(f"scripts/softhsm.sh did not run: {exc}") from None
    if result.returncode != 0:
        raise TransportError(f"scripts/softhsm.sh failed: {(result.stderr or result.stdout).strip()}")
    settings = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    os.environ["SOFTHSM2_CONF"] = settings["conf"]
    yield settings["lib"], settings["token"], settings["pin"]


def _load(provider: BaseKeyProvider, repo: Repository, cards: int, algs: tuple[str, str], tag: int) -> list[CardRecord]:
    """``cards`` cards with a KIc/KID key set 1 stored through ``provider`` (``tag`` keeps the ICCIDs apart)."""
    out = []
    for i in range(cards):
        card_id = repo.upsert_card(iccid=f"898821{tag:04d}{i:09d}", psk_identity=None)
        kic = bytes((i + j) % 256 for j in range(16))
        provider.store_card_keys(card_id, {("kic", 1): (kic, algs[0]), ("kid", 1): (bytes(16), algs[1])})
        card = repo.card(card_id)
        assert card is not None
        out.append(card)
    return out


def _per_card(provider: BaseKeyProvider, cards: list[CardRecord], kic: Kic, kid: Kid) -> Callable[[], object]:
    cycle = itertools.cycle(cards)
    counter = itertools.count(1)

    def one() -> object:
        keyset = provider.scp80_keyset(next(cycle), 1)
        return secure_command(SCRIPT, spi=SPI, kic=kic, kid=kid, tar=TAR, counter=next(counter), keyset=keyset)

    return one


def _packet_only(provider: BaseKeyProvider, card: CardRecord, kic: Kic, kid: Kid) -> Callable[[], object]:
    keyset = provider.scp80_keyset(card, 1)
    counter = itertools.count(1)

    def one() -> object:
        return secure_command(SCRIPT, spi=SPI, kic=kic, kid=kid, tar=TAR, counter=next(counter), keyset=keyset)

    return one


def run(seconds: float = 1.0, cards: int = 50) -> list[Comparison]:
    """The comparisons (PKCS#11 rate, DB rate as the baseline); TransportError when SoftHSM2 is unavailable."""
    from gpchannel.io.pkcs11 import Pkcs11KeyProvider

    out: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="gpchannel-bench-keys-") as tmp, _softhsm(Path(tmp)) as (lib, token, pin):
        repo = Repository(f"sqlite:///{Path(tmp) / 'keys.db'}")
        db = DbKeyProvider(repo, os.urandom(32))
        hsm = Pkcs11KeyProvider(repo, lib, token, pin)
        try:
            for n, (name, (cipher, mac, kic_alg, kid_alg)) in enumerate(_SUITES.items()):
                kic, kid = Kic.for_cipher(cipher, 1), Kid.for_mac(mac, 1)
                db_cards = _load(db, repo, cards, (kic_alg, kid_alg), 2 * n)
                hsm_cards = _load(hsm, repo, cards, (kic_alg, kid_alg), 2 * n + 1)
                out.append(
                    Comparison(
                        f"{name}, per card: PKCS#11 (SoftHSM2)",
                        rate(_per_card(hsm, hsm_cards, kic, kid), seconds),
                        "DB provider",
                        rate(_per_card(db, db_cards, kic, kid), seconds),
                        unit="packets/s",
                    )
                )
                out.append(
                    Comparison(
                        f"{name}, packet only: PKCS#11 (SoftHSM2)",
                        rate(_packet_only(hsm, hsm_cards[0], kic, kid), seconds),
                        "DB provider",
                        rate(_packet_only(db, db_cards[0], kic, kid), seconds),
                        unit="packets/s",
                    )
                )
        finally:
            hsm.close()
            repo.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.keys")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per figure")
    parser.add_argument("--cards", type=int, default=50, help="cards per provider and suite")
    args = parser.parse_args()
    for line in run(args.seconds, args.cards):
        print(line.line())


if __name__ == "__main__":
    main()
