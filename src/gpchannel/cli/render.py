"""What the CLI prints: rich tables for people, JSON for programs, and the APDU trace."""

from __future__ import annotations

import datetime
import json
from typing import Any, TextIO

from rich.console import Console

from gpchannel.cli.output import Column, print_table
from gpchannel.codec.apdu import ResponseApdu
from gpchannel.codec.sw import describe
from gpchannel.gp.lifecycle import CardLifeCycle, application_state_name, sd_state_name
from gpchannel.host.card import CardInfo, RegistryItem, RegistryKind
from gpchannel.host.session import Exchange
from gpchannel.trace.ourformat import HEADER, format_exchange

__all__ = [
    "info_json",
    "lifecycle_name",
    "list_json",
    "print_info",
    "print_list",
    "response_json",
    "trace_printer",
    "trace_writer",
]


def _hex(value: bytes | None) -> str | None:
    return value.hex().upper() if value is not None else None


def lifecycle_name(item: RegistryItem) -> str:
    """The life cycle state's name for the entry's kind (GP 2.3.1, Tables 11-3 to 11-6)."""
    state = item.entry.lifecycle
    if item.kind is RegistryKind.ISD:
        try:
            return CardLifeCycle.from_byte(state).name
        except ValueError:
            return f"UNKNOWN({state:02X})"
    if item.kind is RegistryKind.LOAD_FILE:
        return "LOADED" if state == 0x01 else f"UNKNOWN({state:02X})"
    if item.kind is RegistryKind.SSD:
        return sd_state_name(state)
    return application_state_name(state)


def list_json(items: list[RegistryItem]) -> str:
    out: list[dict[str, Any]] = []
    for item in items:
        e = item.entry
        obj: dict[str, Any] = {
            "aid": e.aid.hex().upper(),
            "kind": item.kind.value,
            "lifecycle": lifecycle_name(item),
            "lifecycle_byte": f"{e.lifecycle:02X}",
            "privileges": e.privileges.to_bytes().hex().upper() if e.privileges is not None else "000000",
        }
        if e.privileges is not None:
            obj["privilege_names"] = e.privileges.names()
        if item.kind is RegistryKind.LOAD_FILE:
            obj["modules"] = [m.hex().upper() for m in e.modules]
            if e.version is not None:
                obj["version"] = e.version.hex().upper()
        else:
            if e.load_file_aid is not None:
                obj["load_file"] = e.load_file_aid.hex().upper()
        if e.sd_aid is not None:
            obj["security_domain"] = e.sd_aid.hex().upper()
        out.append(obj)
    return json.dumps(out, indent=2)


_LIST_COLUMNS = (Column("kind"), Column("AID", identifier=True), Column("life cycle"), Column("privileges / modules"))


def print_list(console: Console, items: list[RegistryItem]) -> None:
    """The registry as a table (cli/output.py: plain full values when piped, folded cells in a terminal)."""
    rows = []
    for item in items:
        e = item.entry
        extra = ", ".join(m.hex().upper() for m in e.modules) if item.kind is RegistryKind.LOAD_FILE else ""
        if e.privileges is not None:
            extra = f"{e.privileges.to_bytes().hex().upper()} {e.privileges}"
        rows.append((item.kind.value, e.aid.hex().upper(), lifecycle_name(item), extra))
    print_table(console, "Card content", _LIST_COLUMNS, rows)


def info_json(info: CardInfo, today: datetime.date) -> str:
    return json.dumps(_info_dict(info, today), indent=2)


def _info_dict(info: CardInfo, today: datetime.date) -> dict[str, Any]:
    out: dict[str, Any] = {"isd": _hex(info.isd_aid)}
    if info.protocol is not None:
        out["secure_channel"] = {
            "scp": f"{int(info.protocol):02X}",
            "i": f"{info.i_param:02X}" if info.i_param is not None else None,
            "kvn": f"{info.kvn:02X}" if info.kvn is not None else None,
            "key_diversification_data": _hex(info.key_diversification_data),
            "sequence_counter": _hex(info.sequence_counter),
        }
    if info.cplc is not None:
        cplc: dict[str, Any] = dict(info.cplc.as_dict())
        cplc["dates"] = {k: v.isoformat() if v else None for k, v in info.cplc.dates(today).items()}
        out["cplc"] = cplc
    out["iin"] = _hex(info.iin)
    out["cin"] = _hex(info.cin)
    if info.card_data is not None:
        out["card_recognition_data"] = {
            "gp_version": info.card_data.gp_version,
            "scp": [{"scp": f"{p:02X}", "i": f"{i:02X}"} for p, i in info.card_data.scps],
            "card_configuration": info.card_data.card_configuration,
            "chip_details": info.card_data.chip_details,
            "javacard": info.card_data.javacard_version,
        }
    if info.capabilities is not None:
        c = info.capabilities
        out["card_capabilities"] = {
            "scp": [{"scp": f"{s.protocol:02X}", "i": [f"{b:02X}" for b in s.options]} for s in c.scps],
            "ssd_privileges": _hex(c.ssd_privileges),
            "application_privileges": _hex(c.application_privileges),
            "lfdbh_algorithms": _hex(c.lfdbh_algorithms),
        }
    out["key_information"] = [
        {
            "key_id": k.key_id,
            "kvn": f"{k.kvn:02X}",
            "components": [{"type": f"{c.key_type:02X}", "length": c.length} for c in k.components],
        }
        for k in info.key_information
    ]
    if info.resources is not None:
        out["extended_card_resources"] = {
            "installed_applications": info.resources.installed_applications,
            "free_non_volatile_memory": info.resources.free_non_volatile_memory,
            "free_volatile_memory": info.resources.free_volatile_memory,
        }
    if info.problems:
        out["problems"] = list(info.problems)
    return out


def print_info(console: Console, info: CardInfo, today: datetime.date) -> None:
    data = _info_dict(info, today)
    rows: list[tuple[str, str]] = []

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, list):
            rows.append((prefix, json.dumps(value) if value else "-"))
        else:
            rows.append((prefix, "-" if value is None else str(value)))

    add("", data)
    print_table(console, "Card information", (Column("item"), Column("value", identifier=True)), rows)


def response_json(command_hex: str, response: ResponseApdu) -> dict[str, str]:
    return {
        "command": command_hex,
        "data": response.data.hex().upper(),
        "sw": f"{response.sw:04X}",
        "meaning": describe(response.sw),
    }


def _trace_lines(exchange: Exchange) -> list[str]:
    """One exchange in gpchannel's trace format (:mod:`gpchannel.trace.ourformat`): ``C:`` / ``R:`` as on the
    wire, and ``plain C:`` / ``plain R:`` beside them where the secure channel changed the bytes."""
    plain_command = exchange.plain_command if exchange.plain_command != exchange.command else None
    plain_response = exchange.plain_response if exchange.plain_response != exchange.response else None
    return format_exchange(exchange.command, exchange.response, plain_command, plain_response)


def trace_printer(console: Console) -> Any:
    """A trace hook printing each exchange in gpchannel's trace format (``gpchannel trace decode`` reads it back):
    the wire bytes and, when secured, the plain ones beside them. The header line comes before the first one."""
    started = False

    def show(exchange: Exchange) -> None:
        nonlocal started
        if not started:
            console.print(HEADER, markup=False, highlight=False, soft_wrap=True)
            started = True
        for line in _trace_lines(exchange):
            console.print(line, markup=False, highlight=False, soft_wrap=True)

    return show


def trace_writer(stream: TextIO) -> Any:
    """A trace hook writing the same lines as :func:`trace_printer` to a text file (flushed after each exchange)."""
    started = False

    def write(exchange: Exchange) -> None:
        nonlocal started
        lines = _trace_lines(exchange)
        if not started:
            lines.insert(0, HEADER)
            started = True
        stream.write("\n".join(lines) + "\n")
        stream.flush()

    return write
