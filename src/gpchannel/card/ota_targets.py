"""Receiving entities and key sets of the card's SCP80 side (ETSI TS 102 225 / 226; ota-notes A.8, A.9, E):
which TAR reaches what, with which Minimum Security Level, and the key sets bound to their algorithms, read from
``CardState.ota`` (the profile's ``[[ota.tars]]`` and ``[[ota.keysets]]``) and the applications' install
parameters. The counters live beside the keys and are persisted with the rest of the state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpchannel.card.state import CardState
from gpchannel.codec.tlv import parse_pairs
from gpchannel.errors import DecodeError
from gpchannel.ota.algorithms import KIC_ALGORITHMS, KID_ALGORITHMS, Scp80KeySet

__all__ = [
    "DEFAULT_MSL",
    "RAM_ISD_TAR",
    "RFM_TAR",
    "TarEntry",
    "keyset_for",
    "store_counter",
    "stored_counter",
    "tar_entry",
    "toolkit_parameters",
]

RAM_ISD_TAR = bytes.fromhex("000000")
RFM_TAR = bytes.fromhex("B00001")
DEFAULT_MSL = 0x16
"""CC, ciphering and a strictly higher counter (ota-notes E.3): the MSL of a TAR whose profile entry has none."""


@dataclass(frozen=True, slots=True)
class TarEntry:
    """A receiving entity: ``target`` is a Security Domain's AID (RAM), or empty for RFM."""

    tar: bytes
    target: bytes
    msl: int = DEFAULT_MSL
    allow_single_des: bool = False

    @property
    def rfm(self) -> bool:
        return not self.target


def _ota_section(state: CardState) -> dict[str, Any]:
    section = state.ota.get("ota", {})
    return section if isinstance(section, dict) else {}


def tar_entry(state: CardState, tar: bytes) -> TarEntry | None:
    """The receiving entity of ``tar``: the profile's ``[[ota.tars]]`` first (no ``target``: the ISD for 000000,
    RFM otherwise, ota-notes A.8), then the built-ins (ISD RAM 000000, RFM B00001)."""
    for raw in _ota_section(state).get("tars", []):
        if bytes.fromhex(str(raw.get("tar", ""))) != tar:
            continue
        target = bytes.fromhex(str(raw.get("target", "")))
        if not target:
            target = state.isd_aid if tar == RAM_ISD_TAR else b""
        msl = bytes.fromhex(str(raw["msl"]))[0] if raw.get("msl") else DEFAULT_MSL
        return TarEntry(tar, target, msl, bool(raw.get("allow_single_des", False)))
    for app in state.applications:
        toolkit = toolkit_parameters(app.system_parameters)
        if toolkit is not None and tar in toolkit[1]:
            msl = toolkit[0][0] if toolkit[0] and toolkit[0][0] <= 0x1F else DEFAULT_MSL
            return TarEntry(tar, app.aid, msl)
    if tar == RAM_ISD_TAR:
        return TarEntry(tar, state.isd_aid)
    if tar == RFM_TAR:
        return TarEntry(tar, b"")
    return None


def toolkit_parameters(system_parameters: bytes) -> tuple[bytes, list[bytes]] | None:
    """The MSL and the TAR values of the UICC Toolkit Application specific parameters (tag 80 inside the EA
    UICC System Specific Parameters, ETSI TS 102 226 8.2.1.3.2.2): priority, timers, menu text length, menu
    entries n, n x (position, identifier), channels, MSL (length-prefixed), TAR values (length-prefixed, 3 bytes
    each), ... None when absent or malformed (an application with unreadable parameters has no TAR)."""
    try:
        items = parse_pairs(system_parameters) if system_parameters else []
    except DecodeError:
        return None
    value = next((v for t, v in items if t == 0x80), None)
    if value is None or len(value) < 4:
        return None
    at = 4 + 2 * value[3] + 1
    if at >= len(value):
        return None
    msl_end = at + 1 + value[at]
    if msl_end >= len(value):
        return None
    msl = value[at + 1 : msl_end]
    tar_end = msl_end + 1 + value[msl_end]
    if value[msl_end] % 3 or tar_end > len(value):
        return None
    tars = [value[i : i + 3] for i in range(msl_end + 1, tar_end, 3)]
    return msl, tars


def keyset_for(state: CardState, kvn: int, *, allow_single_des: bool = False) -> tuple[int, Scp80KeySet] | None:
    """The index in ``[[ota.keysets]]`` and the :class:`Scp80KeySet` (bound to its algorithms) of ``kvn``."""
    for index, raw in enumerate(_ota_section(state).get("keysets", [])):
        if raw.get("kvn") != kvn:
            continue
        keyset = Scp80KeySet(
            bytes.fromhex(str(raw["kic"])),
            bytes.fromhex(str(raw["kid"])),
            cipher=KIC_ALGORITHMS[str(raw["kic_algorithm"])],
            mac=KID_ALGORITHMS[str(raw["kid_algorithm"])],
            allow_single_des=allow_single_des,
        )
        return index, keyset
    return None


def stored_counter(state: CardState, index: int) -> int:
    """The counter of the key set at ``index`` of ``[[ota.keysets]]`` (0 for no key set, index -1)."""
    if index < 0:
        return 0
    value = _ota_section(state)["keysets"][index].get("counter", 0)
    return int(value)


def store_counter(state: CardState, index: int, value: int) -> None:
    """Keep ``value`` in the state (persisted with it when the ENVELOPE completes)."""
    _ota_section(state)["keysets"][index]["counter"] = value
