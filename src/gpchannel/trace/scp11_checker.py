"""The trace checker of SCP11 sessions (GlobalPlatform Card Specification v2.3, Amendment F; see docs/scp11.md).

An SCP11 session starts at its key agreement command: INTERNAL AUTHENTICATE (INS 88, SCP11b) or MUTUAL
AUTHENTICATE (INS 82, SCP11a/c) without secure messaging, whose data is ``A6 { 90 11 .. } 5F49 ..``; the card
answers ``5F49 (ePK.SD.ECKA) 86 (receipt)``. Both shared secrets involve an ephemeral private key
(ShSee = ECDH(eSK.OCE, ePK.SD)), which no trace holds: a recorded session is checked with its session keys (the
receipt key, S-ENC, S-MAC, S-RMAC, S-DEK, as the X9.63 KDF gives them), given as :func:`parse_session_keys` reads
them. The receipt, AES-CMAC over the key agreement data, tells which of the given key sets is the session's; the
commands and responses that follow are SCP03's secure messaging (Amendment D 6.2.4 to 6.2.7), the MAC chaining
value starting at the receipt, so the checks are :class:`~gpchannel.trace.verifiers.Scp03Checker`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.errors import DecodeError
from gpchannel.scp.common import ScpProtocol
from gpchannel.scp.scp03 import Scp03SessionKeys
from gpchannel.scp.scp11 import (
    INS_INTERNAL_AUTHENTICATE,
    INS_MUTUAL_AUTHENTICATE,
    KeyAgreementParameters,
    Scp11SessionKeys,
    parse_key_agreement_command,
    parse_key_agreement_response,
    receipt,
)
from gpchannel.trace.verifiers import Failure, Mismatch, Scp03Checker

__all__ = ["Scp11Checker", "key_agreement_parameters", "parse_session_keys"]

_SEPARATORS = re.compile(r"[\s:,]+")


def parse_session_keys(text: str) -> Scp11SessionKeys:
    """Five AES keys in hex, in the KDF's order (receipt key, S-ENC, S-MAC, S-RMAC, S-DEK), separated by ``:``,
    ``,`` or spaces, or as one string of 80, 120 or 160 bytes; DecodeError otherwise (never echoing the text)."""
    parts = [p for p in _SEPARATORS.split(text.strip()) if p]
    try:
        raw = [bytes.fromhex(p) for p in parts]
    except ValueError:
        raise DecodeError("SCP11 session keys must be hexadecimal") from None
    if len(raw) == 1 and len(raw[0]) in (80, 120, 160):
        n = len(raw[0]) // 5
        raw = [raw[0][i * n : (i + 1) * n] for i in range(5)]
    if len(raw) != 5 or len({len(k) for k in raw}) != 1 or len(raw[0]) not in (16, 24, 32):
        raise DecodeError("SCP11 session keys are five AES keys of one length (receipt, S-ENC, S-MAC, S-RMAC, S-DEK)")
    return Scp11SessionKeys(*raw)


def key_agreement_parameters(command: CommandApdu) -> KeyAgreementParameters | None:
    """The parameters when ``command`` is an SCP11 key agreement command, None when it is something else."""
    if command.ins not in (INS_INTERNAL_AUTHENTICATE, INS_MUTUAL_AUTHENTICATE) or not command.cla & 0x80:
        return None
    if cla_has_secure_messaging(command.cla) or command.data[:1] != b"\xa6":
        return None
    try:
        params, _ = parse_key_agreement_command(command.data)
    except DecodeError:
        return None
    return params


class Scp11Checker(Scp03Checker):
    """The checks of one SCP11 session: the receipt picks the key set, then SCP03 messaging at the key usage's
    level with 8-byte MACs (the chaining value starts at the receipt, the encryption counter at 1)."""

    protocol = ScpProtocol.SCP11

    def __init__(self, candidates: Sequence[Scp11SessionKeys], command: CommandApdu, response: ResponseApdu) -> None:
        """Mismatch(MALFORMED) for a response without ``5F49 86``; Mismatch(RECEIPT) when no key set verifies."""
        params, _ = parse_key_agreement_command(command.data)
        try:
            epk_tlv, _, card_receipt = parse_key_agreement_response(response.data)
        except DecodeError as exc:
            raise Mismatch(Failure.MALFORMED, f"the key agreement response is malformed: {exc}") from None
        data = command.data + epk_tlv
        found = next((k for k in candidates if constant_time_equal(receipt(k.receipt_key, data), card_receipt)), None)
        if found is None:
            raise Mismatch(
                Failure.RECEIPT,
                f"the receipt does not verify with any of the {len(candidates)} SCP11 session key set(s) given: "
                "they are not this session's (each session has its own, from ephemeral keys), or a byte of the "
                "key agreement changed",
            )
        self.params = params
        self.session_keys = found
        self.i = 0
        self.n = 8
        self.keys = Scp03SessionKeys(found.s_enc, found.s_mac, found.s_rmac)
        self.level = params.level
        self.chain = card_receipt
        self.previous_chain = bytes(16)
        self.counter = 0

    @property
    def i_param(self) -> int | None:
        return None

    def check_card_cryptogram(self) -> None:
        """SCP11 has no card cryptogram: the receipt, checked when the checker is made, stands for it."""

    def external_authenticate(self, command: CommandApdu) -> None:
        raise Mismatch(Failure.MALFORMED, "SCP11 has no EXTERNAL AUTHENTICATE: the session opens at the receipt")
