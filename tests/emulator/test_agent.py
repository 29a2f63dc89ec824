"""The SCP81 card agent (emulator/agent.py) against real peers on 127.0.0.1: a small Remote Administration
Server built in the test from the sans-I/O RAS side (ram/server.py) over the PSK-TLS listener (io/tls_stream.py),
and ``openssl s_server -psk ... -nocert`` as an independent TLS peer.

What is checked: scripts run through the card core and their effects are on disk (RAM INSTALL of an SSD, an
RFM UPDATE BINARY through the ETSI content type), results reach the server; a wrong PSK runs nothing; a broken
connection then a retry (and a restarted card) never run a script twice; the targeted-application statuses; a
trigger in an SCP80 SMS-PP envelope starts a session in the background while the card keeps answering."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpchannel.card.admin_trigger import pending_delivery, pending_trigger
from gpchannel.card.dispatcher import Card
from gpchannel.card.filesystem import FileSession, FileSystem, process_file_command
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.emulator.agent import AgentRunner, CardAgent, SessionStatus, SessionSummary
from gpchannel.emulator.app import SD_LOAD_FILE_AID, SD_MODULE_AID, EmulatedCard, open_card
from gpchannel.gp.install import InstallForInstall
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.host.commands import install_for_install_command
from gpchannel.io.store import DirectoryStore
from gpchannel.io.tls_psk import PskServerContext
from gpchannel.io.tls_stream import PskStream, serve_psk
from gpchannel.ota import CommandScript, ResponseScript, secure_command
from gpchannel.ota.envelope import SmsPpDownload
from gpchannel.ota.sms import Address, SmsDeliver
from gpchannel.ota.udh import split_packet
from gpchannel.ram.admin import ContentType, ScriptStatus, TargetedApplication
from gpchannel.ram.server import AdminRequest, AdminServerConnection
from tests.card.harness import profile_text
from tests.card.test_ota_handler import KEYSET, KIC, KID, OTA, RAM, SPI

PSK = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
IDENTITY = b"card-1"
ISD = bytes.fromhex("A000000151000000")
SSD = bytes.fromhex("A00000015153504101")
RFM_AID = bytes.fromhex("A0000000090003FFFFFFFF89B00001FF")  # TS 101 220: bytes 13-15 are the TAR (B00001)
SELECT_SPN = CommandApdu.from_bytes(bytes.fromhex("00A4080C047F206F46"))
UPDATE_SPN = CommandApdu.from_bytes(bytes.fromhex("00D600000441424344"))
READ_SPN = CommandApdu.from_bytes(bytes.fromhex("00B0000004"))
GET_DATA_CPLC = CommandApdu.from_bytes(bytes.fromhex("80CA9F7F00"))


def install_ssd() -> CommandApdu:
    privileges = Privileges.of(Privilege.SECURITY_DOMAIN)
    return install_for_install_command(InstallForInstall(SD_LOAD_FILE_AID, SD_MODULE_AID, SSD, privileges))


def scp81_section(server: str = "127.0.0.1:1") -> str:
    return f"""
[scp81]
psk_identity = "{IDENTITY.decode()}"
psk = "{PSK.hex()}"
server = "{server}"
uri = "/gp/admin"
agent_id = "//se-id/iccid/8988211000000000001"
"""


def make_state(tmp_path: Path, server: str = "127.0.0.1:1") -> Path:
    profile = tmp_path / "card.toml"
    profile.write_text(profile_text() + OTA + scp81_section(server))
    state = tmp_path / "state"
    open_card(state, profile)
    return state


def load_card(state: Path) -> Card:
    card, _ = open_card(state)
    return card


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


# --------------------------------------------------------------------------------------------- the test RAS


@dataclass
class Script:
    script: bytes
    content_type: ContentType = ContentType.GP_COMMAND
    target: TargetedApplication | None = None


@dataclass
class MiniRas:
    """Delivers ``scripts`` in order, each to be answered at ``/ras/<n>``; a first POST (resumed or not) gets
    the first script without an answer. ``drop_after_script`` / ``drop_after_response`` close the connection
    (once) right after sending script n / after reading the response to script n without answering."""

    scripts: list[Script]
    drop_after_script: set[int] = field(default_factory=set)
    drop_after_response: set[int] = field(default_factory=set)
    requests: list[AdminRequest] = field(default_factory=list)
    responses: dict[int, list[AdminRequest]] = field(default_factory=lambda: defaultdict(list))
    identities: list[bytes | None] = field(default_factory=list)
    error: tuple[int, str] | None = None
    on_request: Callable[[AdminRequest], None] | None = None
    active: int = 0
    waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = field(default_factory=list)

    def next_index(self) -> int:
        return next((i for i in range(len(self.scripts)) if i not in self.responses), len(self.scripts))

    async def handle(self, stream: PskStream) -> None:
        self.active += 1
        try:
            await self._handle(stream)
        finally:
            self.active -= 1
            self._changed()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition`` holds; checked again whenever a request arrives or a connection ends."""
        if condition():
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append((condition, waiter))
        await waiter

    def _changed(self) -> None:
        for entry in list(self.waiters):
            condition, waiter = entry
            if waiter.done() or condition():
                self.waiters.remove(entry)
                if not waiter.done():
                    waiter.set_result(None)

    async def idle(self) -> None:
        """Wait until no connection is being served (so that closing the server cancels nothing)."""
        await self.until(lambda: not self.active)

    async def _handle(self, stream: PskStream) -> None:
        self.identities.append(stream.identity)
        conn = AdminServerConnection()
        while not conn.closed:
            request = await _request(stream, conn)
            if request is None:
                return
            self.requests.append(request)
            if self.on_request is not None:
                self.on_request(request)
            if self.error is not None:
                await stream.write(conn.send_error(*self.error))
                return
            if not request.first:
                index = int(request.uri.rsplit("/", 1)[1])
                self.responses[index].append(request)
                self._changed()
                if index in self.drop_after_response:
                    self.drop_after_response.discard(index)
                    return
            index = self.next_index()
            if index >= len(self.scripts):
                await stream.write(conn.send_end())
                continue
            item = self.scripts[index]
            out = conn.send_script(
                item.script, next_uri=f"/ras/{index}", content_type=item.content_type, targeted_application=item.target
            )
            await stream.write(out)
            if index in self.drop_after_script:
                self.drop_after_script.discard(index)
                return

    def results(self, index: int) -> ResponseScript:
        return ResponseScript.from_bytes(self.responses[index][0].body)


async def _request(stream: PskStream, conn: AdminServerConnection) -> AdminRequest | None:
    while True:
        request = conn.next_request()
        if request is not None:
            return request
        data = await stream.read()
        conn.receive_data(data)
        if not data:
            return conn.next_request()


async def with_ras(
    ras: MiniRas, body: Callable[[int], Awaitable[SessionSummary]], *, psk: bytes = PSK
) -> SessionSummary:
    context = PskServerContext(lambda identity: psk if identity == IDENTITY else None)
    server = await serve_psk(ras.handle, "127.0.0.1", 0, context)
    port = server.sockets[0].getsockname()[1]
    try:
        return await body(port)
    finally:
        await ras.idle()
        server.close()
        await server.wait_closed()


def run_agent(card: Card, ras: MiniRas, *, psk: bytes = PSK, **options: object) -> SessionSummary:
    async def body(port: int) -> SessionSummary:
        agent = CardAgent(card, server=f"127.0.0.1:{port}", sleep=no_sleep, timeout=10.0, **options)  # type: ignore[arg-type]
        return await agent.run()

    return asyncio.run(with_ras(ras, body, psk=psk))


# --------------------------------------------------------------------------------------------- sessions


def test_ram_and_rfm_scripts_run_and_persist(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    card = load_card(state)
    ras = MiniRas(
        [
            Script(CommandScript.of([install_ssd(), GET_DATA_CPLC]).to_bytes()),
            Script(
                CommandScript.of([SELECT_SPN, UPDATE_SPN, READ_SPN], definite=False).to_bytes(),
                ContentType.ETSI_COMMAND,
                TargetedApplication(RFM_AID),
            ),
        ]
    )
    summary = run_agent(card, ras)
    assert summary.status is SessionStatus.COMPLETED
    assert (summary.scripts, summary.apdus, summary.attempts) == (2, 5, 1)
    first = ras.requests[0]
    assert first.first and not first.resume
    assert first.agent_from == "//se-id/iccid/8988211000000000001"
    assert ras.identities == [IDENTITY]
    ram = ras.results(0)
    assert ram.responses[0].sw == 0x9000
    assert ras.responses[0][0].content_type is ContentType.GP_RESPONSE
    assert ras.responses[0][0].script_status is ScriptStatus.OK
    rfm = ras.results(1)
    assert ras.responses[1][0].content_type is ContentType.ETSI_RESPONSE
    assert [r.sw for r in rfm.responses] == [0x9000, 0x9000, 0x9000]
    assert rfm.responses[2].data == b"ABCD" and not rfm.definite
    # On disk: the SSD exists, the file changed, nothing is left pending.
    on_disk = DirectoryStore(state).load()
    assert on_disk is not None
    ssd = on_disk.application(SSD)
    assert ssd is not None and ssd.sd is not None
    assert pending_delivery(on_disk) is None
    files = FileSystem.from_dict(on_disk.files)
    session = FileSession()
    assert process_file_command(files, session, SELECT_SPN).sw == 0x9000
    assert process_file_command(files, session, READ_SPN).data == b"ABCD"


def test_empty_session_ends_with_204(tmp_path: Path) -> None:
    card = load_card(make_state(tmp_path))
    summary = run_agent(card, MiniRas([]))
    assert (summary.status, summary.scripts, summary.apdus) == (SessionStatus.COMPLETED, 0, 0)


def test_wrong_psk_runs_nothing(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    card = load_card(state)
    before = (state / "state.json").read_bytes()
    ras = MiniRas([Script(CommandScript.of([install_ssd()]).to_bytes())])
    summary = run_agent(card, ras, psk=bytes(16), retries=1)
    assert summary.status is SessionStatus.CONNECTION_FAILED
    assert summary.attempts == 2 and summary.scripts == 0
    assert ras.requests == []  # the handler never ran: nothing was sent to or run on the card
    assert (state / "state.json").read_bytes() == before
    assert card.state.application(SSD) is None


def test_broken_after_the_script_then_retry_runs_it_once(tmp_path: Path) -> None:
    """The server drops the connection right after sending script 0: the card ran it and stored the response;
    the retry re-posts the stored response with X-Admin-Resume instead of running it again."""
    card = load_card(make_state(tmp_path))
    ras = MiniRas([Script(CommandScript.of([install_ssd()]).to_bytes())], drop_after_script={0})
    summary = run_agent(card, ras, retries=2)
    assert summary.status is SessionStatus.COMPLETED
    assert (summary.scripts, summary.attempts) == (1, 2)
    assert len(ras.responses[0]) == 1
    resumed = ras.responses[0][0]
    assert resumed.resume and resumed.uri == "/ras/0"
    assert [r.sw for r in ras.results(0).responses] == [0x9000]  # the first (only) run: a rerun would be 6A89


def test_broken_after_the_response_then_retry_reposts_it(tmp_path: Path) -> None:
    card = load_card(make_state(tmp_path))
    ras = MiniRas(
        [Script(CommandScript.of([install_ssd()]).to_bytes()), Script(CommandScript.of([GET_DATA_CPLC]).to_bytes())],
        drop_after_response={0},
    )
    summary = run_agent(card, ras, retries=1)
    assert summary.status is SessionStatus.COMPLETED
    assert summary.scripts == 2 and summary.attempts == 2
    assert len(ras.responses[0]) == 2  # posted, lost, re-posted: the same bytes, the script ran once
    assert ras.responses[0][0].body == ras.responses[0][1].body
    assert ras.responses[0][1].resume
    assert [r.sw for r in ras.results(0).responses] == [0x9000]


def test_restarted_card_reposts_its_stored_response(tmp_path: Path) -> None:
    """The card 'dies' after running script 0 (no retry left): a new session of the reloaded card, from the
    state on disk, re-posts the response before anything else; the script is not run again."""
    state = make_state(tmp_path)
    ras = MiniRas([Script(CommandScript.of([install_ssd()]).to_bytes())], drop_after_script={0})
    summary = run_agent(load_card(state), ras, retries=0)
    assert summary.status is SessionStatus.CONNECTION_FAILED and summary.scripts == 1
    on_disk = DirectoryStore(state).load()
    assert on_disk is not None and on_disk.application(SSD) is not None
    stored = pending_delivery(on_disk)
    assert stored is not None and stored.uri == "/ras/0" and stored.response is not None
    assert ras.responses == {}
    summary = run_agent(load_card(state), ras, retries=0)
    assert summary.status is SessionStatus.COMPLETED and summary.resumed and summary.scripts == 0
    assert len(ras.responses[0]) == 1 and ras.responses[0][0].resume
    assert [r.sw for r in ras.results(0).responses] == [0x9000]
    after = DirectoryStore(state).load()
    assert after is not None and pending_delivery(after) is None


def test_script_received_but_not_run_is_asked_again(tmp_path: Path) -> None:
    """A delivery recorded without a response (the card stopped before running it) leads to a resumed empty
    first POST: the server sends the script again and it runs once."""
    from gpchannel.card.admin_trigger import PendingDelivery, store_delivery

    state = make_state(tmp_path)
    card = load_card(state)
    store_delivery(card.state, PendingDelivery("/ras/0"))
    card.save()
    ras = MiniRas([Script(CommandScript.of([install_ssd()]).to_bytes())])
    summary = run_agent(load_card(state), ras, retries=0)
    assert summary.status is SessionStatus.COMPLETED and summary.resumed and summary.scripts == 1
    assert ras.requests[0].first and ras.requests[0].resume
    assert [r.sw for r in ras.results(0).responses] == [0x9000]


def test_targeted_application_statuses(tmp_path: Path) -> None:
    card = load_card(make_state(tmp_path))
    echo = bytes.fromhex("A0000000871002FF49FF0589")
    script = CommandScript.of([GET_DATA_CPLC]).to_bytes()
    ras = MiniRas(
        [
            Script(script, target=TargetedApplication(bytes.fromhex("A0000000FFFFFF"))),
            Script(script, target=TargetedApplication(echo)),
            Script(script, target=TargetedApplication(ISD)),
        ]
    )
    summary = run_agent(card, ras)
    assert summary.status is SessionStatus.COMPLETED and summary.apdus == 1
    assert ras.responses[0][0].script_status is ScriptStatus.UNKNOWN_APPLICATION and not ras.responses[0][0].body
    assert ras.responses[1][0].script_status is ScriptStatus.NOT_A_SECURITY_DOMAIN
    assert ras.responses[2][0].script_status is ScriptStatus.OK


def test_not_a_script_gets_bad_format_and_runs_nothing(tmp_path: Path) -> None:
    card = load_card(make_state(tmp_path))
    ras = MiniRas([Script(install_ssd().to_bytes()), Script(bytes.fromhex("AA05220380CA"))])
    summary = run_agent(card, ras)
    assert summary.status is SessionStatus.COMPLETED and summary.apdus == 0
    for index in (0, 1):
        result = ras.results(index)
        assert result.responses == () and result.items[0].value == b"\x01"  # type: ignore[union-attr]
    assert card.state.application(SSD) is None


def test_large_response_goes_chunked(tmp_path: Path) -> None:
    card = load_card(make_state(tmp_path))
    ras = MiniRas([Script(CommandScript.of([GET_DATA_CPLC] * 12).to_bytes())])
    summary = run_agent(card, ras, chunk_above=64)
    assert summary.status is SessionStatus.COMPLETED and summary.apdus == 12
    assert len(ras.responses[0][0].body) > 64
    assert [r.sw for r in ras.results(0).responses] == [0x9000] * 12


def test_server_error_stops_without_retry(tmp_path: Path) -> None:
    card = load_card(make_state(tmp_path))
    ras = MiniRas([], error=(503, "maintenance"))
    summary = run_agent(card, ras, retries=3)
    assert summary.status is SessionStatus.SERVER_ERROR
    assert (summary.http_status, summary.attempts) == (503, 1)


def test_nobody_listening_exhausts_the_retries(tmp_path: Path) -> None:
    card = load_card(make_state(tmp_path))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def body() -> SessionSummary:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        agent = CardAgent(card, server=f"127.0.0.1:{port}", retries=2, delay_seconds=7, sleep=sleep)
        return await agent.run()

    summary = asyncio.run(body())
    assert summary.status is SessionStatus.CONNECTION_FAILED and summary.attempts == 3
    assert slept == [7.0, 7.0]


# --------------------------------------------------------------------------------------------- trigger


def envelopes(trigger: bytes, counter: int) -> list[bytes]:
    packet = secure_command(trigger, spi=SPI, kic=KIC, kid=KID, tar=RAM, counter=counter, keyset=KEYSET)
    out = []
    for ud in split_packet(packet.to_bytes(), reference=counter):
        download = SmsPpDownload(SmsDeliver(Address("12345678"), ud).to_bytes(), Address("4477"))
        out.append(download.to_apdu(0x80).to_bytes())
    return out


def _tlv(tag: int, value: bytes) -> bytes:
    assert len(value) < 0x80
    return bytes((tag, len(value))) + value


def full_trigger(port: int) -> bytes:
    """Table 3-3 written by hand: 84 (3C TCP + port, 3E IPv4 127.0.0.1), 89 (8B agent ID, 8C URI)."""
    connection = _tlv(0x3C, b"\x02" + port.to_bytes(2, "big")) + _tlv(0x3E, bytes.fromhex("217F000001"))
    http = _tlv(0x8B, b"agent-from-sms") + _tlv(0x8C, b"/from/sms")
    return _tlv(0x81, _tlv(0x83, _tlv(0x84, connection) + _tlv(0x89, http)))


@pytest.mark.parametrize("kind", ["defaults-81-00", "address-in-trigger"])
def test_trigger_in_an_sms_starts_a_background_session(tmp_path: Path, kind: str) -> None:
    async def scenario() -> tuple[SessionSummary, MiniRas]:
        ras = MiniRas([Script(CommandScript.of([install_ssd()]).to_bytes())])
        context = PskServerContext(lambda identity: PSK if identity == IDENTITY else None)
        server = await serve_psk(ras.handle, "127.0.0.1", 0, context)
        port = server.sockets[0].getsockname()[1]
        if kind == "defaults-81-00":
            state, trigger = make_state(tmp_path, f"127.0.0.1:{port}"), bytes.fromhex("8100")
        else:  # the profile's server is wrong: only the trigger's tag 84 leads to the RAS
            state, trigger = make_state(tmp_path, "127.0.0.1:1"), full_trigger(port)
        card = load_card(state)
        emulated = EmulatedCard(card)
        runner = AgentRunner(card, emulated.lock, sleep=no_sleep, timeout=10.0)
        emulated.agents = runner
        assert not runner.poll()  # nothing pending yet
        for apdu in envelopes(trigger, 1):
            response = ResponseApdu.from_bytes(emulated.transmit(apdu))
            assert response.sw >> 8 in (0x90, 0x61, 0x91)
        assert runner.thread is not None  # the transmit that completed the trigger started the session
        # The card keeps answering while the session runs in its thread.
        assert emulated.transmit(bytes.fromhex("00A4040008A000000151000000"))[-2:] == b"\x90\x00"
        await asyncio.to_thread(runner.join, 30)
        await ras.idle()
        server.close()
        await server.wait_closed()
        assert pending_trigger(card.state) is None
        assert not runner.poll()
        return runner.summaries[0], ras

    summary, ras = asyncio.run(scenario())
    assert summary.status is SessionStatus.COMPLETED and summary.scripts == 1
    assert [r.sw for r in ras.results(0).responses] == [0x9000]
    if kind == "address-in-trigger":
        assert (ras.requests[0].uri, ras.requests[0].agent_from) == ("/from/sms", "agent-from-sms")
    else:
        assert (ras.requests[0].uri, ras.requests[0].agent_from) == ("/gp/admin", "//se-id/iccid/8988211000000000001")


# --------------------------------------------------------------------------------------------- openssl


@pytest.mark.openssl
@pytest.mark.parametrize("cipher", ["PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256"])
def test_handshake_with_openssl_s_server(tmp_path: Path, cipher: str) -> None:
    """Our agent against ``openssl s_server -psk ... -nocert -tls1_2 -cipher <suite>`` (both default suites): the
    handshake completes with the card's PSK and identity and the first POST reaches s_server (which prints
    what it receives); s_server then quits, the agent sees the connection end and stops (no retry)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed (apt package openssl)")
    proc = subprocess.Popen(
        [openssl, "s_server", "-accept", "127.0.0.1:0", "-psk", PSK.hex(), "-psk_identity", IDENTITY.decode(),
         "-nocert", "-tls1_2", "-cipher", cipher, "-naccept", "1", "-ign_eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = 0
        for line in proc.stdout:
            if line.startswith("ACCEPT"):
                port = int(line.strip().rsplit(":", 1)[1])
                break
        assert port, "s_server did not print its ACCEPT line"
        card = load_card(make_state(tmp_path))
        received: list[str] = []

        def watch() -> None:
            assert proc.stdout is not None and proc.stdin is not None
            for text in proc.stdout:
                received.append(text)
                if text.startswith("X-Admin-From"):
                    proc.stdin.write("Q\n")  # s_server's command: end the connection and exit
                    proc.stdin.flush()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        agent = CardAgent(card, server=f"127.0.0.1:{port}", retries=0, sleep=no_sleep, timeout=20.0)
        summary = agent.run_sync()
        proc.wait(timeout=20)
        watcher.join(5)
    finally:
        proc.kill()
        proc.wait()
    text = "".join(received)
    assert f"CIPHER is {cipher}" in text  # s_server runs -tls1_2 only
    assert "POST /gp/admin HTTP/1.1" in text
    assert "X-Admin-Protocol: globalplatform-remote-admin/1.0" in text
    assert "X-Admin-From: //se-id/iccid/8988211000000000001" in text
    assert summary.status is SessionStatus.CONNECTION_FAILED and summary.scripts == 0


# --------------------------------------------------------------------------------------------- the CLI


def test_cli_admin_session(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gpchannel.cli.main import cli

    ras = MiniRas([Script(CommandScript.of([install_ssd(), GET_DATA_CPLC]).to_bytes())])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    context = PskServerContext(lambda identity: PSK if identity == IDENTITY else None)
    server = asyncio.run_coroutine_threadsafe(serve_psk(ras.handle, "127.0.0.1", 0, context), loop).result(10)
    port = server.sockets[0].getsockname()[1]
    state = make_state(tmp_path)
    try:
        runner = CliRunner()
        args = ["card", "admin-session", "--state", str(state), "--server", f"127.0.0.1:{port}", "--retries", "0"]
        done = runner.invoke(cli, args, catch_exceptions=False)
        asyncio.run_coroutine_threadsafe(ras.idle(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert done.exit_code == 0, done.output
    assert "session completed: 1 script(s), 2 APDU(s), 1 attempt(s), last SW 9000" in done.output
    on_disk = DirectoryStore(state).load()
    assert on_disk is not None and on_disk.application(SSD) is not None
    # Nobody listening any more: the session fails, says so, and exits 1.
    failed = CliRunner().invoke(cli, [*args[:5], f"127.0.0.1:{port}", "--retries", "0"], catch_exceptions=False)
    assert failed.exit_code == 1 and "session connection-failed" in failed.output
    missing = CliRunner().invoke(cli, ["card", "admin-session", "--state", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "holds no card" in missing.output


def test_retry_policy_from_the_profile_then_the_trigger(tmp_path: Path) -> None:
    from gpchannel.card.profile import load_profile
    from gpchannel.emulator.agent import DEFAULT_RETRY, SessionParameters
    from gpchannel.errors import ProfileError
    from gpchannel.ram.trigger import RetryPolicy, TriggerParameters

    state = load_profile(profile_text() + scp81_section() + "retries = 1\nretry_delay = 3\n")
    assert SessionParameters.resolve(state).retry == RetryPolicy(counter=1, delay_seconds=3)
    from_trigger = TriggerParameters(retry=RetryPolicy(counter=4, delay_seconds=9))
    assert SessionParameters.resolve(state, from_trigger).retry.counter == 4
    assert SessionParameters.resolve(state, from_trigger, retries=0).retry == RetryPolicy(counter=0, delay_seconds=9)
    plain = load_profile(profile_text() + scp81_section())
    assert SessionParameters.resolve(plain).retry == DEFAULT_RETRY
    with pytest.raises(ProfileError, match=r"scp81\.retries"):
        load_profile(profile_text() + scp81_section() + "retries = -1\n")
    with pytest.raises(ProfileError, match=r"scp81\.retry_delay"):
        load_profile(profile_text() + scp81_section() + 'retry_delay = "5"\n')


def test_parameters_from_the_trigger_override_the_profile() -> None:
    from gpchannel.card.profile import load_profile
    from gpchannel.emulator.agent import SessionParameters
    from gpchannel.errors import ProfileError
    from gpchannel.ram.trigger import TriggerParameters

    state = load_profile(profile_text() + scp81_section("127.0.0.1:8443"))
    plain = SessionParameters.resolve(state)
    assert (plain.host, plain.port, plain.http_host, plain.uri) == ("127.0.0.1", 8443, "127.0.0.1:8443", "/gp/admin")
    assert plain.psk_identity == IDENTITY and plain.agent_id == "//se-id/iccid/8988211000000000001"
    assert "0102" not in repr(plain)  # the PSK stays out of the repr
    connection = bytes.fromhex("3C0302 1F90 3E0521 0A000001".replace(" ", ""))
    trigger = TriggerParameters(
        psk_identity=b"id-2", kvn=1, key_id=1, host="ras.example", agent_id="agent-2", uri="/x", connection=connection
    )
    p = SessionParameters.resolve(state, trigger)
    assert (p.host, p.port, p.http_host, p.uri, p.psk_identity, p.agent_id) == (
        "10.0.0.1", 8080, "ras.example", "/x", b"id-2", "agent-2"
    )  # fmt: skip
    p = SessionParameters.resolve(state, trigger, server="127.0.0.2:9", uri="/y")
    assert (p.host, p.port, p.uri) == ("127.0.0.2", 9, "/y")
    with pytest.raises(ProfileError, match="psk"):
        SessionParameters.resolve(load_profile(profile_text()))


@pytest.mark.parametrize("psk", ["zz", "0102030405060708090A0B0C0D0E0F1", 12, "  "])
def test_a_stored_psk_that_is_not_hex_is_a_profile_error(psk: object) -> None:
    """The state a card runs from may not be the checked profile (an edited state directory): a ``[scp81] psk``
    that is not hex is a ProfileError naming the key, never a bare ValueError."""
    from gpchannel.card.profile import load_profile
    from gpchannel.emulator.agent import SessionParameters
    from gpchannel.errors import ProfileError

    state = load_profile(profile_text() + scp81_section("127.0.0.1:8443"))
    state.ota["scp81"]["psk"] = psk
    with pytest.raises(ProfileError, match="psk"):
        SessionParameters.resolve(state)
    state.ota["scp81"]["psk"] = PSK.hex()
    with pytest.raises(ProfileError, match="server"):
        SessionParameters.resolve(state, server="127.0.0.1:\u0668\u0664")


@pytest.mark.parametrize("bad", [b"/ras/0 x", b"/r\xe9s/0", b"/" + b"r" * 2049])
def test_next_uri_the_card_cannot_post_to_stops_before_running(tmp_path: Path, bad: bytes) -> None:
    """A 200 whose X-Admin-Next-URI the card could not POST to is refused on arrival: the session ends once, as a
    protocol error naming the header, nothing runs and nothing is stored (it used to run the script, store the
    response for that URI, fail to POST it with a ValueError, and do so again on every later session)."""
    card = load_card(make_state(tmp_path))
    ras = MiniRas([Script(CommandScript.of([SELECT_SPN, UPDATE_SPN]).to_bytes())])
    sent: list[bytes] = []

    async def handle(stream: PskStream) -> None:
        conn = AdminServerConnection()
        request = await _request(stream, conn)
        assert request is not None and request.first
        out = conn.send_script(ras.scripts[0].script, next_uri="/ras/0").replace(b"/ras/0", bad)
        sent.append(out)
        await stream.write(out)
        await _request(stream, conn)  # the card closes without POSTing

    ras.handle = handle  # type: ignore[method-assign]
    summary = run_agent(card, ras, retries=3)
    assert summary.status is SessionStatus.PROTOCOL_ERROR and summary.attempts == 1
    assert summary.reason is not None and "X-Admin-Next-URI" in summary.reason
    assert (summary.scripts, summary.apdus) == (0, 0) and len(sent) == 1
    assert pending_delivery(card.state) is None and pending_delivery(load_card(tmp_path / "state").state) is None


def test_stored_response_for_an_unusable_uri_is_dropped_once(tmp_path: Path) -> None:
    """A response stored (by an earlier version) for a URI the card cannot POST to is dropped with a protocol
    error, not re-posted on every session: the next session runs normally."""
    from gpchannel.card.admin_trigger import PendingDelivery, store_delivery

    card = load_card(make_state(tmp_path))
    store_delivery(card.state, PendingDelivery("/ras/0 x", bytes.fromhex("AB07800101230290 00".replace(" ", "")), "ok"))
    card.save()
    ras = MiniRas([])
    first = run_agent(card, ras, retries=3)
    assert first.status is SessionStatus.PROTOCOL_ERROR and first.attempts == 1 and ras.requests == []
    assert pending_delivery(load_card(tmp_path / "state").state) is None
    second = run_agent(card, ras, retries=3)
    assert second.status is SessionStatus.COMPLETED and len(ras.requests) == 1


def test_etsi_content_type_reaches_an_application_or_a_tar(tmp_path: Path) -> None:
    """TS 102 226 Annex B: the ETSI media types may target any application (here the echo applet, which
    answers with the command data) or an AID whose bytes 13-15 are a TAR; an AID that is neither is unknown."""
    card = load_card(make_state(tmp_path))
    echo = bytes.fromhex("A0000000871002FF49FF0589")
    unknown_tar = bytes.fromhex("A0000000090003FFFFFFFF89B0FFFFFF")
    echo_apdu = CommandApdu(0x80, 0x10, 0, 0, b"hello")
    ras = MiniRas(
        [
            Script(CommandScript.of([echo_apdu]).to_bytes(), ContentType.ETSI_COMMAND, TargetedApplication(echo)),
            Script(CommandScript.of([READ_SPN]).to_bytes(), ContentType.ETSI_COMMAND, TargetedApplication(unknown_tar)),
        ]
    )
    summary = run_agent(card, ras)
    assert summary.status is SessionStatus.COMPLETED
    assert ras.results(0).responses[0] == ResponseApdu(b"hello", 0x9000)
    assert ras.responses[1][0].script_status is ScriptStatus.UNKNOWN_APPLICATION


def test_trigger_arriving_during_a_session_runs_after_it(tmp_path: Path) -> None:
    from gpchannel.card.admin_trigger import receive_trigger
    from gpchannel.card.ota_targets import TarEntry

    async def scenario() -> tuple[list[SessionSummary], MiniRas]:
        ras = MiniRas([Script(CommandScript.of([GET_DATA_CPLC]).to_bytes())])
        context = PskServerContext(lambda identity: PSK if identity == IDENTITY else None)
        server = await serve_psk(ras.handle, "127.0.0.1", 0, context)
        port = server.sockets[0].getsockname()[1]
        card = load_card(make_state(tmp_path, f"127.0.0.1:{port}"))
        emulated = EmulatedCard(card)
        runner = AgentRunner(card, emulated.lock, sleep=no_sleep, timeout=10.0)

        def second_trigger(request: AdminRequest) -> None:
            if len(ras.requests) == 1:  # the first session's first POST: another SMS trigger arrives now
                with emulated.lock:
                    assert receive_trigger(card.state, TarEntry(RAM, ISD), b"\x81\x00") == b"\x90\x00"
                    card.save()
                assert not runner.poll()  # a session runs: the trigger waits for it

        ras.on_request = second_trigger
        with emulated.lock:
            receive_trigger(card.state, TarEntry(RAM, ISD), b"\x81\x00")
            card.save()
        assert runner.poll()
        await asyncio.to_thread(runner.join, 30)
        await ras.idle()
        server.close()
        await server.wait_closed()
        assert pending_trigger(card.state) is None
        return runner.summaries, ras

    summaries, ras = asyncio.run(scenario())
    assert [(s.status, s.scripts) for s in summaries] == [(SessionStatus.COMPLETED, 1), (SessionStatus.COMPLETED, 0)]
    assert [r.first for r in ras.requests] == [True, False, True]


def test_definite_script_over_255_commands_runs_nothing(tmp_path: Path) -> None:
    card = load_card(make_state(tmp_path))
    ras = MiniRas(
        [
            Script(CommandScript.of([install_ssd()] + [GET_DATA_CPLC] * 255).to_bytes()),
            Script(CommandScript.of([GET_DATA_CPLC] * 256, definite=False).to_bytes()),  # no count: runs
        ]
    )
    summary = run_agent(card, ras)
    assert summary.status is SessionStatus.COMPLETED and summary.apdus == 256
    refused = ras.results(0)
    assert refused.responses == () and refused.items[0].value == b"\x02"  # type: ignore[union-attr]
    assert card.state.application(SSD) is None
    assert len(ras.results(1).responses) == 256
