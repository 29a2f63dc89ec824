"""SMPP 3.4 delivery receipts and the fixed SMS-PP OTA parameters of submit_sm / deliver_sm (sans-I/O).

SMPP 3.4 (SMPP Developers Forum, issue 1.2, 1999): 5.2.12 esm_class (bits 7..6 GSM features: ``01`` = UDHI
indicator, ``40``; bits 5..2 message type: ``0001`` = SMSC delivery receipt, ``04``), 5.2.14 protocol_id (the
GSM TP-PID: ``7F`` = (U)SIM data download), 5.2.17 registered_delivery (bits 1..0: ``01`` receipt on success
or failure, ``10`` on failure only), 5.2.19 data_coding (the GSM TP-DCS: ``F6`` = 8-bit data, class 2),
5.2.28 message_state, 5.3.2.12 / 5.3.2.35 the receipted_message_id and message_state TLVs, and Appendix B,
the text of a delivery receipt (``id:... sub:... dlvrd:... submit date:... done date:... stat:... err:...
text:...``), which the standard calls vendor-specific but which every SMSC follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from gpchannel.errors import DecodeError

__all__ = [
    "DATA_CODING_OTA",
    "ESM_CLASS_DELIVERY_RECEIPT",
    "ESM_CLASS_TYPE_MASK",
    "ESM_CLASS_UDHI",
    "PROTOCOL_ID_OTA",
    "REGISTERED_DELIVERY_FAILURE",
    "REGISTERED_DELIVERY_RECEIPT",
    "TLV_MESSAGE_STATE",
    "TLV_RECEIPTED_MESSAGE_ID",
    "DeliveryReceipt",
    "MessageState",
    "is_receipt",
    "receipt_wanted",
]

ESM_CLASS_UDHI = 0x40
"""esm_class bit 6: the short message starts with a user data header (SMPP 3.4 5.2.12)."""
ESM_CLASS_TYPE_MASK = 0x3C
ESM_CLASS_DELIVERY_RECEIPT = 0x04
"""esm_class message type 0001 in a deliver_sm: an SMSC delivery receipt (SMPP 3.4 5.2.12)."""
PROTOCOL_ID_OTA = 0x7F
"""TP-PID (U)SIM data download (3GPP TS 23.040 9.2.3.9), carried as protocol_id."""
DATA_CODING_OTA = 0xF6
"""TP-DCS 8-bit data, message class 2 (SIM specific), carried as data_coding (TS 23.038 4)."""
REGISTERED_DELIVERY_RECEIPT = 0x01
REGISTERED_DELIVERY_FAILURE = 0x02
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427


class MessageState(IntEnum):
    """SMPP 3.4 5.2.28, with the 7-character ``stat:`` words of Appendix B."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8

    @property
    def word(self) -> str:
        return _WORDS[self]


_WORDS = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}
_BY_WORD = {w: s for s, w in _WORDS.items()}
_FIELD = re.compile(r"(id|sub|dlvrd|submit date|done date|stat|err|text):", re.IGNORECASE)
_STAMP = re.compile(r"\d{10}")


def is_receipt(esm_class: int) -> bool:
    """Whether a deliver_sm with this esm_class is an SMSC delivery receipt (SMPP 3.4 5.2.12)."""
    return esm_class & ESM_CLASS_TYPE_MASK == ESM_CLASS_DELIVERY_RECEIPT


def receipt_wanted(registered_delivery: int, delivered: bool) -> bool:
    """Whether registered_delivery (SMPP 3.4 5.2.17, bits 1..0) asks for a receipt of this outcome."""
    mode = registered_delivery & 0x03
    return mode == REGISTERED_DELIVERY_RECEIPT or (mode == REGISTERED_DELIVERY_FAILURE and not delivered)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """One delivery receipt: the submit_sm_resp's message_id, the final state, the error code (``err:``, three
    digits; here the card's status word when the card refused the ENVELOPE is given in ``text``) and the dates
    as ``YYMMDDhhmm``."""

    message_id: str
    state: MessageState
    error: int = 0
    submit_date: str = "0000000000"
    done_date: str = "0000000000"
    submitted: int = 1
    delivered: int = 1
    text: str = ""

    def __post_init__(self) -> None:
        if not self.message_id or len(self.message_id) > 64 or self.message_id.split() != [self.message_id]:
            raise ValueError("a message_id is 1..64 characters without spaces")
        for name in ("submit_date", "done_date"):
            if not _STAMP.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} is YYMMDDhhmm (10 digits)")
        for name in ("submitted", "delivered", "error"):
            if not 0 <= getattr(self, name) <= 999:
                raise ValueError(f"{name} is 0..999")
        if len(self.text) > 20:
            raise ValueError("the receipt text holds at most 20 characters")

    def to_text(self) -> bytes:
        """The short_message of the receipt (SMPP 3.4 Appendix B), ASCII."""
        return (
            f"id:{self.message_id} sub:{self.submitted:03d} dlvrd:{self.delivered:03d} "
            f"submit date:{self.submit_date} done date:{self.done_date} stat:{self.state.word} "
            f"err:{self.error:03d} text:{self.text}"
        ).encode("ascii")

    @classmethod
    def from_text(cls, raw: bytes) -> DeliveryReceipt:
        """Parse the Appendix B text; :class:`DecodeError` naming the offset of what is missing or wrong."""
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DecodeError("a delivery receipt is ASCII text", offset=exc.start) from None
        fields: dict[str, tuple[str, int]] = {}
        matches = list(_FIELD.finditer(text))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            name = m.group(1).lower()
            value = text[m.end() : end] if name == "text" else text[m.end() : end].strip()
            fields.setdefault(name, (value, m.end()))
            if name == "text":
                break
        for needed in ("id", "stat"):
            if needed not in fields:
                raise DecodeError(f"delivery receipt: no {needed}: field", offset=len(raw))
        message_id, at = fields["id"]
        if not message_id or len(message_id) > 64 or " " in message_id:
            raise DecodeError("delivery receipt: bad id", offset=at)
        word, at = fields["stat"]
        state = _BY_WORD.get(word.upper())
        if state is None:
            raise DecodeError(f"delivery receipt: unknown stat {word!r}", offset=at)
        numbers = {}
        for name, default in (("sub", 1), ("dlvrd", 1), ("err", 0)):
            value, at = fields.get(name, (str(default), 0))
            if not value.isdigit() or len(value) > 3:
                raise DecodeError(f"delivery receipt: {name} is up to 3 digits", offset=at)
            numbers[name] = int(value)
        dates = {}
        for name in ("submit date", "done date"):
            value, at = fields.get(name, ("0000000000", 0))
            if not _STAMP.fullmatch(value):
                raise DecodeError(f"delivery receipt: {name} is YYMMDDhhmm", offset=at)
            dates[name] = value
        body = fields.get("text", ("", 0))[0][:20]
        return cls(
            message_id,
            state,
            numbers["err"],
            dates["submit date"],
            dates["done date"],
            numbers["sub"],
            numbers["dlvrd"],
            body,
        )
