"""The card's front door: C-APDU bytes in, R-APDU bytes out (ISO/IEC 7816-4; GP Card Specification 2.3.1,
chapter 11).

:class:`Card` is the one boundary where a ``CardError`` becomes its status word, and where anything unexpected
becomes 6F00 (logged with its traceback, never a crash). It owns the logical channels (MANAGE CHANNEL, channel
bits in CLA; 11.7), each with its selected application and its own secure channel session, processes SELECT
[by name] for the OPEN (11.9), and hands every other command to the selected application: a Security Domain
(security_domain.py) or a Python applet (applets.py).

Persistence (card/state_tracker.py): every write to the state is tracked, so a command that changed nothing costs
nothing. A change that comes with a success (9000, 62xx, 63xx) is committed through the StateStore *before* the
response is returned, as a delta of the changed units when the store takes one (``commit_delta``); a change that
comes with an error status, or an exception, is rolled back to the committed state, except for the sequence
counters that moved (GP 2.2.1 E.1.2). If the commit fails, the live state returns to the committed one and the
answer is 6581 (memory failure). With the debug check on (``check_state``, or GPCHANNEL_STATE_CHECK=1), every
command ends by comparing the full serialisation with the committed one.

GET RESPONSE (T=0-style clients): when the response data exceed what the command's Le allows (or 256 bytes
for a short command), the first part comes with ``61 xx`` and the rest is fetched with GET RESPONSE (C0).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from gpchannel.card.applets import Applet, AppletEnvironment, AppletRegistry
from gpchannel.card.builtin_applets import default_registry
from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.ota_handler import OtaHandler, is_ota_command
from gpchannel.card.registry import find_for_select
from gpchannel.card.sd_data import fci
from gpchannel.card.secure_channel_service import SecureChannelService
from gpchannel.card.security_domain import (
    keep_sequence_counters,
    process_security_domain,
    sequence_counters,
    stepped_domain,
)
from gpchannel.card.state import Application, CardState, StateStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_channel, cla_has_secure_messaging
from gpchannel.errors import (
    CardError,
    ClaNotSupported,
    DecodeError,
    FileNotFound,
    FunctionNotSupported,
    IncorrectP1P2,
    InsNotSupported,
    WrongLength,
)
from gpchannel.gp.ins import redacts, sd_command
from gpchannel.gp.lifecycle import CardLifeCycle, is_selectable
from gpchannel.gp.privileges import Privilege
from gpchannel.scp.common import RandomSource

__all__ = ["Card", "TraceSink"]

TraceSink = Callable[[str], None]
"""Receives one line per APDU (and the plain command/response inside a secure channel). Never keys."""

_SW_CHANNEL_NOT_SUPPORTED = 0x6881
_SW_SM_NOT_SUPPORTED = 0x6882
_SW_CHAINING_NOT_SUPPORTED = 0x6884
_SW_CHANNEL_CLOSED = 0x6200
_MAX_CHAINED = 65535
_SW_MEMORY_FAILURE = 0x6581
_SW_CARD_LOCKED = 0x6283


def _shown(raw: bytes) -> str:
    """An APDU for logs and traces: the data of a command that may carry keys (PUT KEY, STORE DATA: the
    ``redacted`` column of :class:`~gpchannel.gp.ins.Ins`) is replaced by its length, as in the plain trace."""
    if len(raw) > 5 and redacts(raw[1]):
        return f"{raw[:4].hex().upper()} <{len(raw) - 4} bytes of key data>"
    return raw.hex().upper()


def _read_only(ins: int) -> bool:
    command = sd_command(ins)
    return command is not None and command.read_only


def _is_success(sw: int) -> bool:
    """Normal processing (ISO 7816-4; ETSI TS 102 221 10.2.1.1: 91xx with a proactive command pending, and the
    GSM 9Fxx of an ENVELOPE answered under CLA A0) or a warning."""
    return sw == 0x9000 or sw >> 8 in (0x61, 0x62, 0x63, 0x91, 0x9F)


class Card:
    """A GlobalPlatform card over a CardState, committing through ``store``.

    ``random`` gives card challenges (injected: the core draws no randomness itself). ``max_channels`` is the
    number of logical channels, the basic one included (4 for channels 0-3; up to 20).
    """

    def __init__(
        self,
        state: CardState,
        store: StateStore,
        *,
        random: RandomSource,
        applets: AppletRegistry | None = None,
        max_channels: int = 4,
        trace: TraceSink | None = None,
        logger: logging.Logger | None = None,
        today: Callable[[], datetime.date] | None = None,
        check_state: bool | None = None,
    ) -> None:
        if not 1 <= max_channels <= 20:
            raise ValueError(f"max_channels must be 1..20, got {max_channels}")
        self.ctx = CardContext(state, random, applets or default_registry(), trace=trace, today=today)
        self.store = store
        self.max_channels = max_channels
        self.trace = trace
        self.log = logger or logging.getLogger("gpchannel.card")
        if check_state is not None:
            self.ctx.tracker.check_enabled = check_state
        self.channels: dict[int, ChannelContext] = {}
        self._selects: dict[bytes, tuple[int, bytes, bytes]] = {}
        """Answers of SELECT on the basic channel by command bytes: (state version, selected AID, answer)."""
        self.reset()

    @classmethod
    def from_store(
        cls,
        store: StateStore,
        initial: Callable[[], CardState],
        *,
        random: RandomSource,
        applets: AppletRegistry | None = None,
        max_channels: int = 4,
        trace: TraceSink | None = None,
        logger: logging.Logger | None = None,
        today: Callable[[], datetime.date] | None = None,
        check_state: bool | None = None,
    ) -> Card:
        """The card kept in ``store``; the first time, ``initial()`` (e.g. from a profile) is committed first."""
        state = store.load()
        if state is None:
            state = initial()
            store.commit(state)
        return cls(
            state,
            store,
            random=random,
            applets=applets,
            max_channels=max_channels,
            trace=trace,
            logger=logger,
            today=today,
            check_state=check_state,
        )

    def save(self) -> None:
        """Commit the live state now: for tools and tests that edit ``state`` directly between commands."""
        tracker = self.ctx.tracker
        delta = tracker.pending()
        self.store.commit(self.ctx.state)
        tracker.accept(delta)

    @property
    def state(self) -> CardState:
        return self.ctx.state

    @property
    def atr(self) -> bytes:
        return self.ctx.state.atr

    # -- power and channels ----------------------------------------------------------------------------------
    def reset(self) -> bytes:
        """Power on / warm reset: every session ends, supplementary channels close, and the implicitly
        selectable application (11.1.7), else the ISD (5.1.1.1), is selected on the basic channel. Returns the
        ATR."""
        for channel in self.channels.values():
            self._deselect(channel)
        self.channels = {0: ChannelContext(0)}
        self.ota = OtaHandler()  # SCP80 concatenation buffers and pending PoRs live in RAM
        self.ctx.instances.clear()
        self.channels[0].selected = self._default_application(0)
        return self.atr

    def _default_application(self, channel: int) -> bytes:
        """The application implicitly selected on ``channel`` of the contact interface: the first selectable one
        whose implicit selection parameter (CF, Table 11-15: b7 contact, b5-b1 channel) names it, else the ISD."""
        for app in self.ctx.state.applications:
            if is_selectable(app.lifecycle) and any(p & 0x40 and p & 0x1F == channel for p in app.implicit_selection):
                return app.aid
        return self.ctx.state.isd_aid

    def _deselect(self, channel: ChannelContext) -> None:
        channel.end_session()
        channel.reset_operations()
        if channel.applet is not None:
            try:
                if channel.selected is not None:
                    self._bind(channel, channel.selected, channel.applet)
                channel.applet.deselect()
            except Exception:  # an applet's bug must not stop the card
                self.log.exception("applet deselect failed")
        channel.applet = None
        channel.selected = None

    # -- the boundary ----------------------------------------------------------------------------------------
    def process(self, raw: bytes) -> bytes:
        """Answer one C-APDU; always returns a valid R-APDU (at least a status word)."""
        fast = self._repeated_select(raw) if raw in self._selects else None
        if fast is not None:
            return fast
        command: CommandApdu | None = None
        try:
            command = CommandApdu.from_bytes(raw)
            response = self._dispatch(command)
        except DecodeError as exc:
            response = ResponseApdu(sw=0x6E00 if len(raw) >= 4 and raw[0] == 0xFF else 0x6700)
            self.log.debug("malformed APDU: %s", exc)
        except CardError as exc:
            response = ResponseApdu(sw=exc.sw)
        except Exception:
            self.log.exception("unexpected error processing %s", _shown(raw))
            response = ResponseApdu(sw=0x6F00)
        tracker = self.ctx.tracker
        if tracker.dirty:
            response = self._persist(response)
        if tracker.check_enabled:
            tracker.check()
        if command is not None and response.data and command.ins != 0xC0:  # what _limit may cut
            response = self._limit(command, response)
        out = response.data + response.sw.to_bytes(2, "big")  # response.to_bytes()
        if command is not None and command.ins == 0xA4 and _is_success(response.sw) and not tracker.dirty:
            self._remember_select(raw, out)
        if self.trace is not None:
            self.trace(f">> {_shown(raw)}")
            self.trace(f"<< {out.hex().upper()}")
        return out

    def _repeated_select(self, raw: bytes) -> bytes | None:
        """The answer to a SELECT of a Security Domain on an idle basic channel, as it was last computed, while the
        state has not moved since: such a SELECT changes nothing but the selected application (11.9)."""
        found = self._selects.get(raw)
        channel = self.channels[0]
        tracker = self.ctx.tracker
        if found is None or found[0] != tracker.version or tracker.dirty or self.trace or not channel.is_idle():
            return None
        channel.selected = found[1]
        if tracker.check_enabled:
            tracker.check()
        return found[2]

    def _remember_select(self, raw: bytes, out: bytes) -> None:
        channel = self.channels[0]
        selected = self.ctx.state.application(channel.selected) if channel.selected is not None else None
        if raw[0] != 0x00 or raw[2] != 0x04 or raw[3] & 0x02 or selected is None or selected.sd is None:
            return  # only SELECT [by name, first or only occurrence] on the basic channel, of a Security Domain
        if not channel.is_idle():
            return
        if len(self._selects) > 16 or any(v[0] != self.ctx.tracker.version for v in self._selects.values()):
            self._selects.clear()
        self._selects[raw] = (self.ctx.tracker.version, selected.aid, out)

    def _persist(self, response: ResponseApdu) -> ResponseApdu:
        tracker = self.ctx.tracker
        if not _is_success(response.sw):
            counters = sequence_counters(self.ctx.state)
            self._rollback()
            if not keep_sequence_counters(self.ctx.state, counters):
                return response  # a counter that moved stays moved, even with an error (E.1.2)
        try:
            delta = tracker.pending()
        except Exception:
            self.log.exception("the state cannot be serialised; rolling back")
            self._rollback()
            return ResponseApdu(sw=0x6F00)
        if delta:
            try:
                self._write(delta)
            except Exception:
                self.log.exception("committing the card state failed; rolling back")
                self._rollback()
                return ResponseApdu(sw=_SW_MEMORY_FAILURE)
        tracker.accept(delta)
        return response

    def _write(self, delta: dict[str, Any]) -> None:
        commit_delta = getattr(self.store, "commit_delta", None)
        if commit_delta is not None:
            commit_delta(delta, self.ctx.state)
        else:
            self.store.commit(self.ctx.state)

    def _rollback(self) -> None:
        self.ctx.rollback()
        for channel in self.channels.values():
            channel.applet = None

    def _limit(self, command: CommandApdu, response: ResponseApdu) -> ResponseApdu:
        """Keep what Le (or the short-APDU limit) allows; the rest waits for GET RESPONSE with 61 xx."""
        if command.ins == 0xC0 or not response.data:
            return response
        limit = command.le if command.le is not None else (65536 if command.is_extended else 256)
        if len(response.data) <= limit or not _is_success(response.sw):
            return response
        channel = self.channels.get(cla_channel(command.cla))
        if channel is None:
            return response
        channel.pending_response = response.data[limit:] + response.sw.to_bytes(2, "big")
        remaining = len(channel.pending_response) - 2
        return ResponseApdu(response.data[:limit], 0x6100 | (remaining if remaining < 256 else 0))

    def _dispatch(self, command: CommandApdu) -> ResponseApdu:
        cla = command.cla
        if is_ota_command(command):  # ENVELOPE (SMS-PP download), FETCH, TERMINAL RESPONSE: card/ota_handler.py
            rollbacks = self.ctx.rollbacks
            response = self.ota.process(self.ctx, self.channels[0], command)
            if self.ctx.rollbacks != rollbacks:  # a remote APDU was undone: live applets come back from the state
                for live in self.channels.values():
                    live.applet = None
            return response
        if cla & 0x60 == 0x20 or 0xA0 <= cla <= 0xBF:
            raise ClaNotSupported(f"CLA {cla:02X} is not an ISO or GlobalPlatform class")
        number = cla_channel(cla)
        channel = self.channels.get(number)
        if channel is None:
            if cla & 0x10:
                raise CardError("command chaining is not supported", sw=_SW_CHAINING_NOT_SUPPORTED)
            raise CardError(f"logical channel {number} is not open", sw=_SW_CHANNEL_NOT_SUPPORTED)
        app = self.ctx.state.application(channel.selected) if channel.selected is not None else None
        if (command.cla & 0x10 or channel.chain is not None) and stepped_domain(app) is None:
            whole = _unchain(channel, command)  # a Security Domain initiated by steps (SCP10) chains itself
            if whole is None:
                return ResponseApdu()
            command = whole
        if command.ins == 0xC0 and not cla & 0x80:
            return self._get_response(channel, command)
        channel.pending_response = b""
        if command.ins == 0x70 and not cla & 0x80:
            return self._manage_channel(channel, command)
        if command.ins == 0xA4 and command.p1 == 0x04 and not cla & 0x80:
            return self._select(channel, command)
        if app is None:
            raise FileNotFound("no application is selected on this logical channel")
        if app.sd is not None:
            return process_security_domain(self.ctx, channel, app, command)
        return self._applet(channel, app, command)

    def _get_response(self, channel: ChannelContext, command: CommandApdu) -> ResponseApdu:
        if command.p1 or command.p2:
            raise IncorrectP1P2("GET RESPONSE has P1 = P2 = 00")
        if not channel.pending_response:
            raise CardError("no response data waiting", sw=0x6985)
        pending, channel.pending_response = channel.pending_response, b""
        data, sw = pending[:-2], int.from_bytes(pending[-2:], "big")
        limit = command.le or 256
        if len(data) > limit:
            channel.pending_response = data[limit:] + pending[-2:]
            rest = len(data) - limit
            return ResponseApdu(data[:limit], 0x6100 | (rest if rest < 256 else 0))
        return ResponseApdu(data, sw)

    def _manage_channel(self, channel: ChannelContext, command: CommandApdu) -> ResponseApdu:
        """MANAGE CHANNEL (11.7): P1 00 opens (P2 00 = next free, or the number asked), P1 80 closes P2."""
        if cla_has_secure_messaging(command.cla):
            raise CardError("MANAGE CHANNEL with secure messaging", sw=_SW_SM_NOT_SUPPORTED)
        if self.ctx.state.lifecycle in (CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED):
            raise FunctionNotSupported("no logical channels while the card is locked or terminated")
        if command.data:
            raise WrongLength("MANAGE CHANNEL has no data field")
        if command.p1 == 0x00:
            if command.p2 == 0:
                free = [n for n in range(1, self.max_channels) if n not in self.channels]
                if not free:
                    raise FunctionNotSupported("no logical channel is free")
                number = free[0]
            elif command.p2 < self.max_channels and command.p2 not in self.channels:
                number = command.p2
            else:
                raise IncorrectP1P2(f"logical channel {command.p2} cannot be opened")
            new = ChannelContext(number)
            # ISO 7816-4 5.4.1: opened from the basic channel, the default application is selected; opened from
            # another channel, that channel's application.
            new.selected = channel.selected if channel.number else self._default_application(number)
            self.channels[number] = new
            return ResponseApdu(bytes((number,)))
        if command.p1 == 0x80:
            if command.p2 == 0 or command.p2 >= 20:
                raise IncorrectP1P2("the basic channel cannot be closed")
            closing = self.channels.pop(command.p2, None)
            if closing is None:
                return ResponseApdu(sw=_SW_CHANNEL_CLOSED)
            self._deselect(closing)
            return ResponseApdu()
        raise IncorrectP1P2(f"MANAGE CHANNEL P1 {command.p1:02X} is neither 00 nor 80")

    def _select(self, channel: ChannelContext, command: CommandApdu) -> ResponseApdu:
        """SELECT [by name] (11.9): exact, partial (prefix) and next occurrence; FCI for Security Domains."""
        if cla_has_secure_messaging(command.cla):
            raise CardError("SELECT with secure messaging", sw=_SW_SM_NOT_SUPPORTED)
        if command.p2 & ~0x0E or command.p2 & 0x0C not in (0x00, 0x04, 0x0C):
            raise IncorrectP1P2(f"SELECT P2 {command.p2:02X} is not supported")
        state = self.ctx.state
        aid = command.data or state.isd_aid
        if command.data and not 1 <= len(aid) <= 16:
            raise WrongLength("an AID is 1 to 16 bytes")
        after = channel.selected if command.p2 & 0x02 and channel.selected is not None else None
        target = find_for_select(state, aid, after=after)
        if target is None or (target.aid != state.isd_aid and not is_selectable(target.lifecycle)):
            raise FileNotFound("no selectable application with this AID")
        warning = 0x9000
        if state.lifecycle in (CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED):
            if Privilege.FINAL_APPLICATION not in target.privileges:
                raise FunctionNotSupported(f"the card is {state.lifecycle.name}")
            warning = _SW_CARD_LOCKED if state.lifecycle is CardLifeCycle.CARD_LOCKED else 0x9000
        self._deselect(channel)
        channel.selected = target.aid
        if target.sd is not None:
            data = fci(self.ctx, target) if not command.p2 & 0x0C else b""
            return ResponseApdu(data, warning)
        applet = self.ctx.applet(target.aid)
        channel.applet = applet
        if applet is None:
            return ResponseApdu(sw=warning)
        self._bind(channel, target.aid, applet)
        response = applet.select(command)
        return response if warning == 0x9000 or not _is_success(response.sw) else ResponseApdu(response.data, warning)

    def _bind(self, channel: ChannelContext, aid: bytes, applet: Applet) -> None:
        """Give the applet its environment for this call: channel, install parameters, randomness and the
        SecureChannel service of its associated Security Domain (GP 2.3.1, 10.3)."""
        app = self.ctx.state.application(aid)
        parameters = app.install_parameters if app is not None else b""
        service = SecureChannelService(self.ctx, channel, aid)
        applet.bind(AppletEnvironment(channel.number, parameters, self.ctx.random, service))

    def _applet(self, channel: ChannelContext, app: Application, command: CommandApdu) -> ResponseApdu:
        applet = channel.applet or self.ctx.applet(app.aid)
        if cla_has_secure_messaging(command.cla) and (applet is None or not applet.secure_messaging):
            raise CardError("this applet does not take secure messaging", sw=_SW_SM_NOT_SUPPORTED)
        if applet is None:
            raise InsNotSupported(f"application {app.aid.hex().upper()} has no applet class")
        channel.applet = applet
        self._bind(channel, app.aid, applet)
        return applet.process(command)


def _unchain(channel: ChannelContext, command: CommandApdu) -> CommandApdu | None:
    """ISO/IEC 7816-4 5.3.3 command chaining (CLA b5): the segments of one command (same CLA, INS, P1, P2 but for
    b5) are joined, answered 9000 until the last, which goes on with the whole data. A chained command without
    data, or one past 65535 bytes, is refused (6884, 6700); another command abandons the chain and is processed
    (a SELECT or MANAGE CHANNEL always gets through)."""
    key = bytes((command.cla & ~0x10, command.ins, command.p1, command.p2))
    pending = channel.chain
    if pending is not None and pending[0] != key:
        channel.chain = pending = None
    if not command.cla & 0x10:
        if pending is None:
            return command
        channel.chain = None
        data = pending[1] + command.data
        if len(data) > _MAX_CHAINED:
            raise WrongLength(f"chained command data over {_MAX_CHAINED} bytes")
        return command.with_changes(data=data)
    if not command.data:
        channel.chain = None
        raise CardError("command chaining needs data in every segment", sw=_SW_CHAINING_NOT_SUPPORTED)
    data = (pending[1] if pending else b"") + command.data
    if len(data) > _MAX_CHAINED:
        channel.chain = None
        raise WrongLength(f"chained command data over {_MAX_CHAINED} bytes")
    channel.chain = (key, data)
    return None
