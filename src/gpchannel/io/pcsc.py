"""PC/SC transport over pyscard: reader selection, waiting for a card, T=0 / T=1, GET RESPONSE and 6Cxx.

pyscard's low-level ``smartcard.scard`` module is used directly (one context and one card handle per
transport); it is imported on first use, so this module imports without pyscard and reports its absence as a
:class:`TransportError`. Every PC/SC failure becomes a TransportError whose message says what to do.

Response completion follows ISO 7816-3:2006, 12.2 (T=0 procedure) and ISO 7816-4:2013, 5.6 (SW1 61: send
GET RESPONSE with Le = SW2; SW1 6C: re-send the same command with Le = SW2); see :func:`complete_exchange`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel
from gpchannel.errors import DecodeError, TransportError

__all__ = ["MAX_GET_RESPONSE", "PcscTransport", "card_present", "complete_exchange", "list_readers"]

MAX_GET_RESPONSE = 64
"""More 61xx rounds than this for one command means a card that never finishes: refuse it."""

_INS_GET_RESPONSE = 0xC0

Protocol = Literal["T=0", "T=1", "any"]

_START_PCSCD = "is pcscd running? start it with `scripts/pcscd.sh start`"

_SUCCESS = 0
"""SCARD_S_SUCCESS (PC/SC part 5; pcsc-lite's pcsclite.h)."""


def complete_exchange(
    send: Callable[[bytes], bytes],
    command: CommandApdu,
    *,
    t0: bool = False,
    max_get_response: int = MAX_GET_RESPONSE,
) -> ResponseApdu:
    """Exchange ``command`` through ``send`` (one C-APDU -> one R-APDU) and complete the answer.

    - T=0 (``t0``): a case 4 command goes out without Le (ISO 7816-3, 12.2.4: case 4S is sent as case 3; the
      card answers 61xx and the data is fetched with GET RESPONSE).
    - 6Cxx: the same command is re-sent once with Le = xx (00 meaning 256).
    - 61xx: GET RESPONSE (CLA 00 on the command's logical channel, Le = xx) until another status word, the data
      of every answer concatenated; more than ``max_get_response`` rounds raise TransportError.

    The status word returned is that of the last answer.
    """
    first = command.with_changes(le=None) if t0 and command.case == 4 and not command.is_extended else command
    response = _decode(send(first.to_bytes()))
    if response.sw >> 8 not in (0x61, 0x6C):
        return response  # complete as it came (the usual case: nothing to fetch, nothing to re-send)
    if response.sw >> 8 == 0x6C:
        response = _decode(send(command.with_changes(le=(response.sw & 0xFF) or 256).to_bytes()))
    data = bytearray(response.data)
    rounds = 0
    get_response_cla = cla_for_channel(0x00, command.channel)
    while response.sw >> 8 == 0x61:
        rounds += 1
        if rounds > max_get_response:
            raise TransportError(
                f"the card still answered 61xx after {max_get_response} GET RESPONSE commands "
                f"(to {command.header().hex().upper()}); giving up"
            )
        get_response = CommandApdu(get_response_cla, _INS_GET_RESPONSE, 0, 0, le=(response.sw & 0xFF) or 256)
        response = _decode(send(get_response.to_bytes()))
        if response.sw >> 8 == 0x6C:
            response = _decode(send(get_response.with_changes(le=(response.sw & 0xFF) or 256).to_bytes()))
        data += response.data
    return ResponseApdu(bytes(data), response.sw)


def _decode(raw: bytes) -> ResponseApdu:
    try:
        return ResponseApdu.from_bytes(raw)
    except DecodeError as exc:
        raise TransportError(f"the reader returned a malformed R-APDU ({raw.hex().upper()}): {exc}") from exc


PYSCARD_MISSING = (
    "PC/SC needs pyscard, which is not installed: pip install 'gpchannel[pcsc]' (building pyscard needs the Debian "
    "packages libpcsclite-dev swig gcc python3-dev; using a reader needs pcscd libpcsclite1)"
)
PCSC_LIBRARY_MISSING = "install the Debian packages pcscd libpcsclite1 (apt-get install pcscd libpcsclite1)"


def _scard() -> ModuleType:
    try:
        import smartcard.scard
    except ModuleNotFoundError as exc:
        raise TransportError(PYSCARD_MISSING) from exc
    except ImportError as exc:  # pyscard is there, but not the PC/SC library it links to
        raise TransportError(f"pyscard cannot load the PC/SC library ({exc}): {PCSC_LIBRARY_MISSING}") from exc
    module: ModuleType = smartcard.scard
    return module


def _message(scard: Any, hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult)} (0x{hresult & 0xFFFFFFFF:08X})"


def _check(scard: Any, hresult: int, doing: str, reader: str | None = None) -> None:
    """Raise TransportError for a failed PC/SC call, with the action that fixes the common causes."""
    if hresult == scard.SCARD_S_SUCCESS:
        return
    text = f"{doing}: {_message(scard, hresult)}"
    if hresult in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED):
        text += f"; {_START_PCSCD}"
    elif hresult in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD):
        text += f"; the card left reader {reader!r} (did the emulator stop?)"
    elif hresult == scard.SCARD_E_READER_UNAVAILABLE:
        text += f"; reader {reader!r} is gone (pcscd restarted?): reconnect"
    elif hresult == scard.SCARD_W_RESET_CARD:
        text += "; another application reset the card: reconnect"
    elif hresult == scard.SCARD_E_PROTO_MISMATCH:
        text += "; the card does not offer the requested protocol (try protocol='any')"
    raise TransportError(text)


def _establish(scard: Any) -> Any:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _check(scard, hresult, "cannot reach the PC/SC service")
    return context


def _readers(scard: Any, context: Any) -> list[str]:
    hresult, readers = scard.SCardListReaders(context, [])
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    _check(scard, hresult, "cannot list the PC/SC readers")
    return [str(r) for r in readers]


def list_readers() -> list[str]:
    """The names of the PC/SC readers ([] when there are none); TransportError when pcscd is not reachable."""
    scard = _scard()
    context = _establish(scard)
    try:
        return _readers(scard, context)
    finally:
        scard.SCardReleaseContext(context)


def card_present(reader: str) -> bool:
    """Whether the reader named exactly ``reader`` holds a card that answered (not mute) right now."""
    scard = _scard()
    context = _establish(scard)
    try:
        hresult, states = scard.SCardGetStatusChange(context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        _check(scard, hresult, f"cannot read the state of reader {reader!r}", reader)
        event = int(states[0][1])
        return bool(event & scard.SCARD_STATE_PRESENT and not event & scard.SCARD_STATE_MUTE)
    finally:
        scard.SCardReleaseContext(context)


class PcscTransport:
    """A card in a PC/SC reader: the first reader whose name contains ``reader`` (case-insensitive; "" is the
    first reader), waiting up to ``timeout`` seconds for a card.

    ``protocol`` chooses T=0, T=1 or whichever the card offers; :attr:`protocol` tells the one in use and
    :attr:`atr` the card's ATR. ``transmit`` completes answers with GET RESPONSE / 6Cxx re-sends (see
    :func:`complete_exchange`) unless ``auto_get_response`` is False; ``transmit_raw`` exchanges one APDU as is.
    """

    def __init__(
        self,
        reader: str = "",
        *,
        timeout: float = 10.0,
        protocol: Protocol = "any",
        auto_get_response: bool = True,
    ) -> None:
        self._scard = scard = _scard()
        self.auto_get_response = auto_get_response
        self._context: Any = _establish(scard)
        self._card: Any = None
        try:
            names = _readers(scard, self._context)
            if not names:
                raise TransportError(f"no PC/SC reader is available; {_START_PCSCD} (with the vpcd driver)")
            wanted = reader.casefold()
            matching = [n for n in names if wanted in n.casefold()]
            if not matching:
                raise TransportError(f"no reader matching {reader!r}; readers: {', '.join(names)}")
            self.reader_name: str = matching[0]
            self._wait_for_card(timeout)
            protocols = {
                "T=0": scard.SCARD_PROTOCOL_T0,
                "T=1": scard.SCARD_PROTOCOL_T1,
                "any": scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            }[protocol]
            self._protocols: int = protocols
            hresult, card, active = scard.SCardConnect(
                self._context, self.reader_name, scard.SCARD_SHARE_SHARED, protocols
            )
            _check(scard, hresult, f"cannot connect to the card in {self.reader_name!r}", self.reader_name)
            self._card = card
            self._active: int = int(active)
            hresult, _name, _state, _proto, atr = scard.SCardStatus(card)
            _check(scard, hresult, "cannot read the card status", self.reader_name)
            self.atr: bytes = bytes(atr)
        except BaseException:
            self.close()
            raise

    @property
    def protocol(self) -> str:
        """ "T=0" or "T=1": the protocol the card and the reader agreed on."""
        return "T=0" if self._active == self._scard.SCARD_PROTOCOL_T0 else "T=1"

    def _wait_for_card(self, timeout: float) -> None:
        scard = self._scard
        deadline = time.monotonic() + timeout
        known = scard.SCARD_STATE_UNAWARE
        while True:
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            hresult, states = scard.SCardGetStatusChange(self._context, remaining, [(self.reader_name, known)])
            if hresult != scard.SCARD_E_TIMEOUT:
                _check(scard, hresult, f"cannot watch reader {self.reader_name!r}", self.reader_name)
                _name, event, _atr = states[0]
                if event & scard.SCARD_STATE_PRESENT and not event & scard.SCARD_STATE_MUTE:
                    return
                known = event & ~scard.SCARD_STATE_CHANGED
                if remaining > 0:
                    continue
            if known & scard.SCARD_STATE_MUTE:
                raise TransportError(f"the card in reader {self.reader_name!r} is mute: no ATR after {timeout:g}s")
            raise TransportError(
                f"no card in reader {self.reader_name!r} after {timeout:g}s "
                "(is the card emulator running and connected to vpcd?)"
            )

    def transmit_raw(self, apdu: bytes) -> bytes:
        """One C-APDU out, one R-APDU back, nothing added."""
        if self._card is None:
            raise TransportError("the PC/SC transport is closed")
        scard = self._scard
        hresult, response = scard.SCardTransmit(self._card, self._active, list(apdu))
        if hresult != _SUCCESS:
            if hresult == scard.SCARD_W_RESET_CARD:
                self._after_reset()
            _check(scard, hresult, f"cannot exchange an APDU with {self.reader_name!r}", self.reader_name)
        return bytes(response)

    def _after_reset(self) -> None:
        """Another application reset the card: take the new session (so this transport stays usable), and
        report the reset, since what the card held in RAM (selected application, secure channel) is gone."""
        scard = self._scard
        hresult, active = scard.SCardReconnect(
            self._card, scard.SCARD_SHARE_SHARED, self._protocols, scard.SCARD_LEAVE_CARD
        )
        _check(scard, hresult, f"cannot reconnect to the card in {self.reader_name!r} after a reset", self.reader_name)
        self._active = int(active)
        raise TransportError(
            f"the card in {self.reader_name!r} was reset by another application: the transport reconnected, "
            "but the card's selected application and secure channel are gone; start the session again"
        )

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command``; the R-APDU is completed with GET RESPONSE / 6Cxx handling (ISO 7816-4, 5.6)."""
        if not self.auto_get_response:
            return _decode(self.transmit_raw(command.to_bytes()))
        return complete_exchange(self.transmit_raw, command, t0=self._active == self._scard.SCARD_PROTOCOL_T0)

    def close(self) -> None:
        """Disconnect (leaving the card powered) and release the PC/SC context; idempotent."""
        scard = self._scard
        if self._card is not None:
            scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)
            self._card = None
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def __enter__(self) -> PcscTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._card is None else self.protocol
        return f"PcscTransport({getattr(self, 'reader_name', '?')!r}, {state})"
