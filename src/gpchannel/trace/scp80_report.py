"""SCP80 in the trace inspector's and the key doctor's reports: the packets of
:func:`gpchannel.trace.scp80_trace.decode_packets` as text and JSON, and the doctor's question for SCP80: which of
the candidate key sets' KID key verifies each command packet's RC/CC/DS (with which KIc key when it is ciphered;
ETSI TS 102 225 5.1). Only wire bytes, plain bytes, labels of key sets and verdicts appear: never keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gpchannel.errors import DecodeError
from gpchannel.ota import CommandPacket
from gpchannel.trace.scp80_trace import FoundPacket, OtaKeySet, OtaPacketReport, try_command

__all__ = ["OtaDiagnosis", "ota_doctor", "ota_doctor_json", "ota_doctor_text", "packets_json", "packets_text"]


def packets_json(reports: Sequence[OtaPacketReport]) -> list[dict[str, Any]]:
    """Each packet as plain JSON types (hex upper case)."""
    return [
        {
            "number": r.number,
            "index": r.index if r.index >= 0 else None,
            "line": r.line,
            "segments": r.segments,
            "packet": r.packet.hex().upper(),
            "spi": r.spi,
            "kic": r.kic,
            "kid": r.kid,
            "tar": r.tar,
            "counter": f"{r.counter:010X}" if r.counter is not None else None,
            "pcntr": r.pcntr,
            "keyset": r.keyset,
            "checks": list(r.checks),
            "script": r.script or None,
            "apdus": [str(a) for a in r.apdus],
            "por": r.por.hex().upper() if r.por is not None else None,
            "por_status": r.por_status,
            "por_counter": f"{r.por_counter:010X}" if r.por_counter is not None else None,
            "executed": r.executed,
            "responses": [str(a) for a in r.responses],
            "ok": r.failure is None,
            "failure": r.failure,
            "explanation": r.explanation,
            "notes": list(r.notes),
        }
        for r in reports
    ]


def packets_text(reports: Sequence[OtaPacketReport]) -> str:
    """A listing in the inspector's style: ``!!`` marks the packet where a check failed."""
    lines = ["", f"SCP80 (OTA): {len(reports)} command packet(s)"]
    for r in reports:
        mark = "!!" if r.failure is not None else "  "
        checks = f"  [{', '.join(c + ' ok' for c in r.checks)}]" if r.checks else ""
        where = f"exchange #{r.index}, line {r.line}" if r.index >= 0 else f"line {r.line}"
        sms = f", {r.segments} SMs joined" if r.segments > 1 else ""
        lines.append(f"{mark}packet {r.number} ({where}{sms}){checks}")
        if r.spi:
            counter = f"{r.counter:010X}" if r.counter is not None else "?"
            head = f"     SPI {r.spi} KIc {r.kic} KID {r.kid} TAR {r.tar} CNTR {counter} PCNTR {r.pcntr}"
            lines.append(head + (f" (key set: {r.keyset})" if r.keyset else ""))
        if r.apdus:
            lines.append(f"     remote APDUs ({r.script}):")
            lines.extend(f"       {a}" for a in r.apdus)
        if r.por_status is not None:
            executed = f", {r.executed} command(s) executed" if r.executed is not None else ""
            lines.append(f"     PoR: status {r.por_status}, CNTR {r.por_counter:010X}{executed}")
            lines.extend(f"       R: {a}" for a in r.responses)
        elif r.por is None:
            lines.append("     no PoR in the trace")
        if r.failure is not None:
            lines.append(f"  !! {r.failure}: {r.explanation}")
        lines.extend(f"     note: {n}" for n in r.notes)
    bad = next((r for r in reports if r.failure is not None), None)
    lines.append("")
    lines.append("every packet verifies" if bad is None else f"first failure: packet {bad.number}, {bad.failure}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class OtaDiagnosis:
    """One command packet: which candidate key sets verify it (``kid``: labels of the sets whose KID key gives
    the RC/CC/DS; ``kic``: the sets whose KIc key deciphers it, for a ciphered packet)."""

    number: int
    line: int
    spi: str
    kic_byte: str
    kid_byte: str
    tar: str
    kid: tuple[str, ...]
    kic: tuple[str, ...]
    explanation: str

    @property
    def ok(self) -> bool:
        return bool(self.kid)


def _pair(kic: OtaKeySet, kid: OtaKeySet) -> OtaKeySet:
    """The KIc half of one set with the KID half of another."""
    a, b = kic.keyset, kid.keyset
    both = replace(b, kic_key=a.kic_key, cipher=a.cipher, allow_single_des=a.allow_single_des or b.allow_single_des)
    return OtaKeySet(kid.kvn, both, f"{kic.label} / {kid.label}")


def ota_doctor(found: Sequence[FoundPacket], candidates: Sequence[OtaKeySet]) -> list[OtaDiagnosis]:
    """Try each candidate's KID key on each command packet (with each candidate's KIc key when it is ciphered)."""
    out: list[OtaDiagnosis] = []
    for number, item in enumerate(found, start=1):
        try:
            packet = CommandPacket.from_bytes(item.packet)
        except (DecodeError, ValueError) as exc:
            out.append(OtaDiagnosis(number, item.line, "", "", "", "", (), (), f"not a command packet: {exc}"))
            continue
        kid_ok: list[str] = []
        kic_ok: list[str] = []
        for kid in candidates:
            for kic in candidates if packet.spi.ciphered else [kid]:
                command, _ = try_command(packet, _pair(kic, kid).keyset)
                if command is not None:
                    kid_ok.append(kid.label)
                    if packet.spi.ciphered:
                        kic_ok.append(kic.label)
        if kid_ok:
            explanation = f"the RC/CC/DS verifies with the KID key of {', '.join(dict.fromkeys(kid_ok))}"
            if kic_ok:
                explanation += f"; deciphered with the KIc key of {', '.join(dict.fromkeys(kic_ok))}"
        else:
            explanation = (
                f"none of the {len(candidates)} key set(s) verifies the RC/CC/DS"
                + (" (with any of their KIc keys)" if packet.spi.ciphered else "")
                + ": the card's KID key is another one, or a byte of the packet changed"
            )
        out.append(
            OtaDiagnosis(
                number,
                item.line,
                packet.spi.to_bytes().hex().upper(),
                packet.kic.to_bytes().hex().upper(),
                packet.kid.to_bytes().hex().upper(),
                packet.tar.hex().upper(),
                tuple(dict.fromkeys(kid_ok)),
                tuple(dict.fromkeys(kic_ok)),
                explanation,
            )
        )
    return out


def ota_doctor_json(diagnoses: Sequence[OtaDiagnosis]) -> list[dict[str, Any]]:
    return [
        {
            "number": d.number,
            "line": d.line,
            "spi": d.spi,
            "kic": d.kic_byte,
            "kid": d.kid_byte,
            "tar": d.tar,
            "kid_matches": list(d.kid),
            "kic_matches": list(d.kic),
            "ok": d.ok,
            "explanation": d.explanation,
        }
        for d in diagnoses
    ]


def ota_doctor_text(diagnoses: Sequence[OtaDiagnosis]) -> str:
    lines = []
    for d in diagnoses:
        verdict = "MATCH" if d.ok else "no match"
        lines.append(
            f"SCP80 packet {d.number} (line {d.line}): SPI {d.spi} KIc {d.kic_byte} KID {d.kid_byte} TAR {d.tar}"
        )
        lines.append(f"  {verdict}: {d.explanation}")
    return "\n".join(lines) + "\n"
