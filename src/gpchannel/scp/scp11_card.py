"""SCP11 on the card: the Security Domain side of GP Card Specification v2.3, Amendment F (SCP11a, b, c).

Sequence on one logical channel (commands in :mod:`gpchannel.scp.scp11`)::

    GET DATA BF21 A6{83 KID KVN}         the chain of SK.SD.ECKA (served by the Security Domain, no session needed)
    PSO 2A KVN KID|80 ... KID            11a / 11c: the OCE chain, verified from PK.CA-KLOC.ECDSA (KID, KVN)
    INTERNAL AUTHENTICATE 88 KVN 13      11b: key agreement, ePK.SD and the receipt answered -> OPEN
    MUTUAL AUTHENTICATE 82 KVN 11|15     11a / 11c: the same with the OCE's verified static key -> OPEN
    ... SCP03 secure messaging (Amendment D 6.2.4-6.2.7), chaining value = the receipt ...

Status words: 6A88 for a key or CA reference the Security Domain does not hold, 6A80 for malformed data (a point
not on the curve included), 6982 for a certificate that does not verify (another CA, expired, not in the
allowlist), 6985 for MUTUAL AUTHENTICATE without a verified OCE certificate, 6A86 for P1/P2 that name no SCP11
key of the right variant. Any failure discards the OCE key verified so far; any secure messaging failure
terminates the session (6982 from then on), as in SCP03. Each key agreement uses a fresh ephemeral key, so a
replayed command opens a session whose keys the replayer does not have.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import Tlv
from gpchannel.errors import (
    CardError,
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    IntegrityError,
    ReferencedDataNotFound,
    SecurityError,
    SecurityNotSatisfied,
    UnsupportedError,
)
from gpchannel.scp.common import CardChannel, ChannelState, ScpProtocol
from gpchannel.scp.scp03 import decrypt_sensitive_data, encrypt_sensitive_data
from gpchannel.scp.scp03_sm import Scp03Messaging
from gpchannel.scp.scp11 import (
    TAG_EPK,
    TAG_RECEIPT,
    Scp11SessionKeys,
    Scp11Variant,
    derive_session_keys,
    ecdh,
    encode_point,
    parse_key_agreement_command,
    public_key_from_point,
    receipt,
)
from gpchannel.scp.scp11_cert import split_certificates, verify_chain

__all__ = ["Scp11CaKey", "Scp11Card", "Scp11CardConfig", "Scp11SdKey"]


@dataclass(frozen=True, slots=True)
class Scp11SdKey:
    """SK.SD.ECKA (KID 11, 13 or 15) with its certificate chain (CA first), served by GET DATA BF21."""

    kid: int
    kvn: int
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True, slots=True)
class Scp11CaKey:
    """PK.CA-KLOC.ECDSA (KID 10 or 20-2F): it verifies OCE chains; ``allowlist`` (serial numbers), when set, is
    the only OCE certificates it accepts."""

    kid: int
    kvn: int
    public_key: ec.EllipticCurvePublicKey
    allowlist: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class Scp11CardConfig:
    keys: tuple[Scp11SdKey, ...]
    cas: tuple[Scp11CaKey, ...] = ()

    def key(self, kid: int, kvn: int) -> Scp11SdKey | None:
        return next((k for k in self.keys if k.kid == kid and (kvn == 0 or k.kvn == kvn)), None)

    def ca(self, kid: int, kvn: int) -> Scp11CaKey | None:
        return next((c for c in self.cas if c.kid == kid and (kvn == 0 or c.kvn == kvn)), None)


def _generate(curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve)


class Scp11Card(CardChannel):
    """The Security Domain side of one SCP11 session on one logical channel."""

    protocol = ScpProtocol.SCP11

    def __init__(
        self,
        config: Scp11CardConfig,
        now: Callable[[], datetime.datetime],
        *,
        ephemeral: Callable[[ec.EllipticCurve], ec.EllipticCurvePrivateKey] = _generate,
        channel: int = 0,
    ) -> None:
        super().__init__(channel)
        self.config = config
        self._now = now
        self._ephemeral = ephemeral
        self._pending: tuple[Scp11CaKey, ec.EllipticCurvePublicKey, list[x509.Certificate]] | None = None
        self._oce: tuple[ec.EllipticCurvePublicKey, int] | None = None
        self.sm: Scp03Messaging | None = None
        self._keys: Scp11SessionKeys | None = None
        self.variant: Scp11Variant | None = None
        self.oce_serial: int | None = None

    def _abort(self, error: CardError) -> NoReturn:
        self._pending, self._oce, self.sm, self._keys = None, None, None, None
        self._fail(error)

    @property
    def sequence_counter(self) -> int:
        """SCP11 keeps no sequence counter."""
        return 0

    def initialize_update(self, command: CommandApdu) -> ResponseApdu:
        raise ConditionsNotSatisfied("SCP11 opens with a key agreement, not INITIALIZE UPDATE")

    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        raise ConditionsNotSatisfied("SCP11 opens with a key agreement, not EXTERNAL AUTHENTICATE")

    # -- the OCE chain --------------------------------------------------------------------------------------------
    def perform_security_operation(self, command: CommandApdu) -> ResponseApdu:
        """One OCE certificate (P1 = CA-KLOC KVN, P2 = its KID, b8 = more follow); a new chain ends any session."""
        kid, more = command.p2 & 0x7F, bool(command.p2 & 0x80)
        if self._pending is None or self._pending[0].kid != kid or self._pending[0].kvn != command.p1:
            if self.state is not ChannelState.IDLE:
                self.terminate()
                self.state = ChannelState.IDLE
            ca = self.config.ca(kid, command.p1)
            if ca is None:
                self._abort(ReferencedDataNotFound(f"no CA-KLOC key KID {kid:02X} KVN {command.p1:02X}"))
            self._pending = (ca, ca.public_key, [])
            self._oce = None
        ca, key, chain = self._pending
        try:
            certs = split_certificates(command.data)
            if len(certs) != 1:
                raise DecodeError("one certificate per PERFORM SECURITY OPERATION")
            verified = verify_chain(certs, key, self._now(), allowlist=None if more else ca.allowlist)
        except DecodeError as exc:
            self._abort(IncorrectData(f"OCE certificate: {exc}"))
        except SecurityError as exc:
            self._abort(SecurityNotSatisfied(f"OCE certificate: {exc}"))
        chain.append(certs[0])
        if more:
            self._pending = (ca, verified.public_key, chain)
        else:
            self._pending = None
            self._oce = (verified.public_key, verified.serial)
        return ResponseApdu(b"", 0x9000)

    # -- key agreement --------------------------------------------------------------------------------------------
    def key_agreement(self, command: CommandApdu) -> ResponseApdu:
        """INTERNAL AUTHENTICATE (11b) or MUTUAL AUTHENTICATE (11a, 11c): P1 = KVN, P2 = KID of SK.SD.ECKA."""
        self.terminate()
        self.state = ChannelState.IDLE
        oce, self._oce = self._oce, None
        self._pending = None
        sd_key = self.config.key(command.p2, command.p1)
        if sd_key is None:
            self._abort(ReferencedDataNotFound(f"no SCP11 key KID {command.p2:02X} KVN {command.p1:02X}"))
        try:
            params, epk = parse_key_agreement_command(command.data)
            epk_oce = public_key_from_point(sd_key.private_key.curve, epk)
            level = params.level
        except (DecodeError, UnsupportedError) as exc:
            self._abort(IncorrectData(f"key agreement data: {exc}"))
        variant = params.variant
        if variant.kid != sd_key.kid or variant.ins != command.ins:
            self._abort(IncorrectP1P2(f"{variant.label} does not use INS {command.ins:02X} with KID {sd_key.kid:02X}"))
        if variant.oce_authenticated:
            if oce is None:
                self._abort(ConditionsNotSatisfied(f"{variant.label} needs the OCE certificate (PSO) first"))
            static, self.oce_serial = oce
        else:
            static, self.oce_serial = epk_oce, None
        esk = self._ephemeral(sd_key.private_key.curve)
        try:
            keys = derive_session_keys(ecdh(esk, epk_oce), ecdh(sd_key.private_key, static), params)
        except (DecodeError, UnsupportedError) as exc:
            self._abort(IncorrectData(f"key agreement: {exc}"))
        epk_tlv = Tlv(TAG_EPK, encode_point(esk.public_key())).to_bytes()
        card_receipt = receipt(keys.receipt_key, command.data + epk_tlv)
        self._keys, self.variant = keys, variant
        self.sm = Scp03Messaging(keys.s_enc, keys.s_mac, keys.s_rmac, level, chain=card_receipt)
        self.level = level
        self.state = ChannelState.OPEN
        return ResponseApdu(epk_tlv + Tlv(TAG_RECEIPT, card_receipt).to_bytes(), 0x9000)

    # -- secure messaging -----------------------------------------------------------------------------------------
    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """SCP03's C-MAC and C-DECRYPTION check; 6982 and TERMINATED on failure."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        try:
            return self.sm.unwrap_command(command)
        except IntegrityError as exc:
            self._abort(SecurityNotSatisfied(str(exc)))

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        if not self.sm.exchanged:
            self._abort(SecurityNotSatisfied("no command was unwrapped in this session"))
        return self.sm.wrap_response(response)

    def encrypt_data(self, data: bytes) -> bytes:
        """Sensitive data under S-DEK (AES-CBC, zero IV), for the secure channel service's ``encryptData``."""
        self._require(ChannelState.OPEN)
        assert self._keys is not None
        return encrypt_sensitive_data(self._keys.s_dek, data)

    def decrypt_key(self, data: bytes, key_length: int | None = None) -> bytes:
        """Key material sent under S-DEK (AES-CBC, zero IV); 6A80 when it does not fit."""
        self._require(ChannelState.OPEN)
        assert self._keys is not None
        try:
            return decrypt_sensitive_data(self._keys.s_dek, data, key_length)
        except DecodeError as exc:
            raise IncorrectData(str(exc)) from None
