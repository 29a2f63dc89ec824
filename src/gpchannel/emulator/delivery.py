"""One script delivered over an SCP81 admin session, run on the emulated card: who receives it (the ISD, a Security
Domain or an application named by X-Admin-Targeted-Application, GP Amendment B 3.x; a TAR for RFM, TS 102 226
Annex B), the expanded remote command script run (TS 102 226 5.2) and the response script to POST back.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpchannel.card.context import ChannelContext
from gpchannel.card.dispatcher import Card
from gpchannel.card.ota_script import run_script
from gpchannel.card.ota_targets import TarEntry, tar_entry
from gpchannel.card.state import CardState
from gpchannel.errors import DecodeError
from gpchannel.ota.remote_apdu import BadFormat, CommandScript, ResponseScript
from gpchannel.ram.admin import ContentType, ScriptStatus
from gpchannel.ram.client import ScriptDelivery

__all__ = ["ScriptOutcome", "run_delivery"]

_EXPANDED_TAGS = (0xAA, 0xAE)
_RESPONSE_TYPE = {
    ContentType.GP_COMMAND: ContentType.GP_RESPONSE,
    ContentType.ETSI_COMMAND: ContentType.ETSI_RESPONSE,
}


@dataclass(frozen=True)
class ScriptOutcome:
    """What running one delivered script gave: the POST to make, and what ran."""

    status: ScriptStatus
    body: bytes
    content_type: ContentType
    apdus: int


def _receiving_entity(state: CardState, delivery: ScriptDelivery) -> TarEntry | ScriptStatus:
    """Who runs the script (Amendment B 3.x, X-Admin-Targeted-Application; TS 102 226 Annex B)."""
    target = delivery.targeted_application
    if target is None:
        return TarEntry(b"", state.isd_aid)
    app = state.application(target.aid)
    if delivery.content_type is ContentType.GP_COMMAND:
        if app is None:
            return ScriptStatus.UNKNOWN_APPLICATION
        if app.sd is None:
            return ScriptStatus.NOT_A_SECURITY_DOMAIN
        return TarEntry(b"", app.aid)
    if app is not None:
        return TarEntry(b"", app.aid)
    entry = tar_entry(state, target.aid[12:15]) if len(target.aid) >= 15 else None
    if entry is None or (not entry.rfm and state.application(entry.target) is None):
        return ScriptStatus.UNKNOWN_APPLICATION
    return entry


def run_delivery(card: Card, delivery: ScriptDelivery, channels: dict[bytes, ChannelContext]) -> ScriptOutcome:
    """Run one delivered script on ``card`` (the caller holds the card's lock and commits the state).

    ``channels`` keeps, per receiving entity, the multi-command operations of the session (INSTALL [for load]
    then LOAD blocks in later scripts), as the SCP80 side does per power-up."""
    response_type = _RESPONSE_TYPE.get(delivery.content_type, ContentType.GP_RESPONSE)
    entry = _receiving_entity(card.state, delivery)
    if isinstance(entry, ScriptStatus):
        return ScriptOutcome(entry, b"", response_type, 0)
    script = delivery.script
    if script[:1] not in (bytes((t,)) for t in _EXPANDED_TAGS):
        bad = ResponseScript((BadFormat(b"\x01"),), 0, True).to_bytes()
        return ScriptOutcome(ScriptStatus.OK, bad, response_type, 0)
    if script[:1] == b"\xaa" and _too_many_commands(script):
        # The definite response script counts executed commands in one byte (TS 102 226 5.2.2): refuse up front
        # rather than run commands whose results could not be reported [our choice].
        bad = ResponseScript((BadFormat(b"\x02"),), 0, True).to_bytes()
        return ScriptOutcome(ScriptStatus.OK, bad, response_type, 0)
    channel = None if entry.rfm else channels.setdefault(entry.target, ChannelContext(0))
    before = card.ctx.state
    body = run_script(card.ctx, entry, script, channel)
    if card.ctx.state is not before:  # a command was undone: live applets come back from the state
        for live in card.channels.values():
            live.applet = None
    try:
        executed = len(ResponseScript.from_bytes(body).responses)
    except DecodeError:
        executed = 0
    return ScriptOutcome(ScriptStatus.OK, body, response_type, executed)


def _too_many_commands(script: bytes) -> bool:
    try:
        return len(CommandScript.from_bytes(script).apdus) > 0xFF
    except DecodeError:
        return False  # run_script answers the Bad Format TLV itself
