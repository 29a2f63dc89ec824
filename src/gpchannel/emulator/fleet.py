"""A fleet of emulated cards in one directory: what ``gpchannel fleet generate`` writes and what the handset
bridge's fleet mode (:mod:`gpchannel.emulator.fleet_handsets`) serves.

Layout of a fleet directory::

    fleet.json          the manifest (mode 0600: it holds every card's keys, as a personalisation file does)
    inventory.csv       the same cards as the OTA server imports them (gpchannel.server.inventory's format)
    cards/<ICCID>/      one emulator state directory per card (io/store.py), written by a journal checkpoint
    cards.journal       the cards' changes since the last checkpoint (io/fleet_journal.py: group commit)

Each card is the base profile (``--profile``, or :data:`BASE_PROFILE`) with its own ICCID, MSISDN, SCP80 key
set (KIc / KID, key version ``kvn``, counter 0) and SCP81 PSK identity and PSK. The TARs are shared
(``[[ota.tars]]``: RAM on the ISD at ``000000``; RFM ``B00001`` is built in).

Keys: random (``os.urandom``) or, with a master key, diversified per card with NIST SP 800-108 in counter mode
over AES-CMAC (the ``cryptography`` package's KBKDFCMAC; OpenSSL's ``KBKDF`` gives the same bytes): label = the
purpose (``KIC``, ``KID``, ``PSK``), context = the ICCID's digits as ASCII, a 32-bit counter before the fixed
data, a 00 separator and L in 32 bits. This is our choice (the issue names no scheme): an operator holding the
master key can rebuild any card's keys from its ICCID, and the scheme is the standard KDF, checked against the
openssl command line (tests/vectors/emulator/).

Speed: a 1,000-card fleet is generated in well under a second (one manifest, one inventory); a card never changed
is rebuilt from the manifest (emulator/fleet_template.py); its changes go to the fleet journal, several cards per
fdatasync, and reach its directory at a checkpoint (:meth:`Fleet.checkpoint`, :meth:`Fleet.close`).
"""

from __future__ import annotations

import copy
import csv
import datetime
import io
import json
import os
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpchannel.card.applets import AppletRegistry
from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import profile_from_dict
from gpchannel.card.state import CardState, LoadFile
from gpchannel.card.state_tracker import known_form
from gpchannel.emulator.app import emulator_applets
from gpchannel.emulator.fleet_keys import diversify_card_key, luhn_digit
from gpchannel.emulator.fleet_store import FleetCardStore, checkpoint_writer, stored_card_state
from gpchannel.emulator.fleet_template import StateTemplate
from gpchannel.errors import DecodeError, ProfileError
from gpchannel.io.fleet_journal import FleetJournal
from gpchannel.io.store import DirectoryStore

__all__ = [
    "BASE_PROFILE",
    "CARDS_DIR",
    "FLEET_FILE",
    "INVENTORY_FILE",
    "Fleet",
    "FleetCard",
    "FleetSettings",
    "diversify_card_key",
    "generate_fleet",
    "luhn_digit",
    "write_inventory",
]

FLEET_FILE = "fleet.json"
INVENTORY_FILE = "inventory.csv"
CARDS_DIR = "cards"
FLEET_FORMAT = 1

BASE_PROFILE = """
# The base of every fleet card: the GlobalPlatform test keys on the ISD (SCP03, i=70), the echo applet.
[card]
lifecycle = "SECURED"

[isd]
aid = "A000000151000000"
scp = "03"
i = "70"
sequence_counter = 0

[[isd.keysets]]
kvn = 0x30
type = "aes"
enc = "404142434445464748494A4B4C4D4E4F"
mac = "404142434445464748494A4B4C4D4E4F"
dek = "404142434445464748494A4B4C4D4E4F"

[[applications]]
aid = "A0000000871002FF49FF0589"
kind = "echo"
sd = "A000000151000000"
privileges = "00"
lifecycle = "SELECTABLE"
"""
"""The default base profile (../shared/docs/profile.md); ``[ota]``, ``[scp81]`` and ``card.iccid`` are the fleet's."""

_SD_LOAD_FILE_AID = bytes.fromhex("A0000001515350")
_SD_MODULE_AID = bytes.fromhex("A000000151535041")
_KEY_LENGTHS = {"aes-cbc": 16, "aes-cmac": 16, "3des-2key": 16, "3des-3key": 24, "des-cbc": 8, "des-cbc-mac": 8}


@dataclass(frozen=True, slots=True)
class FleetCard:
    """One card of the fleet: identifiers and keys (never in reprs)."""

    index: int
    iccid: str
    msisdn: str
    kic: bytes = field(repr=False)
    kid: bytes = field(repr=False)
    psk_identity: str
    psk: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "iccid": self.iccid,
            "msisdn": self.msisdn,
            "kic": self.kic.hex().upper(),
            "kid": self.kid.hex().upper(),
            "psk_identity": self.psk_identity,
            "psk": self.psk.hex().upper(),
        }

    @classmethod
    def from_dict(cls, index: int, raw: Mapping[str, Any]) -> FleetCard:
        try:
            return cls(
                index,
                str(raw["iccid"]),
                str(raw["msisdn"]),
                bytes.fromhex(str(raw["kic"])),
                bytes.fromhex(str(raw["kid"])),
                str(raw["psk_identity"]),
                bytes.fromhex(str(raw["psk"])),
            )
        except (KeyError, ValueError) as exc:
            raise DecodeError(f"{FLEET_FILE}: card {index}: {exc}") from None


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """What every card of a fleet shares: the SCP80 key version and algorithms, the TARs, the SCP81 server."""

    kvn: int = 1
    kic_algorithm: str = "aes-cbc"
    kid_algorithm: str = "aes-cmac"
    tars: tuple[tuple[str, str], ...] = (("000000", "A000000151000000"),)
    """(TAR, target AID) pairs in hex; RFM at B00001 is the card's built-in."""
    scp81_server: str = "127.0.0.1:8443"
    scp81_uri: str = "/gp/admin"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kvn": self.kvn,
            "kic_algorithm": self.kic_algorithm,
            "kid_algorithm": self.kid_algorithm,
            "tars": [{"tar": t, "target": a} for t, a in self.tars],
            "scp81": {"server": self.scp81_server, "uri": self.scp81_uri},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FleetSettings:
        try:
            scp81 = raw.get("scp81", {})
            return cls(
                int(raw["kvn"]),
                str(raw["kic_algorithm"]),
                str(raw["kid_algorithm"]),
                tuple((str(t["tar"]), str(t["target"])) for t in raw.get("tars", [])),
                str(scp81.get("server", "127.0.0.1:8443")),
                str(scp81.get("uri", "/gp/admin")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"{FLEET_FILE}: settings: {exc}") from None


class Fleet:
    """A fleet directory: the cards of its manifest and their state directories (see the module docstring)."""

    def __init__(
        self, directory: Path, settings: FleetSettings, profile: Mapping[str, Any], cards: Sequence[FleetCard]
    ) -> None:
        self.directory = directory
        self._cards_dir = directory / CARDS_DIR
        self.settings = settings
        self.profile: dict[str, Any] = copy.deepcopy(dict(profile))
        self.cards = tuple(cards)
        self._by_msisdn = {c.msisdn: c for c in self.cards}
        self._by_iccid = {c.iccid: c for c in self.cards}
        if len(self._by_msisdn) != len(self.cards) or len(self._by_iccid) != len(self.cards):
            raise DecodeError(f"{FLEET_FILE}: ICCIDs and MSISDNs must be unique")
        self._journal: FleetJournal | None = None
        self._journal_lock = threading.RLock()  # stored_state builds an initial state while holding it
        self._templates: dict[tuple[str, ...] | None, StateTemplate] = {}
        self.checkpoint_bytes = 8 << 20
        """The journal's size past which the handset bridge checkpoints it."""

    def __len__(self) -> int:
        return len(self.cards)

    def __iter__(self) -> Iterator[FleetCard]:
        return iter(self.cards)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Fleet:
        """Read ``directory``/fleet.json; :class:`DecodeError` if it is not a fleet manifest."""
        path = Path(directory)
        try:
            raw = json.loads((path / FLEET_FILE).read_bytes())
        except FileNotFoundError:
            raise DecodeError(f"{path} holds no {FLEET_FILE}: run gpchannel fleet generate first") from None
        except ValueError as exc:
            raise DecodeError(f"{path / FLEET_FILE} is not JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != FLEET_FORMAT:
            raise DecodeError(f"{path / FLEET_FILE}: not a fleet manifest of format {FLEET_FORMAT}")
        cards = [FleetCard.from_dict(n, c) for n, c in enumerate(raw.get("cards", []))]
        return cls(path, FleetSettings.from_dict(raw.get("settings", {})), raw.get("profile", {}), cards)

    def save(self) -> None:
        """Write the manifest atomically (temp file + fsync + rename), readable by its owner only."""
        raw = {
            "format": FLEET_FORMAT,
            "settings": self.settings.to_dict(),
            "profile": self.profile,
            "cards": [c.to_dict() for c in self.cards],
        }
        _write_private(self.directory / FLEET_FILE, json.dumps(raw, indent=0).encode())

    def by_msisdn(self, msisdn: str) -> FleetCard | None:
        return self._by_msisdn.get(msisdn)

    def by_iccid(self, iccid: str) -> FleetCard | None:
        return self._by_iccid.get(iccid)

    def state_dir(self, card: FleetCard) -> Path:
        return self._cards_dir / card.iccid

    def card_tables(self, card: FleetCard) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The card's own profile fields: its ICCID, its ``[ota]`` and ``[scp81]`` tables."""
        s = self.settings
        keyset = {"kvn": s.kvn, "kic": card.kic.hex().upper(), "kic_algorithm": s.kic_algorithm}
        keyset.update(kid=card.kid.hex().upper(), kid_algorithm=s.kid_algorithm, counter=0)
        ota = {"keysets": [keyset], "tars": [{"tar": t, "target": a} for t, a in s.tars]}
        scp81 = {"psk_identity": card.psk_identity, "psk": card.psk.hex().upper(), "server": s.scp81_server}
        scp81.update(uri=s.scp81_uri, agent_id=f"//se-id/iccid/{card.iccid}")
        return card.iccid, ota, scp81

    def profile_of(self, card: FleetCard) -> dict[str, Any]:
        """The card's profile (a parsed TOML document): the base with the card's own fields."""
        raw = copy.deepcopy(self.profile)
        iccid, raw["ota"], raw["scp81"] = self.card_tables(card)
        raw.setdefault("card", {})["iccid"] = iccid
        return raw

    def initial_state(self, card: FleetCard, applets: AppletRegistry | None = None) -> CardState:
        """The card as personalised (ProfileError if the base profile does not make a card), from a template of
        the base profile checked against the profile itself (emulator/fleet_template.py)."""
        return self._initial(card, applets)[0]

    def _initial(self, card: FleetCard, applets: AppletRegistry | None) -> tuple[CardState, dict[str, Any] | None]:
        """The initial state and, when the template made it, its JSON form (StateTemplate.state_and_form)."""
        if not (0 <= card.index < len(self.cards) and self.cards[card.index] == card):
            return self._personalised(card, applets), None
        names = tuple(applets.names()) if applets is not None else None
        with self._journal_lock:
            template = self._templates.get(names)
            if template is None:
                template = self._templates[names] = StateTemplate(
                    self.profile.get("card", {}),
                    lambda n: self._personalised(self.cards[n], applets),
                    lambda n: self.card_tables(self.cards[n]),
                    len(self.cards),
                    lambda n: _shape(self.cards[n]),
                )
        return template.state_and_form(card.index)

    def _personalised(self, card: FleetCard, applets: AppletRegistry | None) -> CardState:
        state = profile_from_dict(self.profile_of(card), applets)
        if state.load_file(_SD_LOAD_FILE_AID) is None:  # as emulator.app does: the SD package in ROM
            state.load_files.append(LoadFile(_SD_LOAD_FILE_AID, state.isd_aid, [_SD_MODULE_AID]))
        return state

    def journal(self) -> FleetJournal:
        """The fleet's journal (``cards.journal``, io/fleet_journal.py), opened at first use: every card opened
        by :meth:`open_card` commits through it (group commit), until :meth:`close` folds it into the cards'
        directories."""
        with self._journal_lock:
            if self._journal is None:
                journal = FleetJournal(self.directory, checkpoint_bytes=self.checkpoint_bytes)
                journal.open()
                self._journal = journal
            return self._journal

    def open_card(
        self, card: FleetCard, *, random: Callable[[int], bytes] = os.urandom, applets: AppletRegistry | None = None
    ) -> Card:
        """The card's emulator core over its state directory and the fleet journal. A card never used starts
        from its personalised state without writing it (it can be rebuilt from the manifest at any time); its
        changes, from the first OTA packet it accepts, are committed to the fleet journal."""
        registry = applets or emulator_applets()
        store = FleetCardStore(
            self.journal(), card.iccid, DirectoryStore(self.state_dir(card)), lambda: self.initial_state(card, registry)
        )
        state = store.load()
        if state is None:
            state, form = self._initial(card, registry)
            if form is not None:
                known_form(state, form)  # its tracker takes the template's JSON form instead of serialising it
        return Card(state, store, random=random, applets=registry, today=_today_utc)

    def stored_state(self, card: FleetCard) -> CardState | None:
        """The card's committed state (its directory and its journal lines), None if it was never used."""
        with self._journal_lock:
            return stored_card_state(self, card, self._journal)

    def checkpoint(self) -> int:
        """Fold the journal into the cards' directories (each written durably), then empty it; cards written."""
        with self._journal_lock:
            journal = self._journal
        return 0 if journal is None else journal.checkpoint(checkpoint_writer(self))

    def close(self) -> None:
        """Checkpoint and close the journal (the cards' directories then hold every committed change)."""
        self.checkpoint()
        with self._journal_lock:
            journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    def ota_counter(self, card: FleetCard) -> int:
        """The SCP80 counter the card holds for the fleet's key set (0 if the card was never used)."""
        state = self.stored_state(card)
        if state is None:
            return 0
        for keyset in state.ota.get("ota", {}).get("keysets", []):
            if keyset.get("kvn") == self.settings.kvn:
                return int(keyset.get("counter", 0))
        return 0


def _shape(card: FleetCard) -> tuple[int, int, int, bool]:
    """What the profile checks of a card's tables (Fleet.card_tables) depend on: the lengths of its keys (always
    written as hex) and whether its PSK identity is empty; everything else in them is the fleet's."""
    return len(card.kic), len(card.kid), len(card.psk), bool(card.psk_identity)


def _today_utc() -> datetime.date:
    """The date SCP10 certificates are checked against (GP 2.2.1 F.1.3.2), as emulator.app has it."""
    return datetime.datetime.now(datetime.UTC).date()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def generate_fleet(
    directory: str | os.PathLike[str],
    count: int,
    *,
    settings: FleetSettings | None = None,
    profile: str | None = None,
    master_key: bytes | None = None,
    iccid_prefix: str = "89882110",
    msisdn_prefix: str = "4915",
    first: int = 1,
    random: Callable[[int], bytes] = os.urandom,
    force: bool = False,
) -> Fleet:
    """Create a fleet of ``count`` cards in ``directory`` (the manifest; state directories come later).

    ICCID = ``iccid_prefix`` + the card number (``first``, ``first + 1``...) padded to 18 digits + the Luhn digit;
    MSISDN = ``msisdn_prefix`` + the number padded to 8 digits; the PSK identity is the ICCID (as the example
    profile). ``profile``: the base profile's TOML text (:data:`BASE_PROFILE` by default; its ``[ota]`` and
    ``[scp81]`` are replaced). :class:`ProfileError` for a bad base profile or an existing fleet without
    ``force``.
    """
    path = Path(directory)
    if (path / FLEET_FILE).exists() and not force:
        raise ProfileError(f"{path} already holds a fleet; pass --force to replace it")
    if not 1 <= count <= 10_000_000:
        raise ValueError(f"count must be 1..10000000, got {count}")
    if not iccid_prefix.isdigit() or len(iccid_prefix) > 10 or not msisdn_prefix.isdigit():
        raise ValueError("the ICCID and MSISDN prefixes are digits (ICCID prefix at most 10)")
    settings = settings or FleetSettings()
    for name in (settings.kic_algorithm, settings.kid_algorithm):
        if name not in _KEY_LENGTHS:
            raise ValueError(f"unknown algorithm {name!r}")
    try:
        base = tomllib.loads(profile if profile is not None else BASE_PROFILE)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"the base profile is not valid TOML: {exc}") from None
    base.pop("ota", None)
    base.pop("scp81", None)
    kic_len, kid_len = _KEY_LENGTHS[settings.kic_algorithm], _KEY_LENGTHS[settings.kid_algorithm]
    cards = []
    for n in range(count):
        number = first + n
        body = f"{iccid_prefix}{number:0{18 - len(iccid_prefix)}d}"
        iccid = body + luhn_digit(body)
        if len(iccid) != 19:
            raise ValueError(f"card number {number} does not fit the ICCID prefix {iccid_prefix}")
        msisdn = f"{msisdn_prefix}{number:08d}"
        if master_key is not None:
            kic = diversify_card_key(master_key, "KIC", iccid, kic_len)
            kid = diversify_card_key(master_key, "KID", iccid, kid_len)
            psk = diversify_card_key(master_key, "PSK", iccid, 16)
        else:
            kic, kid, psk = random(kic_len), random(kid_len), random(16)
        cards.append(FleetCard(n, iccid, msisdn, kic, kid, iccid, psk))
    fleet = Fleet(path, settings, base, cards)
    fleet.initial_state(cards[0])  # the base profile must make a card: fail here, not at the first SMS
    fleet.save()
    return fleet


INVENTORY_COLUMNS = (
    "iccid",
    "msisdn",
    "psk_identity",
    "psk",
    "psk_kvn",
    "kvn",
    "kic",
    "kic_algorithm",
    "kid",
    "kid_algorithm",
    "tar",
    "spi",
    "counter",
)
"""The columns of gpchannel.server.inventory's CSV format, in its order."""
INVENTORY_SPI = "1619"
"""CC, ciphered, counter higher; PoR required, with CC, ciphered, in the SMS-DELIVER-REPORT (TS 102 225 5.1.1)."""


def write_inventory(fleet: Fleet, path: str | os.PathLike[str], *, master_label: str | None = None) -> None:
    """The fleet as an inventory for the OTA server (gpchannel.server.inventory's CSV; one card a line; mode 0600).

    Keys are written in hex, or, with ``master_label``, as ``master:LABEL`` references (for a fleet generated
    with a master key: the server derives each card's keys itself and the file holds no key at all).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(INVENTORY_COLUMNS)
    s = fleet.settings
    tar = s.tars[0][0] if s.tars else "000000"

    def key(value: bytes) -> str:
        return f"master:{master_label}" if master_label is not None else value.hex().upper()

    for c in fleet.cards:
        writer.writerow(
            (
                c.iccid,
                c.msisdn,
                c.psk_identity,
                key(c.psk),
                1,
                s.kvn,
                key(c.kic),
                s.kic_algorithm,
                key(c.kid),
                s.kid_algorithm,
                tar,
                INVENTORY_SPI,
                0,
            )
        )
    _write_private(Path(path), out.getvalue().encode())
