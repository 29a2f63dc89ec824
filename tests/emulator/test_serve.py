"""``gpchannel card serve`` as a real process behind pcscd: SIGTERM, pcscd restarts, ``--trace``, bad profiles,
and SIGKILL at any moment while a pyscard client runs PUT KEY / INSTALL / DELETE through pcscd.

The SIGKILL test kills the serve process ``GPCHANNEL_SERVE_KILLS`` times (default 20; 200 for the issue's
acceptance run): after each kill the state directory must load and be the state of just before or just after
the command in flight (GP 2.3.1 leaves atomicity to the card; the issue asks it of every command). The pcscd
restart test restarts the machine's shared pcscd, so outside CI it runs only when
GPCHANNEL_PCSCD_RESTART_TEST=1 (as tests/io/test_pcsc.py does).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from smartcard.Exceptions import CardConnectionException, NoCardException

from gpchannel.card.state import CardState, LoadFile
from gpchannel.codec.apdu import CommandApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.emulator.app import ECHO_LOAD_FILE_AID, ECHO_MODULE_AID, init_state
from gpchannel.io.store import DirectoryStore
from gpchannel.scp.common import HostChannel
from gpchannel.scp.put_key import PutKeyData, put_key_command
from tests.emulator.pyscard_user import (
    DEFAULT_KEY,
    ISD_AID,
    PROFILES,
    REPO,
    claimed_reader,
    connect,
    get_status,
    lv,
    open_channel,
    profile,
    reader_port,
    secure,
    tlv,
    transmit,
    wait_empty,
)
from tests.io.conftest import PCSCD_SCRIPT

pytestmark = pytest.mark.pcsc

INSTANCE = bytes.fromhex("A0000000871002FF49FF0590")
NEW_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def _command() -> list[str]:
    script = Path(sys.executable).parent / "gpchannel"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from gpchannel.cli.main import main; main()"]


@dataclass
class ServeProcess:
    """One ``gpchannel card serve`` process; its stderr (the log) goes to ``log``."""

    process: subprocess.Popen[bytes]
    log: Path
    reader: str
    atr: bytes

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited ({self.process.returncode}) before {needle!r}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} (x{count}) in the serve log after {timeout}s:\n{self.text()}")
            time.sleep(0.01)

    def connect(self, timeout: float = 20.0) -> Any:
        """A pyscard connection to this card, once pcscd sees it (its ATR, not another virtual card's)."""
        try:
            return connect(self.reader, self.atr, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the serve log:\n{self.text()}") from None

    def terminate(self, timeout: float = 10.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def start_serve(
    tmp_path: Path, reader: str, state_dir: Path, profile: Path | None, atr: bytes, *extra: str, name: str = "serve"
) -> ServeProcess:
    port = reader_port(reader)
    log = tmp_path / f"{name}.log"
    args = [*_command(), "card", "serve", "--state", str(state_dir), "--vpcd", f"127.0.0.1:{port}", *extra]
    if profile is not None:
        args += ["--profile", str(profile)]
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=sink, cwd=REPO)
    return ServeProcess(process, log, reader, atr)


@contextlib.contextmanager
def running(
    tmp_path: Path, readers: list[str], state_dir: Path, profile: Path | None, atr: bytes, *extra: str, name: str
) -> Iterator[ServeProcess]:
    with claimed_reader(readers) as reader:
        serve = start_serve(tmp_path, reader, state_dir, profile, atr, *extra, name=name)
        try:
            yield serve
        finally:
            if serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait()


def _put_key(connection: Any, host: HostChannel, key: bytes, *, replace: bool) -> int:
    data = PutKeyData.from_static_keys(StaticKeys.single(key, 0x31, KeyType.AES), host.encrypt_key)
    command = put_key_command(data, key_id=1, old_kvn=0x31 if replace else 0)
    return secure(connection, host, command.to_bytes()).sw


def test_sigterm_stops_cleanly_and_keeps_the_state(pcscd_readers: list[str], tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    profile_path, _, atr = profile(tmp_path, "03")
    with running(tmp_path, pcscd_readers, state_dir, profile_path, atr, name="first") as serve:
        connection = serve.connect()
        host = open_channel(connection, "03", 0x70, 0x33, 0x30)
        assert _put_key(connection, host, NEW_KEY, replace=False) == 0x9000
        # SIGTERM while the client still holds its connection: the loop ends, the process exits 0.
        assert serve.terminate() == 0, serve.text()
        with contextlib.suppress(CardConnectionException):
            connection.disconnect()
    assert "stopped" in serve.text()
    state = DirectoryStore(state_dir).load()
    assert state is not None and state.isd.sd is not None
    keyset = state.isd.sd.keyset(0x31)
    assert keyset is not None and keyset.enc == keyset.mac == keyset.dek == NEW_KEY
    # The next serve of the same directory (no profile needed) opens a channel with the new key set.
    with running(tmp_path, pcscd_readers, state_dir, None, atr, name="second") as serve:
        connection = serve.connect()
        host = open_channel(connection, "03", 0x70, 0x03, 0x31, NEW_KEY)
        assert get_status(connection, host, 0x80) == [ISD_AID]
        connection.disconnect()
        assert serve.terminate() == 0


@pytest.mark.skipif(
    not (os.environ.get("CI") or os.environ.get("GPCHANNEL_PCSCD_RESTART_TEST")),
    reason="restarts the shared pcscd: runs in CI, or set GPCHANNEL_PCSCD_RESTART_TEST=1",
)
# pyscard's destructor of the connection made before the restart cannot release its context any more.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_reconnects_when_pcscd_restarts(pcscd_readers: list[str], tmp_path: Path) -> None:
    profile_path, _, atr = profile(tmp_path, "02")
    with running(tmp_path, pcscd_readers, tmp_path / "state", profile_path, atr, name="serve") as serve:
        serve.wait_log("connected to vpcd")
        connection = serve.connect()
        open_channel(connection, "02", 0x55, 0x03, 0x20)
        result = subprocess.run([str(PCSCD_SCRIPT), "restart"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        with contextlib.suppress(CardConnectionException):
            connection.disconnect()
        serve.wait_log("connected to vpcd", count=2, timeout=30)
        connection = serve.connect()
        host = open_channel(connection, "02", 0x55, 0x03, 0x20)
        assert get_status(connection, host, 0x80) == [ISD_AID]
        connection.disconnect()
        assert serve.terminate() == 0


def test_trace_logs_apdus_and_never_keys(pcscd_readers: list[str], tmp_path: Path) -> None:
    profile_path, _, atr = profile(tmp_path, "03")
    with running(tmp_path, pcscd_readers, tmp_path / "state", profile_path, atr, "--trace", name="trace") as serve:
        connection = serve.connect()
        host = open_channel(connection, "03", 0x70, 0x33, 0x30)
        assert get_status(connection, host, 0x80) == [ISD_AID]
        assert _put_key(connection, host, NEW_KEY, replace=False) == 0x9000
        get_cplc = CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256)
        wire = host.wrap(get_cplc)
        assert transmit(connection, wire.to_bytes()).sw == 0x9000
        connection.disconnect()
        assert serve.terminate() == 0
    log = serve.text().upper()
    # Every APDU on the wire, and the plain command inside the channel.
    assert "00A4040008A000000151000000" in log
    assert wire.to_bytes().hex().upper() in log
    assert "PLAIN >> 80CA9F7F" in log  # the plain GET DATA, as the card saw it inside the channel
    assert "PLAIN >> 80F28002 4F00" in log  # the plain GET STATUS, which travelled encrypted (level 33)
    assert "PLAIN << E3" in log  # and its plain answer, which travelled encrypted too
    for secret in (DEFAULT_KEY, NEW_KEY):
        assert secret.hex().upper() not in log, "a key reached the trace"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            ('enc = "404142434445464748494A4B4C4D4E4F"', 'enc = "40414243"'),
            ("isd.keysets[0].enc", "16 or 24 or 32 bytes"),
        ),
        (('type = "aes"', 'type = "rsa"'), ("isd.keysets[0].type", '"aes" or "des3"')),
        (('i = "70"', 'i = "7Z"'), ("isd.i", "a hex byte")),
    ],
)
def test_bad_profile_is_refused_naming_the_key(tmp_path: Path, change: tuple[str, str], named: tuple[str, str]) -> None:
    text = (PROFILES / "scp03.toml").read_text()
    assert change[0] in text
    profile = tmp_path / "bad.toml"
    profile.write_text(text.replace(change[0], change[1], 1))
    state_dir = tmp_path / "state"
    args = [*_command(), "card", "serve", "--profile", str(profile), "--state", str(state_dir), "--vpcd", "127.0.0.1:9"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2, result.stderr
    key, expected = named
    assert f"profile key {key}: expected {expected}" in result.stderr, result.stderr
    assert DirectoryStore(state_dir).load() is None  # nothing half-built was left behind


# -- SIGKILL at any moment -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Content:
    """What the client's commands change: the value of key set 31 (None: absent) and whether INSTANCE exists."""

    key31: bytes | None
    instance: bool

    @classmethod
    def of(cls, state: CardState) -> Content:
        assert state.isd.sd is not None
        keyset = state.isd.sd.keyset(0x31)
        if keyset is not None:
            assert keyset.enc == keyset.mac == keyset.dek, "half a PUT KEY"
        return cls(keyset.enc if keyset else None, state.application(INSTANCE) is not None)


@dataclass
class Client:
    """Runs PUT KEY and INSTALL / DELETE in a loop until the card goes away; ``done`` is the content after
    the last acknowledged command, ``pending`` the content the command in flight would make."""

    connection: Any
    done: Content
    counter: int
    pending: Content | None = None
    acknowledged: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            host = open_channel(self.connection, "03", 0x70, 0x03, 0x30)
            while True:
                self.counter += 1
                if self.counter % 2:
                    key = bytes([self.counter % 255 + 1]) * 16
                    self.pending = Content(key, self.done.instance)
                    sw = _put_key(self.connection, host, key, replace=self.done.key31 is not None)
                else:
                    self.pending = Content(self.done.key31, not self.done.instance)
                    sw = secure(self.connection, host, _install_or_delete(self.done.instance)).sw
                assert sw == 0x9000, f"command {self.counter}: {sw:04X}"
                self.done, self.pending = self.pending, None
                self.acknowledged += 1
        except (CardConnectionException, NoCardException):
            return  # the card was killed
        except BaseException as exc:  # reported by the test
            self.error = exc


def _install_or_delete(installed: bool) -> bytes:
    if installed:
        return bytes([0x80, 0xE4, 0x00, 0x00, len(INSTANCE) + 2]) + tlv(0x4F, INSTANCE) + b"\x00"
    data = lv(ECHO_LOAD_FILE_AID) + lv(ECHO_MODULE_AID) + lv(INSTANCE) + lv(b"\x00") + lv(tlv(0xC9, b"")) + lv(b"")
    return bytes([0x80, 0xE6, 0x0C, 0x00, len(data)]) + data + b"\x00"


def test_sigkill_at_any_moment_through_pcscd(pcscd_readers: list[str], tmp_path: Path) -> None:
    kills = int(os.environ.get("GPCHANNEL_SERVE_KILLS", "20"))
    state_dir = tmp_path / "state"
    profile_path, _, atr = profile(tmp_path, "03")
    state = init_state(state_dir, profile_path)
    # The echo load file is in the registry from the start (as a card's ROM packages are).
    state.load_files.append(LoadFile(ECHO_LOAD_FILE_AID, state.isd_aid, [ECHO_MODULE_AID]))
    DirectoryStore(state_dir).commit(state)
    content = Content.of(state)
    counter = acknowledged = in_flight = committed_in_flight = 0
    with claimed_reader(pcscd_readers) as reader:
        for round_ in range(kills):
            client, serve = _kill_round(tmp_path, reader, state_dir, atr, content, counter, round_)
            assert client.error is None, f"round {round_}: {client.error!r}\n{serve.text()}"
            loaded = DirectoryStore(state_dir).load()
            assert loaded is not None, f"round {round_}: the state directory holds no card"
            content = Content.of(loaded)
            allowed = [client.done] + ([client.pending] if client.pending is not None else [])
            assert content in allowed, f"round {round_}: {content} is neither of {allowed}"
            in_flight += client.pending is not None
            committed_in_flight += client.pending is not None and content == client.pending != client.done
            counter = client.counter
            acknowledged += client.acknowledged
        assert acknowledged > kills, "the client hardly ran: the kills tested nothing"
        print(
            f"{kills} kills, {acknowledged} commands acknowledged, {in_flight} kills with a command in flight "
            f"({committed_in_flight} of them found committed after the restart)"
        )
        # The last state serves again; a channel opens with the persisted key set 31 when there is one.
        serve = start_serve(tmp_path, reader, state_dir, None, atr, name="serve-final")
        try:
            connection = serve.connect()
            kvn, key = (0x31, content.key31) if content.key31 is not None else (0x30, DEFAULT_KEY)
            host = open_channel(connection, "03", 0x70, 0x03, kvn, key)
            expected = [bytes.fromhex("A0000000871002FF49FF0589")] + ([INSTANCE] if content.instance else [])
            assert get_status(connection, host, 0x40) == expected
            connection.disconnect()
            assert serve.terminate() == 0
        finally:
            if serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait()


def _kill_round(
    tmp_path: Path, reader: str, state_dir: Path, atr: bytes, content: Content, counter: int, round_: int
) -> tuple[Client, ServeProcess]:
    """Serve the state directory, run the client, SIGKILL the serve process after a varied delay (the delay
    chooses the moment of the kill; nothing waits on it), then wait until the reader shows empty."""
    serve = start_serve(tmp_path, reader, state_dir, None, atr, name=f"serve-{round_}")
    try:
        client = Client(serve.connect(), content, counter)
        thread = threading.Thread(target=client.run, daemon=True)
        thread.start()
        # Kill at varied moments: during the session opening, and between or inside commands.
        time.sleep(0.013 * (round_ % 12))
        serve.process.kill()
        serve.process.wait()
        thread.join(30)
        assert not thread.is_alive(), "the client hung after the card was killed"
        with contextlib.suppress(CardConnectionException):
            client.connection.disconnect()
        # The next card is served only once pcscd recorded this one's removal: vpcd would otherwise take it
        # for the dead one and pcscd never power it on (the reconnect trap, gpchannel.io.vpcd_watch).
        wait_empty(reader)
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()
    return client, serve
