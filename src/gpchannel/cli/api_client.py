"""The command line's client of ``gpchannel server``'s JSON API (``gpchannel ram``, ``campaign``, ``inventory``):
the HTTP requests, the ``--api`` / ``--api-token-file`` / ``--api-ca`` options, and the mapping of API errors to
the CLI's exit codes.

The API token goes in ``Authorization: Bearer``; it is read from ``--api-token-file FILE`` or the environment
variable ``GPCHANNEL_API_TOKEN``, never from a command-line value (which other users see in the process list).
``--api-ca FILE`` (env ``GPCHANNEL_API_CA``) is the CA to trust for an ``https://`` API with its own CA."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.output import stdout_console
from gpchannel.cli.settings import Settings, fail

__all__ = ["DEFAULT_API_URL", "ApiClient", "ApiError", "api_option", "call_api", "cli_fail", "cli_out"]

DEFAULT_API_URL = "http://127.0.0.1:8080"
_API_EXIT_CODES = {0: ExitCode.TRANSPORT, 400: ExitCode.USAGE}
"""ApiError.status -> exit code (0: the API cannot be reached; 400: the request is malformed); others: 1."""


def _settings() -> Settings | None:
    ctx = click.get_current_context(silent=True)
    return ctx.find_object(Settings) if ctx is not None else None


def cli_out() -> Console:
    """The console of the running command (the global settings' one, or a new one outside a command)."""
    settings = _settings()
    return settings.out if settings is not None else stdout_console()


def cli_fail(message: str, code: int) -> NoReturn:
    """Print ``message`` and exit with ``code`` (cli/settings.py's ``fail``)."""
    fail(_settings(), message, code)


class ApiError(Exception):
    """The job API answered an error (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class ApiClient:
    """A small synchronous client of the job API (urllib; JSON in, JSON out)."""

    def __init__(
        self, base_url: str, *, timeout: float = 30.0, token: str | None = None, ca_file: str | None = None
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise click.BadParameter(f"{base_url!r}: an http:// or https:// URL expected", param_hint="--api")
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.token = token if token is not None else _token()
        ca = ca_file if ca_file is not None else _meta("gpchannel.api_ca") or os.environ.get("GPCHANNEL_API_CA")
        self.context = ssl.create_default_context(cafile=ca) if parsed.scheme == "https" and ca else None

    def __repr__(self) -> str:
        return f"ApiClient({self.base!r})"  # never the token

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        url = f"{self.base}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked above
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            raise ApiError(exc.code, f"HTTP {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, f"the job API at {self.base} cannot be reached: {reason}") from None


def call_api(client: ApiClient, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
    """``client.request``; an error ends the command with the matching exit code."""
    try:
        return client.request(method, path, body, query)
    except ApiError as exc:
        cli_fail(str(exc), _API_EXIT_CODES.get(exc.status, ExitCode.FAILURE))


def _meta(key: str) -> str | None:
    ctx = click.get_current_context(silent=True)
    value = ctx.meta.get(key) if ctx is not None else None
    return str(value) if value else None


def _token() -> str | None:
    """The API token: the file of --api-token-file, else GPCHANNEL_API_TOKEN, else none."""
    path = _meta("gpchannel.api_token_file")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError as exc:
            raise click.BadParameter(f"{path}: {exc.strerror or exc}", param_hint="--api-token-file") from None
    return os.environ.get("GPCHANNEL_API_TOKEN") or None


def _remember(key: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.meta[key] = value

    return callback


_F = TypeVar("_F", bound=Callable[..., Any])


def api_option(fn: _F) -> _F:
    """``--api URL`` (the command's ``api_url``), ``--api-token-file FILE`` and ``--api-ca FILE``."""
    fn = click.option(
        "--api-ca",
        type=click.Path(dir_okay=False, exists=True),
        expose_value=False,
        callback=_remember("gpchannel.api_ca"),
        help="CA certificate(s) to trust for an https:// API (env GPCHANNEL_API_CA).",
    )(fn)
    fn = click.option(
        "--api-token-file",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_remember("gpchannel.api_token_file"),
        help="File holding the API token (else env GPCHANNEL_API_TOKEN).",
    )(fn)
    return click.option(
        "--api",
        "api_url",
        envvar="GPCHANNEL_API",
        default=DEFAULT_API_URL,
        show_default=True,
        help="Job API base URL (env GPCHANNEL_API).",
    )(fn)
