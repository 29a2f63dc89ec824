"""The key doctor: which key, used how, reproduces the card cryptogram of one INITIALIZE UPDATE exchange.

Given the INITIALIZE UPDATE command (its data is the host challenge) and the card's response, the doctor tries the
key as the static key set and as a master key under every diversification scheme gpchannel knows (EMV CPS 1.1,
VISA2, KDF3; :mod:`gpchannel.crypto.diversification`), with the KVN and i the card reported, and says which
combination reproduces the card cryptogram (GP 2.1.1 D.3.2.1, GP 2.2.1 E.4.2.1, Amendment D 6.2.2.2), or that none
does. It needs no EXTERNAL AUTHENTICATE, so nothing counts against the card's retry limit. A pure function: the
reports hold key check values, never keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification, diversify
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import DecodeError, UnsupportedError
from gpchannel.scp.common import InitializeUpdateResponse, ScpProtocol, protocol_name
from gpchannel.trace.checkers import CHECKERS, checker_for
from gpchannel.trace.formats import TraceExchange
from gpchannel.trace.verifiers import Mismatch

__all__ = ["DoctorAttempt", "DoctorReport", "doctor", "doctor_exchanges"]


@dataclass(frozen=True, slots=True)
class DoctorAttempt:
    """One way of using the key: ``diversification`` NONE means the key is the static key set itself.

    ``key_check_values`` are the KCVs of the card keys (ENC, MAC, DEK) this way gives; empty when the scheme does
    not apply to the key (``note`` says why). ``i_param`` is the SCP02 i (one key or three) that matched.
    """

    diversification: Diversification
    matches: bool
    key_check_values: tuple[bytes, ...] = ()
    i_param: int | None = None
    note: str = ""

    @property
    def role(self) -> str:
        return "static key" if self.diversification is Diversification.NONE else "master key"


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """What the card reported and how each attempt went; ``match`` is the first attempt that reproduced it."""

    protocol: int | None
    kvn: int | None
    i_param: int | None
    key_diversification_data: bytes
    sequence_counter: bytes | None
    attempts: tuple[DoctorAttempt, ...]
    explanation: str

    @property
    def match(self) -> DoctorAttempt | None:
        return next((a for a in self.attempts if a.matches), None)


_SCHEMES = (Diversification.NONE, Diversification.EMV, Diversification.VISA2, Diversification.KDF3)


def _attempt(
    keys: StaticKeys, scheme: Diversification, host_challenge: bytes, parsed: InitializeUpdateResponse
) -> DoctorAttempt:
    card_type = KeyType.AES if parsed.protocol is ScpProtocol.SCP03 else KeyType.DES3
    try:
        if scheme is Diversification.NONE:
            card_keys = replace(keys, key_type=card_type, kvn=parsed.kvn)
        else:
            master_type = KeyType.AES if scheme is Diversification.KDF3 else KeyType.DES3
            master = replace(keys, key_type=master_type, kvn=parsed.kvn)
            card_keys = replace(diversify(master, scheme, parsed.key_diversification_data), key_type=card_type)
        kcvs = card_keys.kcvs()
        checker = checker_for(card_keys, host_challenge, parsed, None, what="the key doctor does not know")
    except (UnsupportedError, ValueError, Mismatch) as exc:
        return DoctorAttempt(scheme, False, note=f"does not apply: {exc}")
    try:
        checker.check_card_cryptogram()
    except Mismatch:
        return DoctorAttempt(scheme, False, kcvs, note="the card cryptogram does not verify")
    i = checker.i_param if parsed.protocol is ScpProtocol.SCP02 else None
    return DoctorAttempt(scheme, True, kcvs, i, "reproduces the card cryptogram")


def doctor(initialize_update: CommandApdu, response: ResponseApdu, key: bytes | StaticKeys) -> DoctorReport:
    """Try ``key`` (one key for ENC, MAC and DEK, or a key set) every way on one INITIALIZE UPDATE exchange.

    A refused INITIALIZE UPDATE gives a report without attempts that explains the status word; a response that is
    not an INITIALIZE UPDATE response raises DecodeError. A protocol without a trace checker (SCP10, unknown):
    UnsupportedError.
    """
    host_challenge = initialize_update.data
    if initialize_update.ins != 0x50:
        raise DecodeError(f"INS {initialize_update.ins:02X} is not INITIALIZE UPDATE (50)", offset=1)
    if response.sw != 0x9000:
        reason = {
            0x6A88: "no key set with the KVN in P1: try KVN 00 (the card's default) or the KVN you expect",
            0x6982: "security status not satisfied: the card may be locked or its key set blocked",
            0x6983: "the authentication method is blocked",
            0x6985: "conditions of use not satisfied (sequence counter exhausted?)",
        }.get(response.sw, "the card refused it")
        return DoctorReport(None, None, None, b"", None, (), f"INITIALIZE UPDATE answered {response.sw:04X}: {reason}")
    parsed = InitializeUpdateResponse.from_bytes(response.data)
    if parsed.protocol not in CHECKERS:
        raise UnsupportedError(f"the key doctor does not know {protocol_name(parsed.protocol)}")
    if isinstance(key, StaticKeys):
        keys = key
    else:
        key_type = KeyType.DES3 if len(key) in (16, 24) and parsed.protocol is not ScpProtocol.SCP03 else KeyType.AES
        keys = StaticKeys.single(bytes(key), parsed.kvn, key_type)
    attempts = tuple(_attempt(keys, scheme, host_challenge, parsed) for scheme in _SCHEMES)
    match = next((a for a in attempts if a.matches), None)
    where = f"{protocol_name(parsed.protocol)} key set {parsed.kvn:02X}"
    if parsed.i_param is not None:
        where += f" (i={parsed.i_param:02X})"
    if match is None:
        explanation = (
            f"no combination reproduces the card cryptogram of {where}: this key is not the card's key, under any "
            "diversification gpchannel knows (none, EMV, VISA2, KDF3); check the KVN, or ask for the right key"
        )
    else:
        explanation = f"the key works as {match.role}"
        if match.diversification is not Diversification.NONE:
            explanation += f" with {match.diversification.name} diversification"
        explanation += f" for {where}"
        if match.i_param is not None and not keys.enc == keys.mac == keys.dek:
            explanation += f"; SCP02 with {'three keys' if match.i_param & 0x01 else 'one base key'}"
    return DoctorReport(
        parsed.protocol,
        parsed.kvn,
        parsed.i_param,
        parsed.key_diversification_data,
        parsed.sequence_counter,
        attempts,
        explanation,
    )


def doctor_exchanges(
    exchanges: Sequence[TraceExchange], key: bytes | StaticKeys
) -> list[tuple[TraceExchange, DoctorReport]]:
    """:func:`doctor` on every answered INITIALIZE UPDATE of a trace (``parse_trace`` output), in order.

    An INITIALIZE UPDATE whose response is not one (malformed, unknown protocol) is left out.
    """
    out = []
    for exchange in exchanges:
        command, response = exchange.command, exchange.response
        if command.ins != 0x50 or not command.cla & 0x80 or command.cla & 0x0C or response is None:
            continue
        try:
            out.append((exchange, doctor(command, response, key)))
        except (DecodeError, UnsupportedError):
            continue
    return out
