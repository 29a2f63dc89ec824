"""``gpchannel trace decode`` and ``gpchannel keys doctor``: the trace inspector and the key doctor
(:mod:`gpchannel.trace`).

``trace decode FILE`` reads an APDU trace (gpchannel's own ``--trace`` / ``--trace-file`` output, pcscd's debug
log, GPShell's trace, GlobalPlatformPro's ``-d`` output or plain ``C-APDU`` / ``R-APDU`` lines; the format is
detected), finds each SCP01/02/03, SCP10 and SCP11 session and checks it with the keys
(:func:`gpchannel.trace.decode_trace`; an SCP11 session with its session keys, ``--scp11-session-keys``; an SCP10
session with the card's or the off-card entity's private key or its session keys), and the SCP80 command packets
and PoRs of SMS-PP DOWNLOAD ENVELOPEs (or a file of packets in hex, one a line) with the OTA key sets
(:mod:`gpchannel.cli.trace_options`):
every command and response in plain form beside the wire bytes, each cryptogram and MAC checked (GP 2.3.1, 10.2
to 10.8), the first point where anything fails to verify marked and explained.

``keys doctor`` says which use of a key (static, or master under EMV CPS 1.1 / VISA2 / KDF3) reproduces the card
cryptogram of an INITIALIZE UPDATE (GP 2.1.1 D.3.2.1, GP 2.2.1 E.4.2.1, Amendment D 6.2.2.2;
:func:`gpchannel.trace.doctor`). On a card it sends only SELECT and INITIALIZE UPDATE: never EXTERNAL
AUTHENTICATE, so nothing counts against the card's retry limit. Offline, it takes a saved INITIALIZE UPDATE
command and response, or a trace file.

Keys come from the command's own options, else from the global ones (``--key`` ..., ``--kdf``, a ``--profile``'s
key set, the environment), else the GlobalPlatform test key, as for every other command. Keys are never printed:
only their key check values.

Exit codes: 0 the trace verifies / the doctor found the key's use; 3 a check failed / no use of the key
reproduces the card cryptogram / no SCP10 or SCP80 candidate fits; 4 the card refused INITIALIZE UPDATE; 1 the
file is not a trace; 2 usage; 5 no reader.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.cli.apdu_text import parse_apdu_text, parse_hex
from gpchannel.cli.scp11_commands import read_public_key
from gpchannel.cli.settings import (
    EXIT_AUTHENTICATION,
    EXIT_CARD_STATUS,
    EXIT_FAILURE,
    EXIT_USAGE,
    Settings,
    fail,
    handle_errors,
    key_option,
)
from gpchannel.cli.trace_options import Extra, doctor_extra, extra_options, ota_report, read_extra
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import DecodeError, UnsupportedError
from gpchannel.scp import scp02
from gpchannel.scp.common import ScpProtocol, initialize_update_command
from gpchannel.scp.scp11 import Scp11SessionKeys
from gpchannel.trace import (
    DoctorReport,
    Failure,
    KeyOptions,
    TraceFormat,
    TraceReport,
    decode_trace,
    doctor,
    doctor_exchanges,
    doctor_json,
    doctor_text,
    join_get_response,
    parse_trace,
    trace_json,
    trace_text,
)
from gpchannel.trace.scp11_checker import parse_session_keys
from gpchannel.trace.scp11_doctor import scp11_doctor, scp11_doctor_text
from gpchannel.trace.scp80_trace import FoundPacket, packets_from_exchanges, packets_from_lines

__all__ = ["EXIT_NOT_VERIFIED", "keys_group", "trace_group"]

EXIT_NOT_VERIFIED = EXIT_AUTHENTICATION
"""A check of the trace failed, or no use of the key reproduces the card cryptogram."""

pass_settings = click.make_pass_decorator(Settings)


@dataclass(frozen=True)
class _Keys:
    """The keys a command uses, where they come from; kept out of reprs."""

    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    scheme: Diversification = Diversification.NONE
    source: str = "command line"

    def static_keys(self) -> StaticKeys:
        """One key set; 3DES unless a length or KDF3 says AES (the inspector fits the type to each protocol)."""
        aes = self.scheme is Diversification.KDF3 or 32 in {len(self.enc), len(self.mac), len(self.dek)}
        return StaticKeys(self.enc, self.mac, self.dek, 0, KeyType.AES if aes else KeyType.DES3)

    def describe(self) -> str:
        """Where the keys come from (each session's title shows the check values of the keys it used)."""
        return f"keys: {self.source}, diversification {self.scheme.value}"


def _keys(settings: Settings, key: str | None, enc: str | None, mac: str | None, dek: str | None) -> _Keys | None:
    """The command's own key options, or None to use the global ones."""
    single = key_option(key, "--key")
    parts = [key_option(enc, "--key-enc"), key_option(mac, "--key-mac"), key_option(dek, "--key-dek")]
    if any(p is not None for p in parts):
        if single is not None or any(p is None for p in parts):
            raise click.UsageError("give --key, or all three of --key-enc, --key-mac and --key-dek")
        e, m, d = (p for p in parts if p is not None)
        return _Keys(e, m, d, settings.keys.scheme, "command line")
    if single is not None:
        return _Keys(single, single, single, settings.keys.scheme, "command line")
    return None


def _global_keys(settings: Settings) -> _Keys:
    k = settings.keys
    return _Keys(k.enc, k.mac, k.dek, k.scheme, k.source)


def _hex_byte(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        raw = parse_hex(text, name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None
    if len(raw) != 1:
        raise click.BadParameter("one hex byte, e.g. 55", param_hint=name)
    return raw[0]


def _i_params(settings: Settings, scp01_i: str | None, scp02_i: str | None) -> tuple[int | None, int | None]:
    """``--scp01-i`` / ``--scp02-i``, else the global ``--scp-i`` (or the profile's i) when ``--scp`` names that
    protocol. SCP01 and SCP02 do not put i on the wire (GP 2.1.1 D.1.1, GP 2.2.1 E.1.1); None: detected."""
    i01 = _hex_byte(scp01_i, "--scp01-i")
    i02 = _hex_byte(scp02_i, "--scp02-i")
    if i01 is None and settings.scp is ScpProtocol.SCP01:
        i01 = settings.i_param
    if i02 is None and settings.scp is ScpProtocol.SCP02:
        i02 = settings.i_param
    if i01 is not None and i01 not in (0x05, 0x15):
        raise click.BadParameter(f"SCP01 i is 05 or 15 (GP 2.1.1 D.1.1), got {i01:02X}", param_hint="--scp01-i")
    if i02 is not None:
        try:
            scp02.check_i_param(i02)
        except UnsupportedError as exc:
            raise click.BadParameter(str(exc), param_hint="--scp02-i") from None
    return i01, i02


_STDIN = "<stdin>"


_CA_HELP = "With --from-trace: the %s certificate or PEM public key that SCP11 chains are checked from."


def _scp11_keys(settings: Settings, values: tuple[str, ...]) -> tuple[Scp11SessionKeys, ...]:
    """The SCP11 session key sets of ``--scp11-session-keys`` (hex, or @FILE with one set a line, # comments)."""
    out: list[Scp11SessionKeys] = []
    for value in values:
        lines = [value]
        if value.startswith("@"):
            try:
                lines = Path(value[1:]).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                fail(settings, f"--scp11-session-keys {value}: {exc.strerror}", EXIT_USAGE)
        for line in lines:
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                out.append(parse_session_keys(text))
            except DecodeError as exc:
                fail(settings, f"--scp11-session-keys: {exc}", EXIT_USAGE)
    return tuple(out)


def _file_name(file: Any) -> str:
    """The name of a click.File (standard input has none under a test runner)."""
    return str(getattr(file, "name", _STDIN))


def _print(settings: Settings, text: str) -> None:
    """Text as it is: no markup, no highlighting, no wrapping (hex lines stay whole)."""
    settings.out.print(text, markup=False, highlight=False, soft_wrap=True, end="")


def _print_json(settings: Settings, data: Any) -> None:
    _print(settings, json.dumps(data, indent=2) + "\n")


_KEY_OPTIONS = (
    click.option("--key", help="One key for ENC, MAC and DEK, hex (default: the global key options)."),
    click.option("--key-enc", help="ENC key, hex."),
    click.option("--key-mac", help="MAC key, hex."),
    click.option("--key-dek", help="DEK key, hex."),
)


# -- gpchannel trace ------------------------------------------------------------------------------------------------
@click.group(name="trace")
def trace_group() -> None:
    """Read APDU traces: find, check and decrypt the secure channel sessions in them."""


@trace_group.command()
@click.argument("file", type=click.File("r", encoding="utf-8", errors="replace"))
@_KEY_OPTIONS[0]
@_KEY_OPTIONS[1]
@_KEY_OPTIONS[2]
@_KEY_OPTIONS[3]
@click.option(
    "--kdf",
    type=click.Choice([d.value for d in Diversification]),
    help="The keys are master keys diversified this way (default: the global --kdf, else none).",
)
@click.option("--scp01-i", help="SCP01 i (05 or 15; default: detected from the C-MACs).")
@click.option("--scp02-i", help="SCP02 i, hex (default: detected from the MACs).")
@click.option(
    "--scp11-session-keys",
    "scp11_keys",
    multiple=True,
    help="An SCP11 session's keys, hex (receipt:S-ENC:S-MAC:S-RMAC:S-DEK), or @FILE with one set a line; repeatable.",
)
@extra_options
@click.option("--no-keys", is_flag=True, help="Only find and list the sessions; check nothing.")
@click.option("--format", "trace_format", type=click.Choice([f.value for f in TraceFormat]), help="Default: detected.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
@handle_errors
def decode(
    settings: Settings,
    /,
    file: Any,
    key: str | None,
    key_enc: str | None,
    key_mac: str | None,
    key_dek: str | None,
    kdf: str | None,
    scp01_i: str | None,
    scp02_i: str | None,
    scp11_keys: tuple[str, ...],
    no_keys: bool,
    trace_format: str | None,
    as_json: bool,
    **extra_values: Any,
) -> None:
    """Decode the APDU trace FILE ('-': standard input) and check every secure channel session in it.

    Prints each command and response, the plain form beside the wire bytes, the checks that passed, and the
    first point where anything fails to verify, with what it means; then the SCP80 packets of its SMS-PP
    ENVELOPEs with their PoRs (FILE may also hold OTA packets in hex, one a line). Exit code 3 when a check fails.
    """
    keys = _keys(settings, key, key_enc, key_mac, key_dek) or _global_keys(settings)
    if kdf is not None:
        keys = _Keys(keys.enc, keys.mac, keys.dek, Diversification(kdf), keys.source)
    i01, i02 = _i_params(settings, scp01_i, scp02_i)
    sessions = () if no_keys else _scp11_keys(settings, scp11_keys)
    extra = Extra() if no_keys else read_extra(settings, extra_values)
    options = KeyOptions(keys.static_keys(), keys.scheme, i01, i02, sessions, extra.secrets())
    text = file.read()
    name = _file_name(file)
    report, found = _decode(settings, name, text, KeyOptions() if no_keys else options, trace_format)
    if report is not None and not report.exchanges:
        fail(settings, f"{name}: no exchange of the {report.format and report.format.value} format", EXIT_FAILURE)
    ota_text, ota_json, ota_failure = ota_report(settings, found, extra)
    if as_json:
        data = trace_json(report if report is not None else TraceReport(None, (), ()))
        data["format"] = data["format"] or "packets"
        data["keys"] = None if no_keys else {"source": keys.source, "diversification": keys.scheme.value}
        if found:
            data["ok"], data["scp80"] = data["ok"] and not ota_failure, ota_json
        _print_json(settings, data)
    else:
        _print(settings, ("keys: none (--no-keys)" if no_keys else keys.describe()) + "\n")
        _print(settings, trace_text(report) if report is not None else "trace format: packets\n")
        _print(settings, ota_text)
    first = report.first_failure if report is not None else None
    if first is None and ota_failure:
        fail(settings, ota_failure, EXIT_NOT_VERIFIED)
    if first is not None:
        what = first.failure.value if first.failure is not None else "failure"
        message = f"the trace does not verify: exchange #{first.index} (line {first.line}), {what}: {first.explanation}"
        if first.failure is Failure.CARD_CRYPTOGRAM and name != _STDIN:
            message += f"\nhow the key fits the card: gpchannel keys doctor --from-trace {name}"
        fail(settings, message, EXIT_NOT_VERIFIED)


def _decode(
    settings: Settings, name: str, text: str, options: KeyOptions, trace_format: str | None
) -> tuple[TraceReport | None, list[FoundPacket]]:
    """The APDU trace's report and its OTA packets; a file of packets in hex (no APDU trace) gives no report."""
    try:
        report = decode_trace(text, options, TraceFormat(trace_format) if trace_format else None)
    except DecodeError as exc:
        found = _packet_lines(text) if trace_format is None else []
        if not found:
            fail(settings, f"{name}: {exc}", EXIT_FAILURE)
        return None, found
    return report, packets_from_exchanges(join_get_response(parse_trace(text, report.format)))


def _packet_lines(text: str) -> list[FoundPacket]:
    try:
        return packets_from_lines(text)
    except DecodeError:
        return []


# -- gpchannel keys -------------------------------------------------------------------------------------------------
@click.group(name="keys")
def keys_group() -> None:
    """Key diagnostics."""


def _doctor_key(settings: Settings, key: str | None) -> tuple[bytes | StaticKeys, str]:
    chosen = _keys(settings, key, None, None, None) or _global_keys(settings)
    if chosen.enc == chosen.mac == chosen.dek:
        return chosen.enc, chosen.source
    return chosen.static_keys(), chosen.source


def _exit_code(report: DoctorReport) -> int:
    if report.match is not None:
        return 0
    return EXIT_CARD_STATUS if report.protocol is None else EXIT_NOT_VERIFIED


_DOCTOR_FAILURES: dict[int, str] = {
    EXIT_CARD_STATUS: "the card refused INITIALIZE UPDATE (see above): check --kvn and the card's life cycle",
    EXIT_NOT_VERIFIED: "no use of the key reproduces the card cryptogram (see above): it is not the card's key",
}


def _doctor_exit(settings: Settings, code: int) -> None:
    if code:
        fail(settings, _DOCTOR_FAILURES[code], code)


def _exchange_json(command: CommandApdu, response: ResponseApdu) -> dict[str, str]:
    return {"command": str(command), "response": str(response)}


@keys_group.command(name="doctor")
@_KEY_OPTIONS[0]
@click.option("--command", "command_hex", help="Offline: the INITIALIZE UPDATE command sent (hex).")
@click.option("--response", "response_hex", help="Offline: the card's response to it, with its status word (hex).")
@click.option(
    "--from-trace",
    "trace_file",
    type=click.File("r", encoding="utf-8", errors="replace"),
    help="Offline: every INITIALIZE UPDATE of a trace file (any format `trace decode` reads).",
)
@click.option("--scp11-card-ca", type=click.Path(dir_okay=False, path_type=Path), help=_CA_HELP % "CA-KLCC")
@click.option("--scp11-oce-ca", type=click.Path(dir_okay=False, path_type=Path), help=_CA_HELP % "CA-KLOC")
@click.option("--scp11-session-keys", "scp11_keys", multiple=True, help="As for `trace decode`; repeatable.")
@extra_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
@handle_errors
def doctor_command(
    settings: Settings,
    /,
    key: str | None,
    command_hex: str | None,
    response_hex: str | None,
    trace_file: Any,
    scp11_card_ca: Path | None,
    scp11_oce_ca: Path | None,
    scp11_keys: tuple[str, ...],
    as_json: bool,
    **extra_values: Any,
) -> None:
    """Which use of the key (static, or master under EMV, VISA2 or KDF3) reproduces the card cryptogram.

    On the card (--reader / --emulator, --kvn): sends only SELECT and INITIALIZE UPDATE, never EXTERNAL
    AUTHENTICATE, so nothing counts against the card. Offline: --command and --response of a saved INITIALIZE
    UPDATE, or --from-trace FILE; with --from-trace also which --scp10-* key fits each SCP10 session and which
    OTA key set (--kic/--kid, the profile's) verifies each SCP80 packet. Exit code 3 when no combination
    reproduces it (or no candidate fits), 4 when the card refused.
    """
    the_key, source = _doctor_key(settings, key)
    if trace_file is not None:
        if command_hex or response_hex:
            raise click.UsageError("give --from-trace, or --command and --response, not both")
        text = trace_file.read()
        anchors = [read_public_key(p) if p is not None else None for p in (scp11_card_ca, scp11_oce_ca)]
        scp11 = _Scp11Doctor(
            _scp11_keys(settings, scp11_keys), anchors[0], anchors[1], read_extra(settings, extra_values)
        )
        _doctor_trace(settings, _file_name(trace_file), text, the_key, source, as_json, scp11)
        return
    if (command_hex is None) != (response_hex is None):
        raise click.UsageError("--command and --response go together (the host challenge is in the command)")
    if command_hex is not None and response_hex is not None:
        try:
            command = parse_apdu_text(command_hex)
            response = ResponseApdu.from_bytes(parse_hex(response_hex, "--response"))
        except (ValueError, DecodeError) as exc:
            raise click.BadParameter(str(exc)) from None
        where = "offline"
    else:
        card = settings.card(secure=False)  # SELECT of the ISD only
        challenge = settings.random(16 if settings.s16 else 8)
        command = initialize_update_command(challenge, settings.kvn, 0, card.session.channel)
        response = card.session.transmit_plain(command)
        where = "card"
    report = doctor(command, response, the_key)
    if as_json:
        data = doctor_json(report)
        data["initialize_update"] = _exchange_json(command, response)
        data["key_source"] = source
        _print_json(settings, data)
    else:
        head = f"key: {source}; INITIALIZE UPDATE ({where}"
        head += ", no EXTERNAL AUTHENTICATE sent)" if where == "card" else ")"
        _print(settings, f"{head}\n  C: {command}\n  R: {response}\n")
        _print(settings, doctor_text(report))
    _doctor_exit(settings, _exit_code(report))


@dataclass(frozen=True)
class _Scp11Doctor:
    keys: tuple[Scp11SessionKeys, ...] = field(repr=False)
    card_anchor: ec.EllipticCurvePublicKey | None
    oce_anchor: ec.EllipticCurvePublicKey | None
    extra: Extra


def _doctor_trace(
    settings: Settings, name: str, text: str, key: bytes | StaticKeys, source: str, as_json: bool, scp11: _Scp11Doctor
) -> None:
    try:
        exchanges = parse_trace(text)
        found = doctor_exchanges(exchanges, key)
        packets = packets_from_exchanges(join_get_response(exchanges))
    except DecodeError as exc:
        exchanges, found, packets = [], [], _packet_lines(text)
        if not packets:
            fail(settings, f"{name}: {exc}", EXIT_FAILURE)
    now = datetime.datetime.now(datetime.UTC)
    diagnoses = scp11_doctor(
        exchanges, session_keys=scp11.keys, card_anchor=scp11.card_anchor, oce_anchor=scp11.oce_anchor, now=now
    )
    extra_text, extra_json, extra_code = doctor_extra(settings, exchanges, packets, scp11.extra, as_json)
    if not found and not diagnoses and not extra_text:
        what = "no answered INITIALIZE UPDATE or SCP11 key agreement, nor an SCP10 session or OTA packet with keys"
        fail(settings, f"{name}: {what} to try in the trace", EXIT_FAILURE)
    scp11_code = EXIT_NOT_VERIFIED if any(not d.ok for d in diagnoses) else 0
    if as_json and not found:
        _print_json(settings, {"scp11": [dataclasses.asdict(d) for d in diagnoses]} | extra_json)
    elif not found:
        _print(settings, (scp11_doctor_text(diagnoses) if diagnoses else "") + extra_text)
    if not found:
        if scp11_code:
            fail(settings, "an SCP11 session does not fit the anchors or session keys given (see above)", scp11_code)
        if extra_code:
            fail(settings, "an SCP10 session or an OTA packet fits none of the candidate keys (see above)", extra_code)
        return
    if as_json:
        out = []
        for exchange, report in found:
            data = doctor_json(report)
            data["index"], data["line"] = exchange.index, exchange.line
            assert exchange.response is not None
            data["initialize_update"] = _exchange_json(exchange.command, exchange.response)
            out.append(data)
        scp11_json = [dataclasses.asdict(d) for d in diagnoses]
        _print_json(settings, {"key_source": source, "reports": out, "scp11": scp11_json} | extra_json)
    else:
        _print(settings, f"key: {source}\n")
        for exchange, report in found:
            _print(settings, f"\nexchange #{exchange.index} (line {exchange.line}): INITIALIZE UPDATE\n")
            _print(settings, doctor_text(report))
        if diagnoses:
            _print(settings, "\n" + scp11_doctor_text(diagnoses))
        if extra_text:
            _print(settings, "\n" + extra_text)
    _doctor_exit(settings, max([scp11_code, extra_code] + [_exit_code(report) for _, report in found]))
