"""The remote-management sections of a card profile (../shared/docs/profile.md): ``[[ota.keysets]]`` (SCP80
key sets, ETSI TS 102 225), ``[[ota.tars]]`` (TAR -> receiving entity) and ``[scp81]`` (GP Amendment B,
PSK-TLS). The emulator core keeps them in ``CardState.ota`` for the OTA side; here they are only checked, so a
profile with a typo is refused with the key named, as the rest of the profile is."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from gpchannel.card.profile_schema import check_shape, hex_field
from gpchannel.errors import ProfileError
from gpchannel.ota.algorithms import KIC_ALGORITHMS, KID_ALGORITHMS, key_lengths

__all__ = ["check_ota", "check_scp81", "scp81_psk", "server_port"]


def _fail(key: str, expected: str, got: object = None) -> ProfileError:
    suffix = "" if got is None else f", got {got!r}"
    return ProfileError(f"profile key {key}: expected {expected}{suffix}")


def _table(raw: object, key: str, allowed: Collection[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(key, "a table", raw)
    for name in raw:
        if name not in allowed:
            raise ProfileError(f"profile key {key}.{name}: unknown key; expected one of {', '.join(sorted(allowed))}")
    return raw


def _required_hex(raw: dict[str, Any], name: str, key: str, sizes: Collection[int] | None = None) -> bytes:
    if name not in raw:
        raise _fail(f"{key}.{name}", "a value")
    return hex_field(raw[name], f"{key}.{name}", sizes)


def _int(raw: dict[str, Any], name: str, key: str, lo: int, hi: int, default: int | None = None) -> int:
    value = raw.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _fail(f"{key}.{name}", f"an integer {lo}..{hi}", value)
    return value


def _choice(raw: dict[str, Any], name: str, key: str, choices: Collection[str]) -> str:
    value = raw.get(name)
    if value not in choices:
        raise _fail(f"{key}.{name}", " | ".join(f'"{c}"' for c in choices), value)
    return str(value)


def check_ota(raw: object) -> dict[str, Any]:
    """Validate the ``[ota]`` section; returns it unchanged."""
    ota = check_shape(raw, "ota")
    keysets = ota.get("keysets", [])
    if not isinstance(keysets, list):
        raise _fail("ota.keysets", "an array of [[ota.keysets]] tables", keysets)
    kvns: list[int] = []
    for n, item in enumerate(keysets):
        key = f"ota.keysets[{n}]"
        table = _table(item, key, {"kvn", "kic", "kic_algorithm", "kid", "kid_algorithm", "counter"})
        kvns.append(_int(table, "kvn", key, 1, 15))
        kic_algorithm = _choice(table, "kic_algorithm", key, KIC_ALGORITHMS)
        _required_hex(table, "kic", key, key_lengths(KIC_ALGORITHMS[kic_algorithm]))
        kid_algorithm = _choice(table, "kid_algorithm", key, KID_ALGORITHMS)
        _required_hex(table, "kid", key, key_lengths(KID_ALGORITHMS[kid_algorithm]))
        _int(table, "counter", key, 0, (1 << 40) - 1, default=0)
    if len(set(kvns)) != len(kvns):
        raise _fail("ota.keysets", "distinct kvn values", kvns)
    tars = ota.get("tars", [])
    if not isinstance(tars, list):
        raise _fail("ota.tars", "an array of [[ota.tars]] tables", tars)
    for n, item in enumerate(tars):
        key = f"ota.tars[{n}]"
        table = _table(item, key, {"tar", "target", "msl", "allow_single_des"})
        tar = _required_hex(table, "tar", key, (3,))
        if "target" in table or not (tar == b"\x00\x00\x00" or tar[0] == 0xB0):  # ISD RAM; RFM (B0xxxx)
            _required_hex(table, "target", key, range(5, 17))
        if "msl" in table and _required_hex(table, "msl", key, (1, 2))[0] > 0x1F:
            raise _fail(f"{key}.msl", "a first octet coded like SPI1 (00..1F)", table["msl"])
        if not isinstance(table.get("allow_single_des", False), bool):
            raise _fail(f"{key}.allow_single_des", "true or false", table["allow_single_des"])
    return ota


def check_scp81(raw: object) -> dict[str, Any]:
    """Validate the ``[scp81]`` section; returns it unchanged."""
    key = "scp81"
    table = check_shape(raw, key)
    identity = table.get("psk_identity")
    if not isinstance(identity, str) or not identity:
        raise _fail(f"{key}.psk_identity", "a non-empty string", identity)
    scp81_psk(table)
    server = table.get("server")
    host, _, port = server.rpartition(":") if isinstance(server, str) else ("", "", "")
    if not host or server_port(port) is None:
        raise _fail(f"{key}.server", '"host:port"', server)
    uri = table.get("uri", "/")
    if not isinstance(uri, str) or not uri.startswith("/"):
        raise _fail(f"{key}.uri", "a path starting with /", uri)
    agent = table.get("agent_id", "")
    if not isinstance(agent, str):
        raise _fail(f"{key}.agent_id", "a string", agent)
    if "retries" in table:  # the card agent's retry policy when the trigger gives none (emulator/agent.py)
        _int(table, "retries", key, 0, 0xFFFF)
    if "retry_delay" in table:
        _int(table, "retry_delay", key, 0, 86400)
    return table


def scp81_psk(table: dict[str, Any]) -> bytes:
    """The ``[scp81] psk`` of a profile table (hex, spaces anywhere allowed; 1 to 64 bytes): the one parser the
    profile check, the card agent and the server's ``--profile`` use. ProfileError naming the key otherwise."""
    return _required_hex(table, "psk", "scp81", range(1, 65))


def server_port(text: str) -> int | None:
    """A TCP port 1..65535 written in ASCII decimal digits (``str.isdigit`` also takes other scripts' digits and
    superscripts, which ``int`` refuses or reads differently), or None."""
    if not 1 <= len(text) <= 5 or not text.isascii() or not text.isdigit():
        return None
    port = int(text)
    return port if 0 < port < 65536 else None
