"""HTTPS on the job API (server/app.py: --api-cert/--api-key) with ``openssl s_client`` as the independent TLS
peer (marker ``openssl``) and our own client, and the rule that a non-loopback API needs TLS and tokens unless
``--insecure-api`` (logged at every start)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

import pytest

from gpchannel.cli.api_client import ApiClient, ApiError
from gpchannel.errors import SecurityError
from gpchannel.server.config import ServerServices
from tests.io.openssl_peer import require_openssl
from tests.server.server_support import admin_token, make_services, running

pytestmark = pytest.mark.openssl


def _certificate(directory: Path) -> tuple[Path, Path]:
    openssl = require_openssl()
    cert, key = directory / "api.pem", directory / "api.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def services(tmp_path: Path) -> ServerServices:
    return make_services(f"sqlite:///{tmp_path / 'tls.db'}", tmp_path)


def test_openssl_s_client_completes_tls_with_the_api_port(services: ServerServices, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    openssl = require_openssl()

    async def scenario() -> None:
        async with running(services, api_cert=cert, api_key=key) as server:
            request = (
                f"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
                "Connection: close\r\n\r\n"
            )
            proc = await asyncio.create_subprocess_exec(
                openssl, "s_client", "-connect", f"127.0.0.1:{server.api_port}", "-CAfile", str(cert),
                "-verify_return_error", "-servername", "127.0.0.1", "-ign_eof",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(request.encode()), 30)
            text = out.decode(errors="replace")
            assert "Verify return code: 0 (ok)" in text, text
            assert "HTTP/1.1 200 OK" in text and '{"status": "ok"}' in text, text
            # our own client, trusting that certificate; plain HTTP on the TLS port is not answered as HTTP
            client = ApiClient(f"https://127.0.0.1:{server.api_port}", token=server.token, ca_file=str(cert))
            assert await asyncio.to_thread(client.request, "GET", "/health") == {"status": "ok"}
            plain = ApiClient(f"http://127.0.0.1:{server.api_port}", token=server.token)
            with pytest.raises(ApiError):
                await asyncio.to_thread(plain.request, "GET", "/health")

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        services.repository.close()


def test_a_non_loopback_api_needs_tls_and_tokens(
    services: ServerServices, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = _certificate(tmp_path)

    async def start(**config: object) -> None:
        async with running(services, api_host="0.0.0.0", **config):
            pass

    try:
        with pytest.raises(SecurityError, match=r"no TLS .* and no API token"):
            asyncio.run(start())
        with pytest.raises(SecurityError, match="has no API token"):
            asyncio.run(start(api_cert=cert, api_key=key))
        admin_token(services)
        with pytest.raises(SecurityError, match="no TLS"):
            asyncio.run(start())
        asyncio.run(start(api_cert=cert, api_key=key))  # TLS and a token: it starts
        caplog.set_level(logging.WARNING, logger="gpchannel.server")
        asyncio.run(start(insecure_api=True))
        assert "INSECURE API" in caplog.text
    finally:
        services.repository.close()
