"""Card profile (TOML, ../shared/docs/profile.md) -> the initial CardState.

Every key is checked; an unknown key, a malformed value or an inconsistency (a key type the protocol cannot
use, an application whose Security Domain does not exist, two key sets with one KVN, ...) raises
:class:`~gpchannel.errors.ProfileError` naming the key and what was expected, before any state exists.

Defaults: the card life cycle SECURED; the ATR of profile.md; a CPLC generated deterministically from the ICCID
(GP 2.3.1 H.5 layout, 42 bytes); key diversification data = CPLC IC fabricator and IC type (bytes 0-3) then
IC fabrication date, IC serial number (bytes 10-15); ISD privileges 9EFE80.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from typing import Any

from gpchannel.card.applets import AppletRegistry
from gpchannel.card.builtin_applets import default_registry
from gpchannel.card.profile_ota import check_ota, check_scp81
from gpchannel.card.profile_schema import check_shape, hex_field
from gpchannel.card.scp10_domain import SCP10, material_from_profile
from gpchannel.card.scp11_profile import scp11_from_profile
from gpchannel.card.state import Application, CardState, KeySet, SdConfig
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import DecodeError, ProfileError
from gpchannel.gp.lifecycle import APPLICATION_INSTALLED, APPLICATION_SELECTABLE, CardLifeCycle, lock
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.scp.common import ScpProtocol
from gpchannel.scp.scp02 import I_PARAMS

__all__ = [
    "DEFAULT_ATR",
    "DEFAULT_ISD_PRIVILEGES",
    "generate_cplc",
    "load_profile",
    "profile_differences",
    "profile_from_dict",
]

DEFAULT_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
DEFAULT_ISD_PRIVILEGES = bytes.fromhex("9EFE80")
SCP11 = ScpProtocol.SCP11
_SCP_I_VALUES = {
    0x01: frozenset({0x05, 0x15}),
    0x02: I_PARAMS,  # the options of GP 2.2.1 E.1.1 we implement, explicit and implicit, each with or without b6
    0x03: frozenset({0x00, 0x10, 0x20, 0x30, 0x60, 0x70, 0x01, 0x11, 0x21, 0x31, 0x61, 0x71}),
    SCP10: frozenset({0x01, 0x02}),  # GP 2.2.1 Table F-1: the default option; [isd.scp10] options lists all
    SCP11: frozenset(range(256)),  # Amendment F's i coding is not public: reported in recognition data, not used
}


def _fail(key: str, expected: str, got: object = None) -> ProfileError:
    suffix = "" if got is None else f", got {got!r}"
    return ProfileError(f"profile key {key}: expected {expected}{suffix}")


def _table(raw: object, key: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(key, "a table", raw)
    return raw


def _aid(value: object, key: str) -> bytes:
    return hex_field(value, key, range(5, 17), "an AID of 5 to 16")


def _byte(value: object, key: str) -> int:
    """A byte written as TOML int or as a hex string (``"70"``)."""
    if isinstance(value, bool):
        raise _fail(key, "a byte", value)
    if isinstance(value, int):
        out = value
    elif isinstance(value, str):
        try:
            out = int(value.strip().removeprefix("0x"), 16)
        except ValueError:
            raise _fail(key, 'a hex byte such as "70"', value) from None
    else:
        raise _fail(key, "a byte", value)
    if not 0 <= out <= 0xFF:
        raise _fail(key, "a byte (00..FF)", value)
    return out


def _bcd(digits: str) -> bytes:
    """Packed BCD, padded with F (as IIN/CIN are commonly coded)."""
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


def generate_cplc(seed: str) -> bytes:
    """A deterministic 42-byte CPLC (GP 2.3.1 H.5 field layout) whose serial number comes from ``seed``."""
    serial = hashlib.sha256(seed.encode()).digest()[:4]
    return (
        bytes.fromhex("4790D3214791000000006100")  # fabricator, type, OS id/date/level, fab date
        + serial
        + bytes.fromhex("0001000000000000000000000000000000000000000000000000")
    )


def _keyset(raw: object, key: str, scp: int) -> KeySet:
    table = _table(raw, key)
    if "kvn" not in table:
        raise _fail(f"{key}.kvn", "a key version number 1..255 (0 means 'first available' in INITIALIZE UPDATE)")
    kvn = table["kvn"]
    if not isinstance(kvn, int) or isinstance(kvn, bool) or not 1 <= kvn <= 0xFF:
        raise _fail(f"{key}.kvn", "an integer 1..255", kvn)
    default_type = "aes" if scp in (0x03, 0x11) else "des3"
    kind = table.get("type", default_type)
    if kind not in ("aes", "des3"):
        raise _fail(f"{key}.type", '"aes" or "des3"', kind)
    key_type = KeyType.AES if kind == "aes" else KeyType.DES3
    if (scp in (0x03, 0x11)) != (key_type is KeyType.AES):
        raise _fail(f"{key}.type", f'"{default_type}" for SCP{scp:02X}', kind)
    values = {}
    for name in ("enc", "mac", "dek"):
        if name not in table:
            raise _fail(f"{key}.{name}", f"the {name.upper()} key in hex")
        values[name] = hex_field(table[name], f"{key}.{name}", key_type.allowed_lengths)
    StaticKeys(values["enc"], values["mac"], values["dek"], kvn, key_type)
    return KeySet(kvn, key_type, values["enc"], values["mac"], values["dek"])


def _card_lifecycle(value: object) -> CardLifeCycle:
    if not isinstance(value, str):
        raise _fail("card.lifecycle", "a string", value)
    try:
        return CardLifeCycle.from_name(value)
    except ValueError:
        raise _fail("card.lifecycle", "one of " + " | ".join(c.name for c in CardLifeCycle), value) from None


def _app_lifecycle(value: object, key: str) -> int:
    names = {"INSTALLED": APPLICATION_INSTALLED, "SELECTABLE": APPLICATION_SELECTABLE}
    if isinstance(value, str) and value.upper() in names:
        return names[value.upper()]
    if isinstance(value, str) and value.upper() == "LOCKED":
        return lock(APPLICATION_SELECTABLE)
    state = _byte(value, key)
    if state & 0x03 != 0x03:
        raise _fail(key, "INSTALLED | SELECTABLE | LOCKED or a Table 11-4 byte (b2 b1 = 11)", value)
    return state


def profile_from_dict(
    raw: dict[str, Any], applets: AppletRegistry | None = None, resolve: Callable[[str], bytes] | None = None
) -> CardState:
    """Build the initial state from a parsed profile; raises ProfileError. ``resolve`` reads a file named in the
    profile (relative to it: the SCP10 PEM files); without it only inline PEM is accepted."""
    applets = applets or default_registry()
    check_shape(raw)  # every key and its TOML type (profile_schema.FIELDS); the checks below read values
    card = _table(raw.get("card", {}), "card")
    if "isd" not in raw:
        raise _fail("isd", "an [isd] table with aid, scp, i and at least one [[isd.keysets]]")
    isd_table = _table(raw["isd"], "isd")

    iccid = card.get("iccid", "")
    if not isinstance(iccid, str) or (iccid and not (iccid.isascii() and iccid.isdigit() and 10 <= len(iccid) <= 20)):
        raise _fail("card.iccid", "10 to 20 decimal digits", iccid)
    atr = hex_field(card["atr"], "card.atr", range(2, 34), "an ATR of 2 to 33") if "atr" in card else DEFAULT_ATR
    cplc = hex_field(card["cplc"], "card.cplc", (42,)) if "cplc" in card else generate_cplc(iccid or "gpchannel")
    lifecycle = _card_lifecycle(card.get("lifecycle", "SECURED"))
    iin = hex_field(card["iin"], "card.iin") if "iin" in card else (_bcd(iccid[:6]) if iccid else b"")
    cin = hex_field(card["cin"], "card.cin") if "cin" in card else (_bcd(iccid) if iccid else b"")
    kdd = hex_field(card["kdd"], "card.kdd", (10,)) if "kdd" in card else cplc[0:4] + cplc[10:16]

    for name in ("aid", "scp", "i"):
        if name not in isd_table:
            raise _fail(f"isd.{name}", "a value (see profile.md)")
    isd_aid = _aid(isd_table["aid"], "isd.aid")
    scp = _byte(isd_table["scp"], "isd.scp")
    if scp not in _SCP_I_VALUES:
        raise _fail("isd.scp", '"01", "02", "03", "10" or "11"', isd_table["scp"])
    i_param = _byte(isd_table["i"], "isd.i")
    if i_param not in _SCP_I_VALUES[scp]:
        allowed = " | ".join(f"{i:02X}" for i in sorted(_SCP_I_VALUES[scp]))
        raise _fail("isd.i", f"an i parameter of SCP{scp:02X}: {allowed}", isd_table["i"])
    counter = isd_table.get("sequence_counter", 0)
    limit = 0xFFFF if scp == 0x02 else 0xFFFFFF
    if not isinstance(counter, int) or isinstance(counter, bool) or not 0 <= counter <= limit:
        raise _fail("isd.sequence_counter", f"an integer 0..{limit}", counter)
    raw_keysets = isd_table.get("keysets", [])
    if not isinstance(raw_keysets, list) or (not raw_keysets and scp not in (SCP10, SCP11)):
        raise _fail("isd.keysets", "at least one [[isd.keysets]] table")
    keysets = [_keyset(k, f"isd.keysets[{n}]", scp) for n, k in enumerate(raw_keysets)]
    kvns = [k.kvn for k in keysets]
    if len(set(kvns)) != len(kvns):
        raise _fail("isd.keysets", "distinct kvn values", kvns)
    for k in keysets:
        k.sequence_counter = counter
    privileges_raw = hex_field(isd_table.get("privileges", DEFAULT_ISD_PRIVILEGES.hex()), "isd.privileges", (3,))
    try:
        isd_privileges = Privileges.from_bytes(privileges_raw)
    except DecodeError as exc:
        raise _fail("isd.privileges", "valid privileges (GP 2.3.1 11.1.2)", str(exc)) from None
    if Privilege.SECURITY_DOMAIN not in isd_privileges:
        raise _fail("isd.privileges", "the Security Domain privilege (b8 of byte 1)", privileges_raw.hex().upper())
    sd_config = SdConfig(scp, i_param, keysets)
    if scp == SCP10:
        if "scp10" not in isd_table:
            raise _fail("isd.scp10", "an [isd.scp10] table with private_key, certificate and trust_anchor")
        sd_config.scp10 = material_from_profile(_table(isd_table["scp10"], "isd.scp10"), i_param, resolve)
    elif "scp10" in isd_table:
        raise _fail("isd.scp10", 'no [isd.scp10] table unless isd.scp is "10"')
    if "scp11" in isd_table:  # SCP11 beside the ISD's protocol, or its only one (card/scp11_profile.py)
        sd_config.scp11 = scp11_from_profile(_table(isd_table["scp11"], "isd.scp11"), resolve)
    if scp == SCP11 and (keysets or sd_config.scp11 is None or not sd_config.scp11.keys):
        raise _fail("isd.scp11", 'with isd.scp = "11": SCP11 keys ([[isd.scp11.keys]]) and no [[isd.keysets]]')
    style = isd_table.get("getdata_style", "gp")
    if style not in ("gp", "yubikey"):
        raise _fail("isd.getdata_style", '"gp" or "yubikey"', style)
    sd_config.getdata_style = style
    isd = Application(isd_aid, int(lifecycle), isd_privileges, isd_aid, applet="", sd=sd_config)
    state = CardState(lifecycle, isd_aid, atr, cplc, iin, cin, kdd, [isd])

    raw_apps = raw.get("applications", [])
    if not isinstance(raw_apps, list):
        raise _fail("applications", "an array of [[applications]] tables", raw_apps)
    for n, item in enumerate(raw_apps):
        key = f"applications[{n}]"
        table = _table(item, key)
        if "aid" not in table or "kind" not in table:
            raise _fail(key, "aid and kind")
        aid = _aid(table["aid"], f"{key}.aid")
        if state.application(aid) is not None:
            raise _fail(f"{key}.aid", "an AID not used by another application or the ISD", table["aid"])
        kind = table["kind"]
        if not isinstance(kind, str) or kind not in applets:
            raise _fail(f"{key}.kind", f"a registered applet class ({', '.join(applets.names())})", kind)
        sd_aid = _aid(table.get("sd", isd_table["aid"]), f"{key}.sd")
        sd = state.application(sd_aid)
        if sd is None or sd.sd is None:
            raise _fail(f"{key}.sd", "the AID of the ISD or of a Security Domain defined before it", table.get("sd"))
        privileges_hex = hex_field(table.get("privileges", "00"), f"{key}.privileges", (1, 3))
        try:
            privileges = Privileges.from_bytes(privileges_hex)
        except DecodeError as exc:
            raise _fail(f"{key}.privileges", "valid privileges (GP 2.3.1 11.1.2)", str(exc)) from None
        if Privilege.SECURITY_DOMAIN in privileges:
            raise _fail(f"{key}.privileges", "an application's privileges (Security Domains come with the ISD)")
        parameters = hex_field(table.get("parameters", ""), f"{key}.parameters")
        state.applications.append(
            Application(
                aid,
                _app_lifecycle(table.get("lifecycle", "SELECTABLE"), f"{key}.lifecycle"),
                privileges,
                sd_aid,
                applet=kind,
                install_parameters=parameters,
            )
        )
    if "ota" in raw:
        state.ota["ota"] = check_ota(raw["ota"])
    if "scp81" in raw:
        state.ota["scp81"] = check_scp81(raw["scp81"])
    return state


def load_profile(
    text: str | bytes, applets: AppletRegistry | None = None, resolve: Callable[[str], bytes] | None = None
) -> CardState:
    """Parse TOML text and build the initial state; raises ProfileError (TOML syntax errors included).
    ``resolve`` reads files the profile names (see :func:`profile_from_dict`)."""
    try:
        raw = tomllib.loads(text.decode() if isinstance(text, bytes) else text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"the profile is not valid TOML: {exc}") from None
    return profile_from_dict(raw, applets, resolve)


def profile_differences(state: CardState, profile: CardState) -> list[str]:
    """What a state directory holds that differs from the profile it was built from (the state wins; the
    emulator reports these). Keys are compared and shown by their check values only."""
    out: list[str] = []
    if state.lifecycle is not profile.lifecycle:
        out.append(f"card life cycle: {state.lifecycle.name} (profile: {profile.lifecycle.name})")
    if state.isd_aid != profile.isd_aid:
        out.append(f"ISD AID: {state.isd_aid.hex().upper()} (profile: {profile.isd_aid.hex().upper()})")
    ours, theirs = state.isd.sd, profile.isd.sd
    if ours is not None and theirs is not None:
        if (ours.scp, ours.i_param) != (theirs.scp, theirs.i_param):
            now = f"SCP{ours.scp:02X} i={ours.i_param:02X}"
            out.append(f"protocol: {now} (profile: SCP{theirs.scp:02X} i={theirs.i_param:02X})")
        kcvs = {k.kvn: b"".join(k.static_keys().kcvs()).hex().upper() for k in ours.keysets}
        wanted = {k.kvn: b"".join(k.static_keys().kcvs()).hex().upper() for k in theirs.keysets}
        for kvn in sorted(set(kcvs) | set(wanted)):
            if kcvs.get(kvn) != wanted.get(kvn):
                out.append(f"key set {kvn:02X}: KCVs {kcvs.get(kvn, 'absent')} (profile: {wanted.get(kvn, 'absent')})")
    apps = {a.aid for a in state.applications}
    wanted_apps = {a.aid for a in profile.applications}
    for aid in sorted(apps - wanted_apps):
        out.append(f"application {aid.hex().upper()} is installed but not in the profile")
    for aid in sorted(wanted_apps - apps):
        out.append(f"application {aid.hex().upper()} of the profile was deleted")
    return out
