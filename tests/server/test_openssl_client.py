"""Interop (issue 7 deliverable 4): ``openssl s_client -psk HEX -psk_identity ID -tls1_2 -cipher ...`` completes
a PSK-TLS handshake with ``gpchannel server`` (started as a real subprocess, the card registered from a profile
with ``--profile``) and gets a well-formed admin response to a hand-written first POST: the status line, the
X-Admin-* headers, the content type, and a body that is the expanded command script of the queued job (parsed by
h11 as an HTTP client and by the remote APDU codec). Wrong keys, an unknown identity, TLS 1.1 and NULL suites
are refused by the handshake, and nothing runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h11
import pytest

from gpchannel.cli.api_client import ApiClient
from gpchannel.codec.apdu import CommandApdu
from gpchannel.ota.remote_apdu import CommandScript
from gpchannel.server.config import ServerConfig
from tests.io.openssl_peer import OpensslResult, require_openssl, s_client
from tests.server.server_support import token_for

pytestmark = pytest.mark.openssl

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "examples" / "profiles" / "scp03.toml"
ICCID = "8988211000000000001"
IDENTITY = "8988211000000000001"  # the profile's [scp81] psk_identity
PSK = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
FIRST_POST = (
    b"POST /gp/admin HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"X-Admin-Protocol: globalplatform-remote-admin/1.0\r\n"
    b"X-Admin-From: //se-id/iccid/8988211000000000001\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    admin_port: int
    api: ApiClient


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    require_openssl()
    command = [
        sys.executable,
        "-c",
        "from gpchannel.cli.main import main; main()",
        "server",
        "--admin",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--data",
        str(tmp_path),
        "--profile",
        str(PROFILE),
        "--read-timeout",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("GPCHANNEL_MASTER_KEY", None)
    token = token_for(ServerConfig(data_dir=tmp_path))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        ports = {line.split()[0]: line.split()[1] for line in lines if " " in line}
        assert "admin" in ports and "api" in ports, f"the server did not start: {lines}"
        yield ServerProcess(process, int(ports["admin"].rsplit(":", 1)[1]), ApiClient(ports["api"], token=token))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()


def parse_response(raw: bytes) -> tuple[h11.Response, bytes]:
    """One HTTP/1.1 response, parsed by h11 as the client that sent FIRST_POST."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/gp/admin", headers=[("Host", "x"), ("Content-Length", "0")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    response = client.next_event()
    assert isinstance(response, h11.Response), raw
    body = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return response, body
        else:
            raise AssertionError(f"unexpected {event!r} in {raw!r}")


def headers(response: h11.Response) -> dict[str, str]:
    return {name.decode().lower(): value.decode() for name, value in response.headers}


def run_client(
    port: int, cipher: str, *, psk: bytes = PSK, identity: str = IDENTITY, version: str = "-tls1_2"
) -> OpensslResult:
    return asyncio.run(s_client(port, psk=psk, identity=identity, cipher=cipher, version=version, stdin=FIRST_POST))


@pytest.mark.parametrize("cipher", ["PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256"])
def test_openssl_first_post_gets_the_queued_script(server: ServerProcess, cipher: str) -> None:
    apdus = ["00A4040008A000000151000000", "80CA006600"]
    job = server.api.request(
        "POST", "/jobs", {"card": {"iccid": ICCID}, "apdus": apdus, "target": "A0000000871002FF49FF0589"}
    )

    result = run_client(server.admin_port, cipher)
    assert result.stdout.startswith(b"HTTP/1.1 200 "), result.output
    response, body = parse_response(result.stdout)
    fields = headers(response)
    assert fields["x-admin-protocol"] == "globalplatform-remote-admin/1.0"
    assert fields["content-type"] == "application/vnd.globalplatform.card-content-mgt;version=1.0"
    assert fields["x-admin-next-uri"].startswith("/gp/admin/") and len(fields["x-admin-next-uri"]) > 12
    assert fields["x-admin-targeted-application"] == "//aid/A000000087/1002FF49FF0589"
    assert int(fields["content-length"]) == len(body)
    script = CommandScript.from_bytes(body)
    assert script.apdus == tuple(CommandApdu.from_bytes(bytes.fromhex(a)) for a in apdus)
    assert body[0] == 0xAA

    # openssl never answered: the job stays sent, with the reason (the server gave up after --read-timeout 2)
    state = server.api.request("GET", f"/jobs/{job['id']}")
    assert state["state"] == "sent"
    assert state["reason"] is not None
    assert "silent for 2 s" in state["reason"] or "closed the connection" in state["reason"], state["reason"]


def test_openssl_first_post_without_jobs_gets_204(server: ServerProcess) -> None:
    result = run_client(server.admin_port, "PSK-AES128-CBC-SHA256")
    response, body = parse_response(result.stdout)
    assert response.status_code == 204 and body == b""
    assert headers(response)["x-admin-protocol"] == "globalplatform-remote-admin/1.0"


@pytest.mark.parametrize(
    ("psk", "identity", "version", "cipher", "expected"),
    [
        (bytes(16), IDENTITY, "-tls1_2", "PSK-AES128-CBC-SHA256", "bad record mac"),
        (PSK, "unknown-card", "-tls1_2", "PSK-AES128-CBC-SHA256", "unknown psk identity"),
        (PSK, IDENTITY, "-tls1_1", "PSK-AES128-CBC-SHA", ""),  # legacy TLS only with --legacy-tls
        (PSK, IDENTITY, "-tls1_2", "PSK-NULL-SHA256", ""),  # NULL suites only with --allow-null-tls
    ],
)
def test_openssl_refused_handshakes_run_nothing(
    server: ServerProcess, psk: bytes, identity: str, version: str, cipher: str, expected: str
) -> None:
    job = server.api.request("POST", "/jobs", {"card": {"iccid": ICCID}, "apdus": ["80CA006600"]})
    result = run_client(server.admin_port, cipher, psk=psk, identity=identity, version=version)
    assert b"HTTP/1.1" not in result.stdout, result.output
    assert result.returncode != 0, result.output
    assert expected in result.output.lower().replace("_", " "), result.output
    assert server.api.request("GET", f"/jobs/{job['id']}")["state"] == "queued"
