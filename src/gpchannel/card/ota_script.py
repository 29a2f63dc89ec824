"""Remote APDUs run on the card (ETSI TS 102 226 5): the compact and expanded command scripts of an SCP80
command packet, executed through the same card core as everything else (GP 2.3.1 chapter 11 for RAM; the UICC
file system of card/filesystem.py for RFM; an application's applet for its own TAR).

A script stops at the first command whose SW1 is not 90, 91, 61, 62, 63 or 9F [M]; that command's own effects
are undone (the state is restored to just before it), the ones before it stay. The compact response is the
number of executed commands, the last SW and its data (5.1.2); the expanded one has an R-APDU TLV per command
(5.2.2). Script chaining is answered "not supported" (83 02) and immediate / error actions are ignored [U].
"""

from __future__ import annotations

import logging

from gpchannel.card import content, sd_data
from gpchannel.card.applets import AppletEnvironment
from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.filesystem import FileSession, FileSystem, default_filesystem, process_file_command
from gpchannel.card.loading import load_block
from gpchannel.card.ota_targets import TarEntry
from gpchannel.card.secure_channel_service import SecureChannelService
from gpchannel.card.state import Application, CardState
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import CardError, ConditionsNotSatisfied, DecodeError, GPChannelError, InsNotSupported
from gpchannel.gp.ins import Ins, sd_command
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.ota.remote_apdu import (
    BadFormat,
    CApdu,
    CommandScript,
    CompactResponse,
    RApdu,
    ResponseItem,
    ResponseScript,
    ScriptChaining,
    ScriptChainingResponse,
    decode_compact,
)

__all__ = ["run_script"]

log = logging.getLogger("gpchannel.card.ota")

_RAM_COMMANDS = frozenset(
    {Ins.GET_DATA, Ins.GET_DATA_ODD, Ins.GET_STATUS, Ins.INSTALL, Ins.LOAD, Ins.DELETE, Ins.SET_STATUS}
)
"""The Security Domain commands a script runs without a GP secure channel: PUT KEY and STORE DATA need a
session's keys (6D00 here)."""
_OK_SW1 = frozenset({0x90, 0x91, 0x61, 0x62, 0x63, 0x9F})
"""SW1 values after which a script goes on (TS 102 226 5.1.1: it stops at the first error) [M]."""


class _Executor:
    """Runs remote APDUs against one receiving entity. RFM starts at the MF with each packet; RAM runs as through
    the Security Domain (the packet being the secure channel) on ``channel``, which the caller keeps from one
    packet to the next so that an INSTALL [for load] and its LOAD blocks may come in several packets."""

    def __init__(self, ctx: CardContext, entry: TarEntry, channel: ChannelContext | None) -> None:
        self.ctx = ctx
        self.entry = entry
        self.channel = channel if channel is not None else ChannelContext(0)
        self.files: FileSystem | None = None
        self.file_session = FileSession()
        if entry.rfm:
            raw = ctx.state.files
            self.files = FileSystem.from_dict(raw) if raw else default_filesystem(_iccid_digits(ctx.state))

    def run(self, apdu: CommandApdu) -> ResponseApdu:
        snapshot = self.ctx.savepoint()
        try:
            if self.files is not None:
                response = process_file_command(self.files, self.file_session, apdu)
                self.ctx.state.files = self.files.to_dict()
            else:
                response = self._ram(apdu)
        except CardError as exc:
            response = ResponseApdu(sw=exc.sw)
        except (GPChannelError, ValueError):
            log.exception("remote APDU %s failed", apdu.header().hex().upper())
            response = ResponseApdu(sw=0x6F00)
        if response.sw >> 8 not in _OK_SW1:
            self.ctx.rollback(snapshot)
            if self.files is not None:
                raw = self.ctx.state.files
                self.files = FileSystem.from_dict(raw) if raw else default_filesystem(_iccid_digits(self.ctx.state))
        return response

    def _application(self, app: Application, apdu: CommandApdu) -> ResponseApdu:
        """An application reached by a TAR of its install parameters: its applet processes the APDU, with the
        environment the dispatcher gives it (TS 102 226 5: the remote APDUs are for the receiving entity)."""
        applet = self.ctx.applet(app.aid)
        if applet is None:
            raise InsNotSupported(f"application {app.aid.hex().upper()} has no applet class")
        service = SecureChannelService(self.ctx, self.channel, app.aid)
        applet.bind(AppletEnvironment(self.channel.number, app.install_parameters, self.ctx.random, service))
        return applet.process(apdu)

    def _ram(self, apdu: CommandApdu) -> ResponseApdu:
        """The Security Domain's commands (GP 2.3.1, Table 11-1) without a GP secure channel: the command packet's
        CC, counter and the TAR's MSL stand for it. PUT KEY and STORE DATA need a session's keys here: 6D00."""
        target = self.ctx.state.application(self.entry.target)
        if target is None:
            raise ConditionsNotSatisfied("the receiving entity is gone")
        if target.sd is None:
            return self._application(target, apdu)
        sd = target
        ins, lifecycle = apdu.ins, self.ctx.state.lifecycle
        row = sd_command(ins)
        interindustry = row is not None and row.interindustry
        if lifecycle is CardLifeCycle.TERMINATED and not interindustry:
            raise ConditionsNotSatisfied("the card is TERMINATED")
        if lifecycle is CardLifeCycle.CARD_LOCKED and row in _RAM_COMMANDS and row.changes_content:
            raise ConditionsNotSatisfied("the card is CARD_LOCKED: no card content changes (5.1.1.4)")
        if not apdu.cla & 0x80 and not interindustry:
            raise CardError(f"CLA {apdu.cla:02X}: GlobalPlatform commands use a proprietary class", sw=0x6E00)
        if interindustry:
            return sd_data.get_data(self.ctx, sd, apdu)
        if ins != Ins.GET_STATUS:
            self.channel.status_pending = None
        handlers = {
            Ins.GET_STATUS: lambda: sd_data.get_status(self.ctx, self.channel, sd, apdu),
            Ins.INSTALL: lambda: content.install(self.ctx, self.channel, sd, apdu),
            Ins.LOAD: lambda: load_block(self.ctx, self.channel, apdu),
            Ins.DELETE: lambda: content.delete(self.ctx, self.channel, sd, apdu),
            Ins.SET_STATUS: lambda: content.set_status(self.ctx, sd, apdu),
        }
        handler = handlers.get(row) if row is not None else None
        if handler is None:
            raise InsNotSupported(f"INS {ins:02X} is not processed over SCP80 by this emulator")
        return handler()


def _iccid_digits(state: CardState) -> str:
    digits = state.cin.hex().upper().rstrip("F")
    return digits if digits.isdigit() and 10 <= len(digits) <= 20 else "8988211000000000001"


def run_script(ctx: CardContext, entry: TarEntry, data: bytes, channel: ChannelContext | None = None) -> bytes:
    """Execute the remote command script and give the response data for the PoR (TS 102 226 5.1 / 5.2)."""
    executor = _Executor(ctx, entry, channel)
    if data[:1] in (b"\xaa", b"\xae"):
        return _run_expanded(executor, data)
    try:
        apdus = decode_compact(data)
    except DecodeError:
        return CompactResponse(0, ResponseApdu(sw=0x6700)).to_bytes()
    executed, last = 0, ResponseApdu(sw=0x9000)
    for apdu in apdus:
        last = executor.run(apdu)
        executed += 1
        if last.sw >> 8 not in _OK_SW1:
            break
    return CompactResponse(executed, last).to_bytes() if apdus else b""


def _run_expanded(executor: _Executor, data: bytes) -> bytes:
    try:
        script = CommandScript.from_bytes(data)
    except DecodeError:
        return ResponseScript((BadFormat(b"\x01"),), 0, data[0] == 0xAA).to_bytes()
    items: list[ResponseItem] = []
    executed = 0
    for item in script.items:
        if isinstance(item, ScriptChaining):
            items.append(ScriptChainingResponse(b"\x02"))  # script chaining not supported [M]
            break
        if not isinstance(item, CApdu):
            continue  # immediate / error actions: nothing to do in this emulator [U]
        response = executor.run(item.apdu)
        executed += 1
        items.append(RApdu(response))
        if response.sw >> 8 not in _OK_SW1:
            break
    return ResponseScript(tuple(items), executed if script.definite else None, script.definite).to_bytes()
