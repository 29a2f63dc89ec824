"""The key doctor for SCP10 sessions of a trace (GP Card Specification 2.2.1, Appendix F): which of the candidate
keys fits each session, without a card.

Each candidate is tried alone through the inspector (:mod:`gpchannel.trace.scp10_checker`):

- a card private key (SK.SD.AUT) fits when it opens PSO [decipher] (key transport, Table F-32) or the off-card
  entity's signature in EXTERNAL AUTHENTICATE (key agreement, Table F-10; PK.OCE.AUT read from the certificate
  the trace shows in PSO [verify certificate]);
- an off-card entity private key (SK.OCE.AUT) fits when it opens the card's signature in the INTERNAL
  AUTHENTICATE answer (key agreement, Table F-6; PK.SD.AUT read from the GET DATA 7F21 answer). Key transport
  enciphers nothing for the off-card entity, so there it cannot be told;
- a session key set fits when the first C-MAC verifies with it (F.3.2.1).

A pure function; the report holds labels and verdicts, never keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpchannel.crypto.rsa import RsaPrivateKey
from gpchannel.scp.common import ScpProtocol
from gpchannel.trace.formats import TraceExchange
from gpchannel.trace.model import KeyOptions
from gpchannel.trace.scp10_checker import Scp10Secrets, Scp10SessionKeys
from gpchannel.trace.session import decode_exchanges
from gpchannel.trace.verifiers import Failure

__all__ = ["Scp10Candidates", "Scp10Diagnosis", "scp10_doctor", "scp10_doctor_text"]


@dataclass(frozen=True, slots=True)
class Scp10Candidates:
    """Labelled candidate keys (labels are what the report shows: a file name, "set 2")."""

    card_keys: tuple[tuple[str, RsaPrivateKey], ...] = ()
    oce_keys: tuple[tuple[str, RsaPrivateKey], ...] = ()
    session_keys: tuple[tuple[str, Scp10SessionKeys], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.card_keys or self.oce_keys or self.session_keys)


@dataclass(frozen=True, slots=True)
class Scp10Diagnosis:
    """One SCP10 session: ``verdicts`` are ``(kind, label, verdict)`` with verdict ``match``, ``no`` or
    ``cannot tell``; ``ok`` when every kind tried has a match."""

    session: int
    index: int
    verdicts: tuple[tuple[str, str, str], ...]
    explanation: str
    ok: bool


_OPENED = {
    "card": ("session keys recovered", "OES recovered"),
    "oce": ("CS recovered",),
    "session": ("C-MAC",),
}
_REFUSED = (Failure.WRONG_KEY, Failure.SIGNATURE, Failure.C_MAC)


def _verdicts(exchanges: Sequence[TraceExchange], kind: str, secrets: Scp10Secrets) -> dict[int, str]:
    """Session number -> verdict of one candidate on every SCP10 session of the trace."""
    report = decode_exchanges(exchanges, KeyOptions(scp10=secrets))
    out: dict[int, str] = {}
    for session in report.sessions:
        if session.protocol != ScpProtocol.SCP10:
            continue
        checks = {c for e in report.exchanges if e.session == session.number for c in e.checks}
        if any(c in checks for c in _OPENED[kind]):
            out[session.number] = "match"
        elif session.failure in _REFUSED:
            out[session.number] = "no"
        else:
            out[session.number] = "cannot tell"
    return out


def scp10_doctor(exchanges: Sequence[TraceExchange], candidates: Scp10Candidates) -> list[Scp10Diagnosis]:
    """A diagnosis per SCP10 session of ``exchanges`` (see the module docstring)."""
    tried: list[tuple[str, str, dict[int, str]]] = []
    for label, key in candidates.card_keys:
        tried.append(("card key", label, _verdicts(exchanges, "card", Scp10Secrets(card_key=key))))
    for label, key in candidates.oce_keys:
        tried.append(("OCE key", label, _verdicts(exchanges, "oce", Scp10Secrets(oce_key=key))))
    for label, keys in candidates.session_keys:
        tried.append(("session keys", label, _verdicts(exchanges, "session", Scp10Secrets(session_keys=(keys,)))))
    base = decode_exchanges(exchanges, KeyOptions())
    out: list[Scp10Diagnosis] = []
    for session in base.sessions:
        if session.protocol != ScpProtocol.SCP10:
            continue
        verdicts = tuple((kind, label, found.get(session.number, "cannot tell")) for kind, label, found in tried)
        kinds = {kind for kind, _, _ in verdicts}
        matched = [f"{kind} {label}" for kind, label, verdict in verdicts if verdict == "match"]
        decided = {kind for kind, _, verdict in verdicts if verdict != "cannot tell"}
        ok = all(any(k == kind and v == "match" for k, _, v in verdicts) for kind in decided) and bool(matched)
        if matched:
            explanation = "fits: " + ", ".join(matched)
        elif not decided and kinds:
            explanation = "no candidate could be tested on this session (see the module's rules: key transport gives "
            explanation += "the off-card entity's key nothing to open)"
        else:
            explanation = "none of the candidates fits this session"
        out.append(Scp10Diagnosis(session.number, session.first, verdicts, explanation, ok))
    return out


def scp10_doctor_text(diagnoses: Sequence[Scp10Diagnosis]) -> str:
    lines: list[str] = []
    for d in diagnoses:
        lines.append(f"SCP10 session {d.session} (exchange #{d.index}): {'ok' if d.ok else 'FAILS'}")
        lines.extend(f"  {verdict:11} {kind} {label}" for kind, label, verdict in d.verdicts)
        lines.append(f"  {d.explanation}")
    return "\n".join(lines) + "\n"
