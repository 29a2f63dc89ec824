"""The SCP10 and SCP80 options of ``gpchannel trace decode`` and ``gpchannel keys doctor`` (see
:mod:`gpchannel.cli.trace_commands`), and their part of the two commands' output.

SCP10 (GP Card Specification 2.2.1, Appendix F; :mod:`gpchannel.trace.scp10_checker`): ``--scp10-card-key PEM``
(SK.SD.AUT), ``--scp10-oce-key PEM`` (SK.OCE.AUT), ``--scp10-session-keys mac=..,enc=..,counter=..`` (or @FILE,
one set a line), each repeatable: ``trace decode`` uses the first private key of each kind and every session key
set; ``keys doctor`` tries each alone and says which fits.

SCP80 (ETSI TS 102 225 / 226; :mod:`gpchannel.trace.scp80_trace`): ``--kic`` / ``--kid`` with
``--kic-algorithm`` / ``--kid-algorithm`` (as ``gpchannel ota``), and every ``[[ota.keysets]]`` of the global
``--profile``. Keys are never printed: key sets are named by where they come from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from gpchannel.cli.ota_commands import profile_keysets, resolve_keys
from gpchannel.cli.settings import EXIT_AUTHENTICATION, EXIT_USAGE, Settings, fail
from gpchannel.crypto.rsa import RsaPrivateKey
from gpchannel.errors import DecodeError
from gpchannel.ota import KIC_ALGORITHMS, KID_ALGORITHMS
from gpchannel.trace.formats import TraceExchange
from gpchannel.trace.scp10_checker import Scp10Secrets, Scp10SessionKeys, parse_session_keys
from gpchannel.trace.scp10_doctor import Scp10Candidates, scp10_doctor, scp10_doctor_text
from gpchannel.trace.scp80_report import ota_doctor, ota_doctor_json, ota_doctor_text, packets_json, packets_text
from gpchannel.trace.scp80_trace import FoundPacket, OtaKeySet, decode_packets

__all__ = ["Extra", "doctor_extra", "extra_options", "ota_report", "read_extra"]


def extra_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The SCP10 and SCP80 options (module docstring)."""
    options = [
        click.option(
            "--scp10-card-key",
            "scp10_card_keys",
            multiple=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="SCP10: the card's private key SK.SD.AUT (PEM or DER); repeatable.",
        ),
        click.option(
            "--scp10-oce-key",
            "scp10_oce_keys",
            multiple=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="SCP10: the off-card entity's private key SK.OCE.AUT (PEM or DER); repeatable.",
        ),
        click.option(
            "--scp10-session-keys",
            "scp10_session",
            multiple=True,
            help="SCP10 session keys mac=HEX,enc=HEX,counter=HEX[,dek=HEX][,level=HEX], or @FILE; repeatable.",
        ),
        click.option("--kic", "kic_key", help="SCP80: a KIc key, hex (with the global --profile's OTA key sets)."),
        click.option("--kid", "kid_key", help="SCP80: a KID key, hex."),
        click.option("--kic-algorithm", type=click.Choice(list(KIC_ALGORITHMS)), default="aes-cbc", show_default=True),
        click.option("--kid-algorithm", type=click.Choice(list(KID_ALGORITHMS)), default="aes-cmac", show_default=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass(frozen=True)
class Extra:
    """The SCP10 candidates and SCP80 key sets read from the options; no key in a repr."""

    scp10: Scp10Candidates = field(default_factory=Scp10Candidates, repr=False)
    ota: tuple[OtaKeySet, ...] = field(default=(), repr=False)

    def secrets(self) -> Scp10Secrets:
        """What ``trace decode`` uses: the first private key of each kind, every session key set."""
        c = self.scp10
        return Scp10Secrets(
            c.card_keys[0][1] if c.card_keys else None,
            c.oce_keys[0][1] if c.oce_keys else None,
            tuple(k for _, k in c.session_keys),
        )


def _private_keys(settings: Settings, paths: Sequence[Path], option: str) -> tuple[tuple[str, RsaPrivateKey], ...]:
    out = []
    for path in paths:
        try:
            out.append((path.name, RsaPrivateKey.from_pem_or_der(path.read_bytes())))
        except OSError as exc:
            fail(settings, f"{option} {path}: {exc.strerror or exc}", EXIT_USAGE)
        except DecodeError as exc:
            fail(settings, f"{option} {path}: {exc}", EXIT_USAGE)
    return tuple(out)


def _session_keys(settings: Settings, values: Sequence[str]) -> tuple[tuple[str, Scp10SessionKeys], ...]:
    out: list[tuple[str, Scp10SessionKeys]] = []
    for value in values:
        lines = [value]
        if value.startswith("@"):
            try:
                lines = Path(value[1:]).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                fail(settings, f"--scp10-session-keys {value}: {getattr(exc, 'strerror', None) or exc}", EXIT_USAGE)
        for line in lines:
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                out.append((f"set {len(out) + 1}", parse_session_keys(text)))
            except DecodeError as exc:
                fail(settings, f"--scp10-session-keys: {exc}", EXIT_USAGE)
    return tuple(out)


def read_extra(settings: Settings, values: dict[str, Any]) -> Extra:
    """The options of :func:`extra_options` (``values``: the command's keyword arguments)."""
    candidates = Scp10Candidates(
        _private_keys(settings, values["scp10_card_keys"], "--scp10-card-key"),
        _private_keys(settings, values["scp10_oce_keys"], "--scp10-oce-key"),
        _session_keys(settings, values["scp10_session"]),
    )
    ota: list[OtaKeySet] = []
    kic, kid = values["kic_key"], values["kid_key"]
    if kic is not None or kid is not None:
        keys = resolve_keys(None, None, kic, kid, values["kic_algorithm"], values["kid_algorithm"], None)
        ota.append(OtaKeySet(keys.kvn, keys.keyset, "--kic/--kid"))
    if settings.profile is not None:
        for kvn, keyset in profile_keysets(settings.profile):
            ota.append(OtaKeySet(kvn, keyset, f"profile OTA key set {kvn:X}"))
    return Extra(candidates, tuple(ota))


def ota_report(settings: Settings, found: Sequence[FoundPacket], extra: Extra) -> tuple[str, list[dict[str, Any]], str]:
    """``trace decode``'s SCP80 part: the text listing, the JSON list and the failure message ("" when none)."""
    if not found:
        return "", [], ""
    reports = decode_packets(found, extra.ota)
    bad = next((r for r in reports if r.failure is not None), None)
    message = ""
    if bad is not None:
        message = f"the OTA traffic does not verify: packet {bad.number} (line {bad.line}), {bad.failure}: "
        message += bad.explanation
    return packets_text(reports), packets_json(reports), message


def doctor_extra(
    settings: Settings, exchanges: Sequence[TraceExchange], found: Sequence[FoundPacket], extra: Extra, as_json: bool
) -> tuple[str, dict[str, Any], int]:
    """``keys doctor``'s SCP10 and SCP80 part: text, JSON and exit code (0, or 3 when a candidate set fits
    nothing)."""
    text, data, code = "", {}, 0
    if extra.scp10:
        diagnoses = scp10_doctor(exchanges, extra.scp10)
        if diagnoses:
            text += scp10_doctor_text(diagnoses)
            data["scp10"] = [
                {"session": d.session, "index": d.index, "verdicts": [list(v) for v in d.verdicts], "ok": d.ok}
                | {"explanation": d.explanation}
                for d in diagnoses
            ]
            code = code or (0 if all(d.ok for d in diagnoses) else EXIT_AUTHENTICATION)
    if found and extra.ota:
        ota = ota_doctor(found, extra.ota)
        text += ota_doctor_text(ota)
        data["scp80"] = ota_doctor_json(ota)
        code = code or (0 if all(d.ok for d in ota) else EXIT_AUTHENTICATION)
    return text, data, code
