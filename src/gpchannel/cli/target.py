"""Where the CLI's card and keys come from: a PC/SC reader, the emulator in-process, a card profile, the
environment. This is application code (it reads files and the environment); the library below it does not."""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from gpchannel.card.profile_schema import check_shape
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification, diversify
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import ProfileError, TransportError, UnsupportedError
from gpchannel.host.session import ApduTransport
from gpchannel.scp.common import InitializeUpdateResponse, KeyResolver, ScpProtocol

__all__ = [
    "DEFAULT_KEY",
    "AppKeySet",
    "CallableTransport",
    "KeyMaterial",
    "Profile",
    "emulator_transport",
    "key_resolver",
    "list_readers",
    "load_profile",
    "open_transport",
]

DEFAULT_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
"""The GlobalPlatform default test key, used when no key is given (as GlobalPlatformPro does)."""


@dataclass(frozen=True)
class KeyMaterial:
    """The static (or master) keys a person gave; kept out of reprs."""

    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    scheme: Diversification = Diversification.NONE
    source: str = "default test key"


def key_resolver(material: KeyMaterial, kvn: int) -> KeyResolver:
    """A resolver that types the keys by the protocol the card answered with (AES for SCP03, 3DES otherwise) and
    diversifies them with the card's key diversification data when a scheme is set."""

    def resolve(response: InitializeUpdateResponse) -> StaticKeys:
        key_type = KeyType.AES if response.protocol is ScpProtocol.SCP03 else KeyType.DES3
        keys = StaticKeys(material.enc, material.mac, material.dek, kvn or response.kvn, key_type)
        if material.scheme is Diversification.NONE:
            return keys
        return diversify(keys, material.scheme, response.key_diversification_data)

    return resolve


@dataclass(frozen=True)
class AppKeySet:
    """The key set of an application that runs its own secure channel (direct handling, GP 2.3.1 10.3), as the
    profile's ``[[applications]]`` entry gives it (in its install parameters)."""

    kvn: int
    keys: KeyMaterial


@dataclass(frozen=True)
class Profile:
    """The parts of a card profile (../shared/docs/profile.md) the host tool uses. ``kvn`` and ``keys`` are the
    ISD's first key set; ``app_keys`` the key sets of applications with keys of their own, by AID."""

    isd_aid: bytes | None = None
    scp: ScpProtocol | None = None
    i_param: int | None = None
    kvn: int | None = None
    keys: KeyMaterial | None = None
    app_keys: dict[bytes, AppKeySet] = field(default_factory=dict)

    def application_keys(self, aid: bytes) -> AppKeySet | None:
        """The key set the profile gives application ``aid`` (None: the application uses its Security Domain's,
        or the profile does not describe it)."""
        return self.app_keys.get(aid)


def _hex_value(table: dict[str, Any], key: str, where: str) -> bytes:
    value = table.get(key)
    if not isinstance(value, str):
        raise ProfileError(f"{where}.{key}: expected a hex string")
    try:
        return bytes.fromhex(value.replace(" ", ""))
    except ValueError:
        raise ProfileError(f"{where}.{key}: {value!r} is not hex") from None


def _hex_byte(table: dict[str, Any], key: str, where: str, names: str) -> int:
    """``scp = "03"`` / ``i = "70"``: one hex byte (an integer is read as its hex digits, ``scp = 3``)."""
    try:
        value = int(str(table[key]), 16)
    except ValueError:
        value = -1
    if not 0 <= value <= 0xFF:
        raise ProfileError(f"{where}.{key}: {table[key]!r} is not {names}")
    return value


def load_profile(path: Path) -> Profile:
    """Read the ISD part of a card profile; ProfileError naming the file and the key on a bad value."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"profile {path}: {exc}") from None
    try:
        return _isd_part(check_shape(data), path)  # every key's TOML type first
    except ProfileError as exc:
        raise ProfileError(f"profile {path}: {exc}") from None


def _isd_part(data: dict[str, Any], path: Path) -> Profile:
    isd = data.get("isd", {})
    if not isinstance(isd, dict):
        raise ProfileError("isd: expected a table")
    aid = _hex_value(isd, "aid", "isd") if "aid" in isd else None
    scp = None
    if "scp" in isd:
        number = _hex_byte(isd, "scp", "isd", "01, 02, 03 or 10")
        if number not in {p.value for p in ScpProtocol}:
            raise ProfileError(f"isd.scp: {isd['scp']!r} is not 01, 02, 03 or 10")
        scp = ScpProtocol(number)
    i_param = _hex_byte(isd, "i", "isd", "one hex byte, e.g. 70") if "i" in isd else None
    keysets = isd.get("keysets", [])
    if not isinstance(keysets, list):
        raise ProfileError("isd.keysets: expected an array of tables ([[isd.keysets]])")
    keys = None
    kvn = None
    if keysets:
        first = keysets[0]
        if not isinstance(first, dict):
            raise ProfileError("isd.keysets[0]: expected a table")
        keys = KeyMaterial(
            _hex_value(first, "enc", "isd.keysets[0]"),
            _hex_value(first, "mac", "isd.keysets[0]"),
            _hex_value(first, "dek", "isd.keysets[0]"),
            source=f"profile {path.name}",
        )
        kvn = first.get("kvn")
        if not isinstance(kvn, int) or isinstance(kvn, bool) or not 0 <= kvn <= 0xFF:
            raise ProfileError("isd.keysets[0].kvn: expected an integer 0..255")
    return Profile(aid, scp, i_param, kvn, keys, _application_keys(data.get("applications", []), path))


def _application_keys(raw: object, path: Path) -> dict[bytes, AppKeySet]:
    """The key sets of the profile's applications that run their own secure channel: the applet class of the
    entry's ``kind`` reads them from its install ``parameters`` (``Applet.own_key_set``)."""
    if not isinstance(raw, list):
        raise ProfileError("applications: expected an array of [[applications]] tables")
    from gpchannel.card.builtin_applets import default_registry  # the emulator's applet classes, only when needed

    registry = default_registry()
    out: dict[bytes, AppKeySet] = {}
    for n, table in enumerate(raw):
        if not isinstance(table, dict) or not isinstance(table.get("kind"), str) or "parameters" not in table:
            continue
        where = f"applications[{n}]"
        own = registry.own_key_set(table["kind"], _hex_value(table, "parameters", where))
        if own is not None:
            keys = KeyMaterial(own.enc, own.mac, own.dek, source=f"profile {path.name}, {where}")
            out[_hex_value(table, "aid", where)] = AppKeySet(own.kvn, keys)
    return out


class CallableTransport:
    """A transport over a ``bytes -> bytes`` callable (the emulator's ``Card.process`` in-process)."""

    def __init__(self, process: Callable[[bytes], bytes]) -> None:
        self.process = process

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        return ResponseApdu.from_bytes(self.process(command.to_bytes()))

    def close(self) -> None:
        pass


def emulator_transport(state_dir: Path, profile: Path | None) -> ApduTransport:
    """The emulator in-process over ``state_dir`` (the same card ``gpchannel card serve`` runs: see
    :func:`gpchannel.emulator.app.open_card`); the first time, the card is built from ``profile``."""
    from gpchannel.emulator.app import open_card

    card, _ = open_card(state_dir, profile)
    return CallableTransport(card.process)


def open_transport(reader: str | None, emulator: Path | None, profile: Path | None = None) -> ApduTransport:
    """Open the card: the emulator in-process (see :func:`emulator_transport`) or a PC/SC reader
    (``gpchannel.io.transport.PcscTransport``)."""
    if emulator is not None:
        return emulator_transport(emulator, profile)
    if reader is None:
        reader = os.environ.get("GPCHANNEL_READER")
    try:
        transport_module = importlib.import_module("gpchannel.io.transport")
        pcsc = transport_module.PcscTransport
    except (ImportError, AttributeError):
        raise UnsupportedError("PC/SC support (gpchannel.io.transport) is not available in this build") from None
    try:
        return cast("ApduTransport", pcsc(reader or ""))
    except TransportError:
        raise
    except Exception as exc:  # pyscard raises its own exception types
        raise TransportError(f"cannot connect to a reader matching {reader or '(any)'!r}: {exc}") from None


def list_readers() -> list[str]:
    for name in ("gpchannel.io.transport", "gpchannel.io.pcsc"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        lister = getattr(module, "list_readers", None)
        if lister is not None:
            return [str(r) for r in lister()]
    raise UnsupportedError("PC/SC support (gpchannel.io) is not available in this build")
