"""The key doctor for SCP11 sessions of a trace (Amendment F; see docs/scp11.md): which trust anchors and which
session keys fit each key agreement, without a card.

For each key agreement (:func:`gpchannel.trace.scp11_checker.key_agreement_parameters`) it reads what the trace
shows before it on the same channel: the card's chain (the answer to GET DATA BF21, concatenated DER, CA first)
and, for 11a/c, the OCE's chain (the PERFORM SECURITY OPERATION data, ISO/IEC 7816-4 chains joined). It verifies
the card's chain from a CA-KLCC key and the OCE's from a CA-KLOC key when given (signature links and validity at
``now``; :func:`gpchannel.scp.scp11_cert.verify_chain`), and says which of the given session key sets verifies
the receipt. A pure function; the report holds verdicts and certificate subjects, never keys.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.errors import DecodeError, SecurityError
from gpchannel.scp.scp11 import (
    INS_GET_DATA,
    INS_PERFORM_SECURITY_OPERATION,
    Scp11SessionKeys,
    parse_key_agreement_response,
    receipt,
)
from gpchannel.scp.scp11_cert import split_certificates, verify_chain
from gpchannel.trace.formats import TraceExchange
from gpchannel.trace.scp11_checker import key_agreement_parameters

__all__ = ["Scp11Diagnosis", "scp11_doctor", "scp11_doctor_text"]


@dataclass(frozen=True, slots=True)
class Scp11Diagnosis:
    """One key agreement: ``card_chain`` / ``oce_chain`` / ``receipt`` are verdicts for a person ("" when there was
    nothing to check); ``session_keys`` the index (0-based) of the key set whose receipt verifies, if any."""

    index: int
    variant: str
    kvn: int
    card_chain: str
    oce_chain: str
    receipt: str
    session_keys: int | None
    ok: bool


def _chain_verdict(data: bytes, anchor: ec.EllipticCurvePublicKey | None, now: datetime.datetime, what: str) -> str:
    if not data:
        return f"no {what} in the trace before the key agreement"
    try:
        chain = split_certificates(data)
    except DecodeError as exc:
        return f"the {what} is malformed: {exc}"
    subjects = ", ".join(c.subject.rfc4514_string() for c in chain)
    if anchor is None:
        return f"{len(chain)} certificate(s) ({subjects}); no anchor given to verify them with"
    try:
        verify_chain(chain, anchor, now)
    except SecurityError as exc:
        return f"does not verify from the anchor given: {exc}"
    return f"verifies from the anchor given ({subjects})"


def scp11_doctor(
    exchanges: Sequence[TraceExchange],
    *,
    session_keys: Sequence[Scp11SessionKeys] = (),
    card_anchor: ec.EllipticCurvePublicKey | None = None,
    oce_anchor: ec.EllipticCurvePublicKey | None = None,
    now: datetime.datetime,
) -> list[Scp11Diagnosis]:
    """A diagnosis per answered key agreement of ``exchanges`` (see the module docstring)."""
    out: list[Scp11Diagnosis] = []
    card_data: dict[int, bytes] = {}
    oce_data: dict[int, bytes] = {}
    for exchange in exchanges:
        command, response = exchange.command, exchange.response
        channel = command.channel
        if response is None:
            continue
        if command.ins == INS_GET_DATA and (command.p1, command.p2) == (0xBF, 0x21) and response.sw == 0x9000:
            card_data[channel], oce_data[channel] = response.data, b""
            continue
        if command.ins == INS_PERFORM_SECURITY_OPERATION and not command.cla & 0x0C:
            oce_data[channel] = oce_data.get(channel, b"") + command.data
            continue
        params = key_agreement_parameters(command)
        if params is None:
            continue
        oce = _chain_verdict(oce_data.pop(channel, b""), oce_anchor, now, "OCE chain (PSO)")
        card = _chain_verdict(card_data.pop(channel, b""), card_anchor, now, "card chain (GET DATA BF21)")
        found: int | None = None
        if response.sw != 0x9000:
            verdict = f"the card refused the key agreement ({response.sw:04X})"
        else:
            try:
                epk_tlv, _, card_receipt = parse_key_agreement_response(response.data)
            except DecodeError as exc:
                verdict = f"the key agreement response is malformed: {exc}"
            else:
                data = command.data + epk_tlv
                for n, keys in enumerate(session_keys):
                    if constant_time_equal(receipt(keys.receipt_key, data), card_receipt):
                        found = n
                verdict = (
                    "no session keys given"
                    if not session_keys
                    else f"verifies with session key set {found + 1}"
                    if found is not None
                    else "verifies with none of the session key sets given"
                )
        if not params.variant.oce_authenticated:
            oce = ""
        failed = "does not verify" in card + oce or "malformed" in card + oce + verdict
        ok = not failed and response.sw == 0x9000 and (found is not None or not session_keys)
        out.append(Scp11Diagnosis(exchange.index, params.variant.label, command.p1, card, oce, verdict, found, ok))
    return out


def scp11_doctor_text(diagnoses: Sequence[Scp11Diagnosis]) -> str:
    """The listing of :func:`scp11_doctor`."""
    lines: list[str] = []
    for d in diagnoses:
        lines.append(f"exchange #{d.index}: {d.variant} key agreement, KVN {d.kvn:02X}: {'ok' if d.ok else 'FAILS'}")
        lines.append(f"  card chain: {d.card_chain}")
        if d.oce_chain:
            lines.append(f"  OCE chain:  {d.oce_chain}")
        lines.append(f"  receipt:    {d.receipt}")
    return "\n".join(lines) + "\n"
