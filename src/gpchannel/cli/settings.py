"""The CLI's resolved global options, its error handling (exit codes, messages) and option parsing helpers."""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from gpchannel.cli import render
from gpchannel.cli.apdu_text import parse_hex, parse_int
from gpchannel.cli.conventions import TEST_KEY_WARNING, is_test_key
from gpchannel.cli.exit_codes import ExitCode, exit_code_for
from gpchannel.cli.output import stderr_console, stdout_console
from gpchannel.cli.scp10_commands import Scp10Credentials, today_utc
from gpchannel.cli.scp11_commands import Scp11Credentials
from gpchannel.cli.target import DEFAULT_KEY, KeyMaterial, key_resolver, open_transport
from gpchannel.codec.sw import describe
from gpchannel.crypto.diversification import Diversification
from gpchannel.errors import AuthenticationError, CardStatusError, GPChannelError, UnsupportedError
from gpchannel.host.card import GpCard
from gpchannel.host.session import ApduTransport, CardSession, ChannelOptions, Exchange, TraceHook
from gpchannel.scp.common import ScpProtocol, SecurityLevel, SteppedHostChannel, protocol_name
from gpchannel.scp.registry import PROTOCOLS, Initiation

__all__ = [
    "EXIT_AUTHENTICATION",
    "EXIT_CARD_STATUS",
    "EXIT_FAILURE",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "Settings",
    "aid_option",
    "fail",
    "fail_on",
    "handle_errors",
    "int_option",
    "key_option",
]

# Short names of cli/exit_codes.py's ExitCode members (the one table), for the commands' modules.
EXIT_FAILURE = ExitCode.FAILURE
EXIT_USAGE = ExitCode.USAGE
EXIT_AUTHENTICATION = ExitCode.AUTHENTICATION
EXIT_CARD_STATUS = ExitCode.CARD_REFUSED
EXIT_TRANSPORT = ExitCode.TRANSPORT

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass
class Settings:
    """The global options, resolved (profile and environment included). Keys are never in the repr."""

    reader: str | None = None
    emulator: Path | None = None
    isd: bytes | None = None
    app: bytes | None = None
    scp: ScpProtocol | None = None
    i_param: int | None = None
    kvn: int = 0
    keys: KeyMaterial = field(default_factory=lambda: KeyMaterial(DEFAULT_KEY, DEFAULT_KEY, DEFAULT_KEY))
    level: SecurityLevel = SecurityLevel.C_MAC
    s16: bool = False
    trace: bool = False
    trace_file: Path | None = None
    profile: Path | None = None
    transport_factory: Callable[[], ApduTransport] | None = None
    random: Callable[[int], bytes] = os.urandom
    out: Console = field(default_factory=stdout_console)
    err: Console = field(default_factory=stderr_console)
    scp10: Scp10Credentials | None = None
    scp11: Scp11Credentials | None = None
    _card: GpCard | None = None
    _trace_stream: TextIO | None = None

    def channel_options(self) -> ChannelOptions:
        factory: Callable[[SecurityLevel, int], SteppedHostChannel] | None = None
        if self.scp10 is not None:
            factory = self.scp10.host_factory(self.random, today_utc())
        if self.scp11 is not None:  # SCP11: the level comes from the key usage (cli/scp11_commands.py)
            make11 = self.scp11.host_factory(datetime.datetime.now(datetime.UTC))

            def factory(_level: SecurityLevel, channel: int) -> SteppedHostChannel:
                return make11(channel)

        return ChannelOptions(
            key_resolver(self.keys, self.kvn), self.level, self.scp, self.i_param, self.kvn, self.s16, factory
        )

    def card(self, *, secure: bool = True) -> GpCard:
        """Connect (once), select the ISD and, when ``secure``, open the secure channel; with ``--app``, select
        that application and open the secure channel with it instead."""
        if self._card is None:
            trace = self._trace_hook()
            transport = (
                self.transport_factory()
                if self.transport_factory
                else open_transport(self.reader, self.emulator, self.profile)
            )
            session = CardSession(transport, random=self.random, trace=trace)
            self._card = GpCard.connect(session, self.isd)
            if self.app is not None and not secure:
                self._card.select(self.app)
        if secure and not (self._card.session.secure and self._card.session.secure.is_open):
            if self.app is None:
                self._card.open_channel(self.channel_options())
            elif self.scp is not None and PROTOCOLS.initiation(self.scp) is Initiation.STEPS:
                name = protocol_name(self.scp)
                raise UnsupportedError(f"--app with --scp {self.scp:02X}: {name} runs with a Security Domain only")
            else:
                self._card.open_application_channel(self.app, self.channel_options())
            opened = self._card.session.secure
            symmetric = opened is not None and PROTOCOLS.initiation(opened.protocol) is not Initiation.STEPS
            if (
                symmetric
                and self.keys.scheme is Diversification.NONE
                and is_test_key(self.keys.enc, self.keys.mac, self.keys.dek)
            ):
                self.err.print(TEST_KEY_WARNING, markup=False)  # SCP10 / SCP11 sessions use no symmetric key
        return self._card

    def _trace_hook(self) -> TraceHook | None:
        """``--trace`` prints to stderr and ``--trace-file`` writes to the file, both in gpchannel's trace format."""
        hooks: list[TraceHook] = []
        if self.trace:
            hooks.append(render.trace_printer(self.err))
        if self.trace_file is not None:
            try:
                self._trace_stream = self.trace_file.open("w", encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"--trace-file {self.trace_file}: {exc.strerror or exc}") from None
            hooks.append(render.trace_writer(self._trace_stream))
        if not hooks:
            return None

        def trace(exchange: Exchange) -> None:
            for hook in hooks:
                hook(exchange)

        return trace

    def close(self) -> None:
        if self._card is not None:
            self._card.session.close()
        if self._trace_stream is not None:
            self._trace_stream.close()
            self._trace_stream = None


def fail(settings: Settings | None, message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr (one logical line, never wrapped) and exit with ``code``."""
    console = settings.err if settings else Console(stderr=True)
    console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


_AUTHENTICATION_ADVICE = (
    ".\nThe keys are not the card's: its card cryptogram could not be verified, so the session stopped right after "
    "INITIALIZE UPDATE. No EXTERNAL AUTHENTICATE was sent: nothing counts against the card's retry limit. Check the "
    "keys, --kvn and --kdf (diversification) before trying again."
)


def _message(exc: GPChannelError) -> str:
    """What to print for a library error: its message, with the advice or explanation its class calls for."""
    if isinstance(exc, AuthenticationError):
        return f"{exc}{_AUTHENTICATION_ADVICE}"
    if isinstance(exc, CardStatusError):
        return f"{exc} ({describe(exc.sw)})"
    return str(exc) or type(exc).__name__


def fail_on(settings: Settings | None, exc: GPChannelError, context: str = "") -> NoReturn:
    """Fail with ``exc``'s message (after ``context``) and the exit code its class maps to (cli/exit_codes.py)."""
    fail(settings, f"{context}{_message(exc)}", exit_code_for(exc) or ExitCode.FAILURE)


def handle_errors(fn: _F) -> _F:
    """Turn library errors into a message a person can act on and the exit code of their class; close the card.

    The command's own text parsers (cli/apdu_text.py) raise a plain ValueError naming the option: a usage error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings = click.get_current_context().find_object(Settings)
        try:
            return fn(*args, **kwargs)
        except GPChannelError as exc:
            fail_on(settings, exc)
        except ValueError as exc:
            fail(settings, str(exc), EXIT_USAGE)
        finally:
            if settings is not None:
                settings.close()

    return wrapper  # type: ignore[return-value]


def key_option(value: str | None, name: str) -> bytes | None:
    if value is None:
        return None
    try:
        key = parse_hex(value, name)
    except ValueError:
        message = "not an even number of hex digits (value not shown: it is a key)"
        raise click.BadParameter(message, param_hint=name) from None
    if len(key) not in (16, 24, 32):
        raise click.BadParameter(f"a key is 16, 24 or 32 bytes, got {len(key)}", param_hint=name)
    return key


def aid_option(text: str, what: str = "AID") -> bytes:
    try:
        aid = parse_hex(text, what)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not 5 <= len(aid) <= 16:
        raise click.BadParameter(f"{what} {text!r} must be 5 to 16 bytes, got {len(aid)}")
    return aid


def int_option(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_int(text, what)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
