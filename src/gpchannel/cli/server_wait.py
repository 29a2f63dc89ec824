"""``gpchannel server wait``: return once a ``gpchannel server`` started in the background serves,
so that a script or a pasted README block can run ``gpchannel server ... &`` and call the API
right after it.

Ready means both listeners answer: the job API an HTTP request (``GET /api/v1/health``; any HTTP status counts,
a 401 included, so no token is needed) and the admin listener a TCP connection (closed at once, before any TLS).
It checks every 0.1 s until ``--timeout``; ``--pid`` (the server's, e.g. ``$!``) makes it stop at once, with the
server's exit status, when that process ended first (a port in use, a bad option). Exit codes: 0 ready, 1 the
server process ended, 5 not ready within the timeout (cli/exit_codes.py).
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
import urllib.parse

import click

from gpchannel.cli.api_client import DEFAULT_API_URL, cli_fail
from gpchannel.cli.exit_codes import ExitCode
from gpchannel.server.config import DEFAULT_ADMIN_PORT, parse_address

__all__ = ["api_answers", "port_accepts", "wait"]

_STEP = 0.1


def port_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connection to host:port is accepted (then closed at once)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def api_answers(url: str, timeout: float = 2.0) -> bool:
    """True when the job API at ``url`` answers ``GET /api/v1/health`` with any HTTP status (readiness, not
    authorization: no token is sent; an https:// API's certificate is not checked here)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", f"{parts.path.rstrip('/')}/api/v1/health")
        return connection.getresponse().status >= 100
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _exited(pid: int) -> bool:
    """True when process ``pid`` has ended (reaped, or a zombie our shell has not waited for yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


@click.command(name="wait")
@click.option(
    "--api",
    "api_url",
    envvar="GPCHANNEL_API",
    default=DEFAULT_API_URL,
    show_default=True,
    help="The job API's base URL (env GPCHANNEL_API).",
)
@click.option(
    "--admin",
    default=f"127.0.0.1:{DEFAULT_ADMIN_PORT}",
    show_default=True,
    help="The PSK-TLS admin listener host:port ('none': do not wait for it, e.g. --worker-only).",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait at most.")
@click.option("--pid", type=int, help="The server's process id ($!): stop waiting if it ended.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when ready.")
def wait(api_url: str, admin: str, timeout: float, pid: int | None, quiet: bool) -> None:
    """Wait until a gpchannel server started in the background serves (its job API and admin listeners)."""
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{api_url!r}: an http:// or https:// URL expected", param_hint="--api")
    admin_address: tuple[str, int] | None = None
    if admin.lower() != "none":
        try:
            admin_address = parse_address(admin, DEFAULT_ADMIN_PORT)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--admin") from None
    deadline = time.monotonic() + timeout
    api_ready = admin_ready = False
    while True:
        admin_ready = admin_ready or admin_address is None or port_accepts(*admin_address)
        api_ready = api_ready or api_answers(api_url)
        if api_ready and admin_ready:
            break
        if pid is not None and _exited(pid):
            cli_fail(f"the server (process {pid}) ended before it served: see its output", ExitCode.FAILURE)
        if time.monotonic() >= deadline:
            waited = ((f"the job API {api_url}", api_ready), (f"the admin listener {admin}", admin_ready))
            missing = [name for name, ok in waited if not ok]
            message = f"the server is not ready after {timeout:g} s: no answer from {' and '.join(missing)}"
            cli_fail(message, ExitCode.TRANSPORT)
        time.sleep(_STEP)
    if not quiet:
        click.echo(f"server ready: api {api_url}" + (f", admin {admin}" if admin_address is not None else ""))
