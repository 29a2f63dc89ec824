"""The SMS-PP DOWNLOAD ENVELOPE a handset sends to the card, and the PoR in its response.

ETSI TS 102 223 7.1.1 / 3GPP TS 31.111 7.1.1 (SMS-PP data download): ENVELOPE (INS ``C2``; CLA ``80`` on a
UICC, ``A0`` on a GSM SIM) whose data is the BER-TLV tag ``D1`` holding COMPREHENSION-TLVs: device identities
(tag 02, source ``83`` network, destination ``81`` UICC), optionally the service centre address (tag 06, TON/NPI
and BCD digits) and the SMS TPDU (tag 0B) of an SMS-DELIVER. The handset sets the comprehension-required bit on
device identities and the TPDU (``82``, ``8B``); the decoder accepts either form of every tag.

With SPI2 asking for the PoR in the SMS-DELIVER-REPORT, the card answers the ENVELOPE with the response packet
as TP-UD (``02 71 00`` + RPL..end, SW 61xx on a UICC, 9Fxx on a SIM) and the handset returns it in the RP-ACK
(ota-notes A.6, [C]: pySim and SIMtester read it that way). With SPI2 asking for an SMS-SUBMIT, the card answers
``91 xx`` and the PoR comes in proactive SEND SHORT MESSAGEs (:func:`proactive_submit`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpchannel.codec.apdu import CommandApdu
from gpchannel.codec.tlv import decode_length, encode_length
from gpchannel.errors import DecodeError
from gpchannel.ota.sms import Address, SmsSubmit

__all__ = [
    "DEVICE_NETWORK",
    "DEVICE_UICC",
    "ENVELOPE_INS",
    "SMS_PP_DOWNLOAD_TAG",
    "SmsPpDownload",
    "proactive_submit",
]

SMS_PP_DOWNLOAD_TAG = 0xD1
ENVELOPE_INS = 0xC2
DEVICE_NETWORK = 0x83
DEVICE_UICC = 0x81
_TAG_DEVICE_IDENTITIES = 0x02
_TAG_ADDRESS = 0x06
_TAG_SMS_TPDU = 0x0B
_CR = 0x80


def _ctlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(value)) + value


def _read_ctlvs(data: bytes, base: int) -> list[tuple[int, bytes, int]]:
    """(tag without the CR bit, value, offset of the tag) for each COMPREHENSION-TLV (1-byte tags only)."""
    out = []
    offset = 0
    while offset < len(data):
        tag = data[offset]
        if tag in (0x00, 0xFF, 0x7F, 0x80):
            raise DecodeError(f"COMPREHENSION-TLV tag {tag:02X} is reserved or a 3-byte tag", offset=base + offset)
        try:
            length, start = decode_length(data, offset + 1)
        except DecodeError as exc:
            raise DecodeError("COMPREHENSION-TLV: bad length", offset=base + (exc.offset or 0)) from None
        if start + length > len(data):
            raise DecodeError(f"COMPREHENSION-TLV {tag:02X}: value overruns", offset=base + len(data))
        out.append((tag & ~_CR, data[start : start + length], base + offset))
        offset = start + length
    return out


@dataclass(frozen=True, slots=True)
class SmsPpDownload:
    """The ``D1`` object of an SMS-PP DOWNLOAD ENVELOPE (TS 31.111 7.1.1.2)."""

    tpdu: bytes
    service_centre: Address | None = None
    source: int = DEVICE_NETWORK
    destination: int = DEVICE_UICC

    def to_bytes(self) -> bytes:
        body = _ctlv(_TAG_DEVICE_IDENTITIES | _CR, bytes((self.source, self.destination)))
        if self.service_centre is not None:
            body += _ctlv(_TAG_ADDRESS, self.service_centre.to_sc_bytes())
        body += _ctlv(_TAG_SMS_TPDU | _CR, self.tpdu)
        return bytes((SMS_PP_DOWNLOAD_TAG,)) + encode_length(len(body)) + body

    def to_apdu(self, cla: int = 0x80) -> CommandApdu:
        """The ENVELOPE command (``cla`` ``A0`` for a GSM SIM)."""
        return CommandApdu(cla, ENVELOPE_INS, 0x00, 0x00, self.to_bytes())

    @classmethod
    def from_bytes(cls, raw: bytes) -> SmsPpDownload:
        if not raw:
            raise DecodeError("ENVELOPE data: tag expected", offset=0)
        if raw[0] != SMS_PP_DOWNLOAD_TAG:
            raise DecodeError(f"ENVELOPE tag {raw[0]:02X} is not SMS-PP download (D1)", offset=0)
        length, start = decode_length(raw, 1)
        if start + length != len(raw):
            raise DecodeError(f"D1 length {length} but {len(raw) - start} bytes follow", offset=len(raw))
        items = _read_ctlvs(raw[start:], start)
        found: dict[int, tuple[bytes, int]] = {}
        for tag, value, offset in items:
            if tag in found:
                raise DecodeError(f"COMPREHENSION-TLV {tag:02X} repeated", offset=offset)
            found[tag] = (value, offset)
        if _TAG_DEVICE_IDENTITIES not in found or _TAG_SMS_TPDU not in found:
            raise DecodeError("SMS-PP download needs device identities (82) and an SMS TPDU (8B)", offset=len(raw))
        ids, ids_at = found[_TAG_DEVICE_IDENTITIES]
        if len(ids) != 2:
            raise DecodeError("device identities are 2 bytes", offset=ids_at)
        address = None
        if _TAG_ADDRESS in found:
            value, at = found[_TAG_ADDRESS]
            try:
                address = Address.from_sc_bytes(value)
            except DecodeError as exc:
                raise DecodeError(f"service centre {exc}", offset=at) from None
        return cls(found[_TAG_SMS_TPDU][0], address, ids[0], ids[1])

    @classmethod
    def from_apdu(cls, apdu: CommandApdu) -> SmsPpDownload:
        if apdu.ins != ENVELOPE_INS:
            raise DecodeError(f"INS {apdu.ins:02X} is not ENVELOPE (C2)", offset=1)
        return cls.from_bytes(apdu.data)


def proactive_submit(proactive: bytes) -> SmsSubmit:
    """The SMS-SUBMIT of a proactive SEND SHORT MESSAGE (TS 102 223 6.6.9: D0 { 81 .. 13 .., 82, [05,] 8B })."""
    if len(proactive) < 2 or proactive[0] != 0xD0:
        raise DecodeError("not a proactive command (D0)", offset=0)
    at = 3 if proactive[1] == 0x81 else 2
    while at + 2 <= len(proactive):
        tag, length = proactive[at] & 0x7F, proactive[at + 1]
        start = at + 2
        if length == 0x81 and start < len(proactive):
            length, start = proactive[start], start + 1
        if tag == 0x0B:
            return SmsSubmit.from_bytes(proactive[start : start + length])
        at = start + length
    raise DecodeError("the proactive command has no SMS TPDU (8B)", offset=len(proactive))
