"""SCP11 on the host: the off-card entity (OCE) side of GP Card Specification v2.3, Amendment F (SCP11a, b, c).

Each step builds a command or checks a response (sans-I/O); :meth:`Scp11Host.run` drives them through an injected
``transmit``::

    get_certificates()        -> GET DATA BF21 A6{83 KID KVN}      receive_certificates(): verify, keep PK.SD.ECKA
    certificate_commands()    -> PSO 2A KVN KID(|80) per cert      receive_ok()            (11a, 11c; chained)
    key_agreement()           -> INTERNAL (11b) / MUTUAL (11a, c) AUTHENTICATE
                                                                   receive_key_agreement(): keys, receipt -> OPEN
    wrap() / unwrap()         SCP03 secure messaging (Amendment D 6.2.4-6.2.7), chaining value = the receipt

The card's chain is verified against ``card_anchor`` (the CA-KLCC public key) unless ``sd_public_key`` is given
(a key validated before). Every failure terminates the channel; the receipt is compared in constant time.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.errors import (
    AuthenticationError,
    CardStatusError,
    DecodeError,
    IntegrityError,
    LocalProtocolError,
    SecurityError,
    UnsupportedError,
)
from gpchannel.scp.common import ChannelState, ScpProtocol, SteppedHostChannel, Transmit
from gpchannel.scp.scp03 import encrypt_sensitive_data
from gpchannel.scp.scp03_sm import Scp03Messaging
from gpchannel.scp.scp10 import chain_command
from gpchannel.scp.scp11 import (
    INS_GET_DATA,
    INS_PERFORM_SECURITY_OPERATION,
    KeyAgreementParameters,
    Scp11SessionKeys,
    Scp11Variant,
    certificate_store_query,
    derive_session_keys,
    ecdh,
    encode_point,
    key_agreement_command_data,
    parse_key_agreement_response,
    public_key_from_point,
    receipt,
)
from gpchannel.scp.scp11_cert import concatenate, split_certificates, verify_chain

__all__ = ["EphemeralKeys", "Scp11Host"]

EphemeralKeys = Callable[[ec.EllipticCurve], ec.EllipticCurvePrivateKey]
"""Makes the OCE's ephemeral key pair (injected so that a session can be replayed from vectors)."""


def _generate(curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve)


class Scp11Host(SteppedHostChannel):
    """The OCE side of one SCP11 session with the Security Domain key ``(variant.kid, kvn)``.

    ``oce_key`` (SK.OCE.ECKA) and ``oce_chain`` (CA first, the OCE certificate last) are needed for 11a and 11c;
    ``oce_ca`` is the (KID, KVN) of the card's PK.CA-KLOC.ECDSA that verifies that chain (PSO P1 and P2).
    """

    protocol = ScpProtocol.SCP11

    def __init__(
        self,
        variant: Scp11Variant,
        *,
        kvn: int,
        now: datetime.datetime,
        card_anchor: ec.EllipticCurvePublicKey | None = None,
        sd_public_key: ec.EllipticCurvePublicKey | None = None,
        oce_key: ec.EllipticCurvePrivateKey | None = None,
        oce_chain: Sequence[x509.Certificate] = (),
        oce_ca: tuple[int, int] = (0x10, 0x00),
        params: KeyAgreementParameters | None = None,
        ephemeral: EphemeralKeys = _generate,
        channel: int = 0,
    ) -> None:
        params = params or KeyAgreementParameters(variant)
        if params.variant is not variant:
            raise ValueError("the key agreement parameters name another variant")
        super().__init__(params.level, channel)
        if variant.oce_authenticated and (oce_key is None or not oce_chain):
            raise ValueError(f"{variant.label} needs the OCE's private key and certificate chain")
        if not 0 <= kvn <= 0xFF:
            raise ValueError(f"a KVN is a byte, got {kvn}")
        if card_anchor is None and sd_public_key is None:
            raise ValueError("the card's key needs a trust anchor (CA-KLCC) or a validated PK.SD.ECKA")
        self.variant = variant
        self.kvn = kvn
        self.now = now
        self.card_anchor = card_anchor
        self.sd_public_key = sd_public_key
        self._oce_key = oce_key
        self.oce_chain = tuple(oce_chain)
        self.oce_ca = oce_ca
        self.params = params
        self._ephemeral = ephemeral
        self._esk: ec.EllipticCurvePrivateKey | None = None
        self._command_data = b""
        self.sm: Scp03Messaging | None = None
        self._keys: Scp11SessionKeys | None = None
        self.receipt = b""

    def __repr__(self) -> str:
        return f"Scp11Host({self.variant.label}, state={self.state.value}, channel={self.channel})"

    def _cla(self) -> int:
        return cla_for_channel(0x80, self.channel)

    def receive_ok(self, response: ResponseApdu) -> None:
        """An initiation step: 9000, or the channel fails with CardStatusError."""
        self._require(ChannelState.IDLE)
        if response.sw != 0x9000:
            self._fail(CardStatusError(response.sw, f"{self.variant.label} initiation refused"))

    # -- the card's certificates ----------------------------------------------------------------------------------
    def get_certificates(self) -> CommandApdu:
        """GET DATA BF21 with ``A6 { 83 KID KVN }``: the Security Domain's chain for the key."""
        data = certificate_store_query(self.variant.kid, self.kvn)
        return CommandApdu(self._cla(), INS_GET_DATA, 0xBF, 0x21, data, le=256)

    def receive_certificates(self, response: ResponseApdu) -> None:
        """Verify the chain from the CA-KLCC anchor at ``now``; keep PK.SD.ECKA (its last certificate's key)."""
        self.receive_ok(response)
        if self.card_anchor is None:
            raise LocalProtocolError("no CA-KLCC trust anchor to verify the card's certificates with")
        try:
            chain = split_certificates(response.data)
            verified = verify_chain(chain, self.card_anchor, self.now)
        except (DecodeError, SecurityError) as exc:
            self._fail(AuthenticationError(f"the card's certificate chain: {exc}"))
        self.sd_public_key = verified.public_key

    # -- the OCE's certificates (11a, 11c) ------------------------------------------------------------------------
    def certificate_commands(self, max_data: int = 255) -> list[CommandApdu]:
        """PERFORM SECURITY OPERATION per certificate: P1 = the CA-KLOC KVN, P2 = its KID with b8 set on all but
        the last; a certificate longer than ``max_data`` goes as an ISO/IEC 7816-4 chain (CLA b5)."""
        kid, kvn = self.oce_ca
        out: list[CommandApdu] = []
        for n, cert in enumerate(self.oce_chain):
            p2 = kid | (0x80 if n < len(self.oce_chain) - 1 else 0x00)
            command = CommandApdu(self._cla(), INS_PERFORM_SECURITY_OPERATION, kvn, p2, concatenate((cert,)))
            out += chain_command(command, max_data)
        return out

    # -- key agreement --------------------------------------------------------------------------------------------
    def key_agreement(self) -> CommandApdu:
        """INTERNAL AUTHENTICATE (11b) or MUTUAL AUTHENTICATE (11a, 11c), P1 = KVN, P2 = KID."""
        self._require(ChannelState.IDLE)
        sd = self._need_sd_key()
        self._esk = self._ephemeral(sd.curve)
        self._command_data = key_agreement_command_data(self.params, encode_point(self._esk.public_key()))
        return CommandApdu(self._cla(), self.variant.ins, self.kvn, self.variant.kid, self._command_data, le=256)

    def receive_key_agreement(self, response: ResponseApdu) -> None:
        """ShSee, ShSes, the five keys, the receipt (constant-time): the session opens with SCP03 messaging."""
        self.receive_ok(response)
        sd = self._need_sd_key()
        if self._esk is None:
            raise LocalProtocolError("key_agreement() first")
        static = self._oce_key if self.variant.oce_authenticated else self._esk
        assert static is not None
        try:
            epk_tlv, epk, card_receipt = parse_key_agreement_response(response.data)
            epk_sd = public_key_from_point(sd.curve, epk)
            keys = derive_session_keys(ecdh(self._esk, epk_sd), ecdh(static, sd), self.params)
        except (DecodeError, UnsupportedError) as exc:
            self._fail(AuthenticationError(f"key agreement response: {exc}"))
        self._esk = None
        expected = receipt(keys.receipt_key, self._command_data + epk_tlv)
        if not constant_time_equal(expected, card_receipt):
            self._fail(AuthenticationError("the receipt does not verify"))
        self._keys, self.receipt = keys, card_receipt
        self.sm = Scp03Messaging(keys.s_enc, keys.s_mac, keys.s_rmac, self.level, chain=card_receipt)
        self.state = ChannelState.OPEN

    @property
    def session_keys(self) -> Scp11SessionKeys | None:
        """The open session's five keys, for a program that records its own traces (``trace decode
        --scp11-session-keys``); None before the receipt verified. Never logged by gpchannel."""
        return self._keys

    def _need_sd_key(self) -> ec.EllipticCurvePublicKey:
        if self.sd_public_key is None:
            raise LocalProtocolError("PK.SD.ECKA is not validated: receive_certificates() first")
        return self.sd_public_key

    def run(self, transmit: Transmit) -> None:
        """The whole initiation through ``transmit``; OPEN when it returns."""
        if self.sd_public_key is None:
            self.receive_certificates(transmit(self.get_certificates()))
        if self.variant.oce_authenticated:
            for command in self.certificate_commands():
                self.receive_ok(transmit(command))
        self.receive_key_agreement(transmit(self.key_agreement()))

    # -- the session ----------------------------------------------------------------------------------------------
    def wrap(self, command: CommandApdu) -> CommandApdu:
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        if command.cla & 0x0C or (command.cla & 0x40 and command.cla & 0x20):
            raise LocalProtocolError("wrap() takes the plain command (no secure messaging bit)")
        return self.sm.wrap_command(command)

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        if not self.sm.exchanged:
            raise LocalProtocolError("no command was wrapped in this session; nothing to unwrap")
        try:
            return self.sm.unwrap_response(response)
        except IntegrityError as exc:
            self._fail(exc)

    def encrypt_key(self, key: bytes) -> bytes:
        """Key material under S-DEK, AES-CBC with a zero IV (as SCP03's DEK, Amendment D 6.2.8)."""
        self._require(ChannelState.OPEN)
        assert self._keys is not None
        return encrypt_sensitive_data(self._keys.s_dek, key)
