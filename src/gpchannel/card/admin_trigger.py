"""The card side of the SCP81 session trigger and of the admin session's persisted progress (GP Card
Specification Amendment B, "Administration Session Triggering Parameters", Table 3-3; ota-notes B.3).

**Where the tag-81 TLV sits in the SCP80 packet [U].** Amendment B names the parameters (tag ``81``) but the
public texts do not say which wrapper carries them in an SMS (ota-notes F.8). Real OTA tools we could read
(the denom.org smartcard library's ``SCP80Sms`` + ``SCP81SessionParams``, which builds the "SMS to start an
SCP81 session") put the ``81`` TLV **directly as the secured data** of the command packet sent to the Security
Domain's TAR: no C-APDU, no expanded-script template. This emulator does the same: an SCP80 command packet
that passes every security check for the ISD's RAM TAR (``000000`` or a ``[[ota.tars]]`` entry naming the
ISD) and whose secured data is exactly one BER-TLV with tag ``81`` (its length filling the data) is a trigger.
Anything else is a remote command script as before (:mod:`gpchannel.card.ota_script`). A compact script
whose first command has CLA ``81`` and an INS equal to the remaining length would be read as a trigger; no
remote APDU uses a logical-channel-1 CLA in an SMS, so the ambiguity is accepted and documented here.
ETSI TS 102 226 PUSH (``80 EC``) is a different command (BIP / CAT_TP) and is not a trigger here.

The card core only records the trigger (``state.ota["admin_session"]["trigger"]``, persisted with the SCP80
counter when the ENVELOPE completes); the emulator process (``gpchannel.emulator.app``) notices it and runs
the session (``gpchannel.emulator.agent.CardAgent``) outside the APDU path. The PoR's additional data is a
status word: ``90 00`` when the trigger was recorded, ``6A 80`` when the ``81`` value is not the Table 3-3
structure, ``69 85`` when the receiving entity is not the ISD (the one Security Domain with an ``[scp81]``
configuration here) or when neither the trigger nor the profile gives a PSK identity and an address.

The same ``admin_session`` object keeps the session's progress for resumption (:class:`PendingDelivery`):
the Next-URI of a script received (written before the script runs), then the response script (written in the
same commit as the script's effects), removed once the server has acknowledged the response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpchannel.card.ota_targets import TarEntry
from gpchannel.card.state import CardState
from gpchannel.codec.tlv import decode_length, parse_pairs
from gpchannel.errors import DecodeError
from gpchannel.ram.trigger import TriggerParameters

__all__ = [
    "ADMIN_TRIGGER_TAG",
    "SW_TRIGGER_MALFORMED",
    "SW_TRIGGER_OK",
    "SW_TRIGGER_REFUSED",
    "PendingDelivery",
    "clear_delivery",
    "connection_address",
    "is_trigger",
    "pending_delivery",
    "pending_trigger",
    "receive_trigger",
    "store_delivery",
    "take_trigger",
]

ADMIN_TRIGGER_TAG = 0x81
SW_TRIGGER_OK = b"\x90\x00"
SW_TRIGGER_MALFORMED = b"\x6a\x80"
SW_TRIGGER_REFUSED = b"\x69\x85"

_SESSION = "admin_session"


def is_trigger(data: bytes) -> bool:
    """Whether SCP80 secured data is an Administration Session Triggering Parameters TLV: exactly one BER-TLV
    with tag 81 whose length fills ``data`` (``81 00`` included: the configured defaults)."""
    if len(data) < 2 or data[0] != ADMIN_TRIGGER_TAG:
        return False
    try:
        length, start = decode_length(data, 1)
    except DecodeError:
        return False
    return start + length == len(data)


def _session(state: CardState, create: bool = False) -> dict[str, Any]:
    raw = state.ota.get(_SESSION)
    if isinstance(raw, dict):
        return raw
    fresh: dict[str, Any] = {}
    if create:
        state.ota[_SESSION] = fresh
    return fresh


def receive_trigger(state: CardState, entry: TarEntry, data: bytes) -> bytes:
    """Record the trigger ``data`` (already secured-checked by SCP80) received on ``entry``; returns the PoR's
    additional data (a status word, see the module docstring). A later trigger replaces a pending one."""
    if entry.rfm or entry.target != state.isd_aid:
        return SW_TRIGGER_REFUSED
    try:
        parameters = TriggerParameters.from_bytes(data)
    except (DecodeError, ValueError):
        return SW_TRIGGER_MALFORMED
    configured = state.ota.get("scp81")
    if not isinstance(configured, dict):
        configured = {}
    has_identity = parameters.psk_identity is not None or bool(configured.get("psk_identity"))
    has_address = connection_address(parameters.connection)[1] is not None or bool(configured.get("server"))
    if not (has_identity and has_address and configured.get("psk")):
        return SW_TRIGGER_REFUSED
    _session(state, create=True)["trigger"] = data.hex().upper()
    return SW_TRIGGER_OK


def pending_trigger(state: CardState) -> TriggerParameters | None:
    """The trigger recorded and not yet taken, if any."""
    raw = _session(state).get("trigger")
    if not isinstance(raw, str):
        return None
    try:
        return TriggerParameters.from_bytes(bytes.fromhex(raw))
    except (DecodeError, ValueError):
        return None


def take_trigger(state: CardState) -> TriggerParameters | None:
    """The pending trigger, removed from the state (the caller persists the state)."""
    parameters = pending_trigger(state)
    _session(state).pop("trigger", None)
    return parameters


def connection_address(connection: bytes | None) -> tuple[str | None, int | None]:
    """Host and port from the tag-84 Connection Parameters (TS 102 223 OPEN CHANNEL COMPREHENSION-TLVs):
    ``3E`` Other address (``21`` + IPv4; ``57`` + IPv6) and ``3C`` UICC/terminal interface transport level
    (``02`` TCP client + port). Tags may carry the comprehension-required bit (``BE``, ``BC``). Either may be
    None (absent, another type, or unreadable: the profile's ``server`` is used for what is missing)."""
    host: str | None = None
    port: int | None = None
    if not connection:
        return host, port
    try:
        items = parse_pairs(connection)
    except DecodeError:
        return host, port
    for tag, value in items:
        if tag & 0x7F == 0x3E and len(value) == 5 and value[0] == 0x21:
            host = ".".join(str(b) for b in value[1:])
        elif tag & 0x7F == 0x3E and len(value) == 17 and value[0] == 0x57:
            host = ":".join(value[i : i + 2].hex() for i in range(1, 17, 2))
        elif tag & 0x7F == 0x3C and len(value) == 3 and value[0] == 0x02:
            port = int.from_bytes(value[1:], "big") or None
    return host, port


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A script received in an admin session and not yet acknowledged by the server.

    ``uri`` is the X-Admin-Next-URI the response goes to. ``response`` is None while the script has not run
    (the script's effects and the response are committed together, so a card found in this state never ran
    it); otherwise the response body, with its X-Admin-Script-Status and Content-Type to post again."""

    uri: str
    response: bytes | None = None
    script_status: str = "ok"
    content_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uri": self.uri}
        if self.response is not None:
            out.update(response=self.response.hex().upper(), status=self.script_status, type=self.content_type)
        return out

    @classmethod
    def from_dict(cls, raw: object) -> PendingDelivery | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("uri"), str):
            return None
        response = raw.get("response")
        return cls(
            raw["uri"],
            bytes.fromhex(response) if isinstance(response, str) else None,
            str(raw.get("status", "ok")),
            str(raw.get("type", "")),
        )


def pending_delivery(state: CardState) -> PendingDelivery | None:
    """The delivery of an interrupted session, if any."""
    return PendingDelivery.from_dict(_session(state).get("delivery"))


def store_delivery(state: CardState, delivery: PendingDelivery) -> None:
    """Record ``delivery`` in the state (the caller commits it)."""
    _session(state, create=True)["delivery"] = delivery.to_dict()


def clear_delivery(state: CardState) -> None:
    """Forget the acknowledged delivery (the caller commits the state)."""
    session = _session(state)
    session.pop("delivery", None)
    if not session:
        state.ota.pop(_SESSION, None)
