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
from gpchannel.errors import TransportError, UnsupportedError
from gpchannel.host.session import ApduTransport
from gpchannel.scp.common import InitializeUpdateResponse, KeyResolver, ScpProtocol

__all__ = [
    "DEFAULT_KEY",
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
class Profile:
    """The parts of a card profile (../shared/docs/profile.md) the host tool uses."""

    isd_aid: bytes | None = None
    scp: ScpProtocol | None = None
    i_param: int | None = None
    kvn: int | None = None
    keys: KeyMaterial | None = None


def _hex_value(table: dict[str, Any], key: str, where: str) -> bytes:
    value = table.get(key)
    if not isinstance(value, str):
        raise ValueError(f"profile {where}.{key}: expected a hex string")
    try:
        return bytes.fromhex(value.replace(" ", ""))
    except ValueError:
        raise ValueError(f"profile {where}.{key}: {value!r} is not hex") from None


def load_profile(path: Path) -> Profile:
    """Read the ISD part of a card profile; ValueError naming the key on a bad value."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"profile {path}: {exc}") from None
    isd = check_shape(data).get("isd", {})  # every key's TOML type (ProfileError, a ValueError, names it)
    aid = _hex_value(isd, "aid", "isd") if "aid" in isd else None
    scp = None
    if "scp" in isd:
        try:
            scp = ScpProtocol(int(str(isd["scp"]), 16))
        except ValueError:
            raise ValueError(f"profile isd.scp: {isd['scp']!r} is not 01, 02, 03 or 10") from None
    i_param = int(str(isd["i"]), 16) if "i" in isd else None
    keysets = isd.get("keysets", [])
    keys = None
    kvn = None
    if keysets:
        first = keysets[0]
        if not isinstance(first, dict):
            raise ValueError("profile isd.keysets[0]: expected a table")
        keys = KeyMaterial(
            _hex_value(first, "enc", "isd.keysets[0]"),
            _hex_value(first, "mac", "isd.keysets[0]"),
            _hex_value(first, "dek", "isd.keysets[0]"),
            source=f"profile {path.name}",
        )
        kvn = first.get("kvn")
        if not isinstance(kvn, int) or not 0 <= kvn <= 0xFF:
            raise ValueError("profile isd.keysets[0].kvn: expected an integer 0..255")
    return Profile(aid, scp, i_param, kvn, keys)


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
