"""What a user's pyscard script does with the emulator: ``smartcard.System.readers()``, ``createConnection()``,
``transmit(list[int])``, with the gpchannel library used only for the secure channel host classes.

Also: the emulator served in a thread (``gpchannel.emulator.app.serve``) on a free vpcd slot, and the minimal
Java Card CAP components a LOAD needs (JCVM 3.0.5, 6.3 Header and 6.5 Applet components).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartcard import scard
from smartcard.Exceptions import CardConnectionException, NoCardException
from smartcard.System import readers

from gpchannel.card.dispatcher import Card
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.emulator.app import open_card, serve
from gpchannel.io.pcsc import card_present
from gpchannel.io.vpcd import VpcdSlotLock, vpcd_base_port
from gpchannel.scp.common import HostChannel, SecurityLevel
from gpchannel.scp.scp02_host import Scp02Host
from gpchannel.scp.scp03_host import Scp03Host

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "examples" / "profiles"
DEFAULT_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
ISD_AID = bytes.fromhex("A000000151000000")
ECHO_AID = bytes.fromhex("A0000000871002FF49FF0589")
SELECT_ISD = bytes.fromhex("00A4040008") + ISD_AID + b"\x00"


def unique_atr() -> bytes:
    """A T=1 ATR with 8 random historical bytes (ISO 7816-3 8.2: TS 3B, T0 88, TD1 80, TD2 01, TCK), so a test
    knows the card in the reader is its own and not another developer's virtual card on the shared pcscd."""
    body = bytes([0x88, 0x80, 0x01]) + os.urandom(8)
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


def profile(tmp_path: Path, scp: str, i: str | None = None) -> tuple[Path, int, bytes]:
    """An example profile (examples/profiles/scpNN.toml) with i changed to ``i`` and a unique ATR; returns it,
    its key set's KVN and the ATR."""
    source = PROFILES / f"scp{scp}.toml"
    text = source.read_text()
    default_i = {"02": "55", "03": "70"}[scp]
    assert f'i = "{default_i}"' in text and "[card]\n" in text
    atr = unique_atr()
    text = text.replace(f'i = "{default_i}"', f'i = "{i or default_i}"', 1)
    text = text.replace("[card]\n", f'[card]\natr = "{atr.hex().upper()}"\n', 1)
    path = tmp_path / f"scp{scp}-i{i or default_i}.toml"
    path.write_text(text)
    return path, {"02": 0x20, "03": 0x30}[scp], atr


def connect(reader_name: str, atr: bytes | None = None, timeout: float = 20.0) -> Any:
    """A connected pyscard CardConnection to the reader named ``reader_name``; with ``atr``, waits (up to
    ``timeout`` s) until the card there is the one with that ATR and has answered one APDU (a SELECT of the
    ISD, the card's default application anyway): pcscd may still hold a killed card's ATR, and a bare connect
    then "succeeds" against it. Between tries it waits for the reader's state to change."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reader = next(r for r in readers() if str(r) == reader_name)
            connection = reader.createConnection()
            connection.connect()
            if atr is None:
                return connection
            if bytes(connection.getATR()) == atr:
                try:
                    connection.transmit(list(SELECT_ISD))
                    return connection
                except CardConnectionException:
                    pass
            with contextlib.suppress(CardConnectionException):
                connection.disconnect()
        except (NoCardException, CardConnectionException, StopIteration):
            if atr is None:
                raise
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            assert atr is not None
            raise AssertionError(f"no card with ATR {atr.hex().upper()} in {reader_name!r} after {timeout}s")
        # The reader's state changes when a card comes or goes; the bound covers a card that pcscd powers
        # on without a state change.
        wait_reader_change(reader_name, min(remaining, 0.5))


def _reader_state(context: Any, reader_name: str, known: int, timeout: float) -> int | None:
    """SCardGetStatusChange on one reader: its state once it differs from ``known``, None on timeout."""
    hresult, states = scard.SCardGetStatusChange(context, max(0, int(timeout * 1000)), [(reader_name, known)])
    if hresult == scard.SCARD_E_TIMEOUT:
        return None
    assert hresult == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hresult)
    state: int = states[0][1]
    return state & ~int(scard.SCARD_STATE_CHANGED)


@contextmanager
def _context() -> Iterator[Any]:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hresult)
    try:
        yield context
    finally:
        scard.SCardReleaseContext(context)


def wait_reader_change(reader_name: str, timeout: float) -> None:
    """Until the state of ``reader_name`` changes (a card inserted or removed, a power change), or ``timeout``."""
    with _context() as context:
        current = _reader_state(context, reader_name, scard.SCARD_STATE_UNAWARE, 0)
        if current is not None:
            _reader_state(context, reader_name, current, timeout)


def wait_empty(reader_name: str, timeout: float = 20.0) -> float:
    """Until pcscd shows no card in ``reader_name`` (a killed card's removal recorded); the seconds it took.

    A test that kills a card waits for this before serving the next one: vpcd accepts a new card only in a
    presence poll and while it holds no card socket (gpchannel.io.vpcd_watch)."""
    start = time.monotonic()
    deadline = start + timeout
    with _context() as context:
        state: int | None = scard.SCARD_STATE_UNAWARE
        while True:
            state = _reader_state(context, reader_name, state or scard.SCARD_STATE_UNAWARE, deadline - time.monotonic())
            if state is None:
                raise AssertionError(f"{reader_name!r} still shows a card after {timeout}s")
            if state & scard.SCARD_STATE_EMPTY:
                return time.monotonic() - start


def transmit(connection: Any, apdu: bytes) -> ResponseApdu:
    """One exchange; 61xx answered with GET RESPONSE and 6Cxx with the command again, as scripts do for T=0."""
    data, sw1, sw2 = connection.transmit(list(apdu))
    out = bytes(data)
    while sw1 == 0x61:
        more, sw1, sw2 = connection.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
        out += bytes(more)
    if sw1 == 0x6C:
        data, sw1, sw2 = connection.transmit([*apdu[:4], sw2] if len(apdu) == 5 else [*apdu[:-1], sw2])
        out = bytes(data)
    return ResponseApdu(out, (sw1 << 8) | sw2)


def open_channel(connection: Any, scp: str, i: int, level: int, kvn: int, key: bytes = DEFAULT_KEY) -> HostChannel:
    """SELECT the ISD, INITIALIZE UPDATE and EXTERNAL AUTHENTICATE at ``level``; returns the open host channel."""
    assert transmit(connection, SELECT_ISD).sw == 0x9000
    host: HostChannel
    if scp == "03":
        keys = StaticKeys.single(key, kvn, KeyType.AES)
        host = Scp03Host(
            keys, level=SecurityLevel(level), host_challenge=os.urandom(8), i_param=i, kvn=kvn, aid=ISD_AID
        )
    else:
        keys = StaticKeys.single(key, kvn, KeyType.DES3)
        host = Scp02Host(
            keys, level=SecurityLevel(level), host_challenge=os.urandom(8), i_param=i, kvn=kvn, aid=ISD_AID
        )
    host.receive_initialize_update(transmit(connection, host.initialize_update().to_bytes()))
    host.receive_external_authenticate(transmit(connection, host.external_authenticate().to_bytes()))
    assert host.is_open
    return host


def secure(connection: Any, host: HostChannel, apdu: bytes) -> ResponseApdu:
    """Wrap the plain command ``apdu`` in the channel, send it, and verify / decrypt the response."""
    wrapped = host.wrap(CommandApdu.from_bytes(apdu))
    return host.unwrap(transmit(connection, wrapped.to_bytes()))


def lv(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def tlv(tag: int, value: bytes) -> bytes:
    assert len(value) < 0x80
    return bytes([tag, len(value)]) + value


def aids_in_status(data: bytes) -> list[bytes]:
    """The AIDs (tag 4F) of the GET STATUS entries (E3 templates, P2 = 02; GP 2.3.1 Table 11-36)."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        tag, length = data[pos], data[pos + 1]
        assert tag == 0xE3 and length < 0x80, data.hex()
        inner, pos = data[pos + 2 : pos + 2 + length], pos + 2 + length
        p = 0
        while p < len(inner):
            t, n = inner[p], inner[p + 1]
            if t == 0x4F:
                out.append(inner[p + 2 : p + 2 + n])
            p += 2 + n
    return out


def get_status(connection: Any, host: HostChannel, p1: int) -> list[bytes]:
    """GET STATUS (80 F2 P1 02 with 4F 00: every entry) through the channel, 6310 continuations followed;
    no entry at all is 6A88 (GP 2.3.1 11.4.3), returned as []."""
    aids: list[bytes] = []
    p2 = 0x02
    while True:
        response = secure(connection, host, bytes([0x80, 0xF2, p1, p2, 0x02, 0x4F, 0x00, 0x00]))
        if response.sw == 0x6A88 and p2 == 0x02:
            return []
        assert response.sw in (0x9000, 0x6310), f"GET STATUS {p1:02X}: {response.sw:04X}"
        aids += aids_in_status(response.data)
        if response.sw == 0x9000:
            return aids
        p2 = 0x03


def cap_components(package_aid: bytes, module_aids: list[bytes]) -> bytes:
    """A Load File Data Block of CAP components: a Header (tag 1, magic DECAFFED, CAP 2.2, package 1.0 with
    its AID) and an Applet component (tag 3) naming each module with an install method offset."""
    header = b"\xde\xca\xff\xed" + bytes([0x02, 0x02, 0x00, 0x00, 0x01]) + lv(package_aid)
    applet = bytes([len(module_aids)]) + b"".join(lv(aid) + b"\x00\x10" for aid in module_aids)
    return b"".join(bytes([tag]) + len(info).to_bytes(2, "big") + info for tag, info in ((1, header), (3, applet)))


def reader_port(reader: str) -> int:
    """The vpcd TCP port of a "Virtual PCD 00 NN" reader: the base port plus the slot number."""
    return vpcd_base_port() + int(reader.split()[-1], 16)


@contextmanager
def claimed_reader(pcscd_readers: list[str], attempts: int = 200) -> Iterator[str]:
    """A vpcd reader with no card whose slot lock (gpchannel.io.vpcd.VpcdSlotLock) this process holds until the
    block ends, so no cooperating test or benchmark serves another card there meanwhile. Last slot first."""
    pause = threading.Event()
    for _ in range(attempts):
        for reader in reversed(pcscd_readers):
            lock = VpcdSlotLock(reader_port(reader))
            if not lock.try_acquire():
                continue
            if card_present(reader):
                lock.release()
                continue
            try:
                yield reader
            finally:
                lock.release()
            return
        pause.wait(0.1)
    raise AssertionError(f"no free vpcd slot among {pcscd_readers}: other virtual cards hold them")


@dataclass
class ServedCard:
    """The emulator (``gpchannel.emulator.app.serve`` in a thread) on the vpcd slot of ``reader``."""

    reader: str
    card: Card
    stop: threading.Event
    thread: threading.Thread

    def connect(self) -> Any:
        """A pyscard connection to this card (not another virtual card that took the slot meanwhile)."""
        return connect(self.reader, self.card.atr)


@contextmanager
def served(pcscd_readers: list[str], state_dir: Path, profile_path: Path | None) -> Iterator[ServedCard]:
    """Serve the card of ``state_dir`` (built from ``profile_path`` the first time) until the block ends."""
    card, _ = open_card(state_dir, profile_path)
    with claimed_reader(pcscd_readers) as reader:
        stop = threading.Event()
        thread = threading.Thread(
            target=serve, args=(card, "127.0.0.1", reader_port(reader)), kwargs={"stop": stop}, daemon=True
        )
        thread.start()
        try:
            yield ServedCard(reader, card, stop, thread)
        finally:
            stop.set()
            thread.join(10)
