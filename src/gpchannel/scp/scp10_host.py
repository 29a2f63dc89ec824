"""SCP10 on the host: the off-card entity side of GP Card Specification 2.2.1, Appendix F.

Each step builds a command and checks its response (sans-I/O); :meth:`Scp10Host.run` drives them all through an
injected ``transmit`` callable::

    get_certificate()            -> GET DATA [certificate] 7F21      receive_certificate(): verify CERT.SD.AUT
    manage_security_environment()-> MSE (P1 C1/81, P2 B6/A4)        receive_ok()
    verify_certificate_commands()-> PSO [verify certificate] each   receive_ok() (chained when long)
    decipher()                   -> PSO [decipher] (key transport)  receive_ok()
    get_challenge()              -> GET CHALLENGE                   receive_challenge()
    external_authenticate()      -> EXTERNAL AUTHENTICATE           receive_external_authenticate()
    internal_authenticate()      -> INTERNAL AUTHENTICATE           receive_internal_authenticate()
    wrap() / unwrap() at the requested level (F.3.2); encrypt_key() / decrypt_sensitive() with the DEKs (F.3.2.7)

Key transport (i=02) opens after EXTERNAL AUTHENTICATE (INTERNAL AUTHENTICATE optional, sent without secure
messaging); key agreement (i=01) opens after INTERNAL AUTHENTICATE, which it requires (F.1.5).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel
from gpchannel.codec.tlv import Tlv
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.rsa import (
    RsaPrivateKey,
    RsaPublicKey,
    iso9796_2_ds1_open,
    iso9796_2_ds1_sign,
    pkcs1_v15_sign_sha1,
    pkcs1_v15_verify_sha1,
    sha1,
)
from gpchannel.errors import (
    AuthenticationError,
    CardStatusError,
    DecodeError,
    IntegrityError,
    LocalProtocolError,
    SecurityError,
)
from gpchannel.scp.common import ChannelState, RandomSource, ScpProtocol, SteppedHostChannel
from gpchannel.scp.common import SecurityLevel as _SecurityLevel
from gpchannel.scp.scp10 import (
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_CHALLENGE,
    INS_GET_DATA,
    INS_INTERNAL_AUTHENTICATE,
    INS_MANAGE_SECURITY_ENVIRONMENT,
    INS_PERFORM_SECURITY_OPERATION,
    Crt,
    KeyUsage,
    Scp10Option,
    SessionKeyData,
    SessionKeys,
    chain_command,
    check_level,
    derive_agreement_keys,
    pkcs1_type2_block,
)
from gpchannel.scp.scp10_cert import Certificate, verify_certificate
from gpchannel.scp.scp10_sm import SecureMessaging

__all__ = ["DEFAULT_CRTS", "Scp10Host"]

DEFAULT_CRTS = (Crt(0xB4, 0x30), Crt(0xB8, 0x30), Crt(0xB8, 0xC0))
"""One MAC key for C-MAC and R-MAC, one ENC key for C-ENC and R-ENC, one DEK both ways (Table F-11)."""


class Scp10Host(SteppedHostChannel):
    """The off-card entity side of one SCP10 session.

    ``oce_chain`` is the certificate chain the card verifies, from the one signed by PK.TP_EX.AUT (or by the key
    named in ``public_key_reference``) down to CERT.OCE.AUT; empty when the card already holds PK.OCE.AUT (then
    ``oce_id`` names it and MSE uses P2 'A4'). ``trust_point`` is PK.TP_IN.AUT, ``card_chain`` the certificates
    between it and CERT.SD.AUT; ``sd_public_key`` skips the card certificate when already validated.
    """

    protocol = ScpProtocol.SCP10

    def __init__(
        self,
        option: Scp10Option,
        level: int,
        oce_key: RsaPrivateKey,
        oce_chain: Sequence[bytes],
        oce_id: bytes,
        random: RandomSource,
        now: datetime.date,
        *,
        trust_point: RsaPublicKey | None = None,
        card_chain: Sequence[bytes] = (),
        sd_public_key: RsaPublicKey | None = None,
        card_id: bytes = b"",
        crts: Sequence[Crt] = DEFAULT_CRTS,
        mutual: bool = True,
        self_descriptive: bool = True,
        public_key_reference: bytes = b"",
        channel: int = 0,
    ) -> None:
        super().__init__(_SecurityLevel(check_level(level)), channel)
        if len(oce_id) != 8:
            raise ValueError("the off-card entity id is 8 bytes (Table F-24)")
        if option is Scp10Option.KEY_AGREEMENT and not mutual:
            raise ValueError("key agreement needs INTERNAL AUTHENTICATE (F.1.4.2): mutual must be True")
        given = {u for c in crts for u in c.usages}
        for bit, usage in (
            (0x01, KeyUsage.C_MAC),
            (0x02, KeyUsage.C_ENC),
            (0x10, KeyUsage.R_MAC),
            (0x20, KeyUsage.R_ENC),
        ):
            if level & bit and usage not in given:
                raise ValueError(f"security level {level:02X} needs a CRT for the {usage.value} key (F.1.6)")
        self.option = option
        self._oce_key = oce_key
        self.oce_chain = tuple(oce_chain)
        self.oce_id = oce_id
        self._random = random
        self.now = now
        self.trust_point = trust_point
        self.card_chain = tuple(card_chain)
        self.sd_public_key = sd_public_key
        self.card_id = card_id
        self.mutual = mutual
        self.self_descriptive = self_descriptive
        self.public_key_reference = public_key_reference
        self._crts = tuple(crts)
        self._key_data: SessionKeyData | None = None
        self._card_challenge = b""
        self._oce_challenge = b""
        self._oes = b""
        self.sm: SecureMessaging | None = None
        self._keys: SessionKeys | None = None

    def _cla(self, cla: int = 0x00) -> int:
        return cla_for_channel(cla, self.channel)

    # -- responses ------------------------------------------------------------------------------------------------
    def receive_ok(self, response: ResponseApdu) -> None:
        """Any initiation step: 9000 or the channel fails with CardStatusError."""
        self._require(ChannelState.IDLE, ChannelState.CARD_AUTHENTICATED, ChannelState.EXTERNAL_AUTHENTICATE_SENT)
        if response.sw != 0x9000:
            self._fail(CardStatusError(response.sw, "SCP10 initiation refused"))

    # -- card certificate (F.1.3) ---------------------------------------------------------------------------------
    def get_certificate(self) -> CommandApdu:
        """GET DATA [certificate] P1P2 7F21 with a GlobalPlatform CLA (F.4.3): CERT.SD.AUT in 7F21."""
        return CommandApdu(self._cla(0x80), INS_GET_DATA, 0x7F, 0x21, le=256)

    def receive_certificate(self, response: ResponseApdu) -> Certificate:
        """Verify ``card_chain`` then CERT.SD.AUT from PK.TP_IN.AUT at ``now``; keeps PK.SD.AUT and the card id."""
        self.receive_ok(response)
        if self.trust_point is None:
            raise LocalProtocolError("no PK.TP_IN.AUT to verify the card certificate with")
        key = self.trust_point
        try:
            for raw in (*self.card_chain, response.data):
                cert = verify_certificate(raw, key, self_descriptive=self.self_descriptive, now=self.now)
                key = cert.body.public_key
        except (DecodeError, SecurityError) as exc:
            self._fail(AuthenticationError(f"card certificate: {exc}"))
        self.sd_public_key, self.card_id = key, cert.body.subject
        return cert

    # -- initiation -----------------------------------------------------------------------------------------------
    def manage_security_environment(self) -> CommandApdu:
        """MSE (F.4.5): tag 80 = 10 || i; 83 the starting public key (or PK.OCE.AUT with P2 A4)."""
        self._require(ChannelState.IDLE)
        data = Tlv(0x80, bytes((0x10, self.option))).to_bytes()
        verify = bool(self.oce_chain)
        ref = self.public_key_reference if verify else self.oce_id
        if ref:
            data += Tlv(0x83, ref).to_bytes()
        return CommandApdu(
            self._cla(), INS_MANAGE_SECURITY_ENVIRONMENT, 0xC1 if self.mutual else 0x81, 0xB6 if verify else 0xA4, data
        )

    def verify_certificate_commands(self, max_data: int = 255) -> list[CommandApdu]:
        """PSO [verify certificate] for each certificate of the chain, chained past ``max_data`` (F.4.7)."""
        p2 = 0xBE if self.self_descriptive else 0xAE
        out: list[CommandApdu] = []
        for raw in self.oce_chain:
            out += chain_command(CommandApdu(self._cla(), INS_PERFORM_SECURITY_OPERATION, 0x00, p2, raw), max_data)
        return out

    def decipher(self, max_data: int = 255) -> list[CommandApdu]:
        """PSO [decipher] (F.4.6): fresh session keys and counters, Table F-32, under PK.SD.AUT."""
        if self.option is not Scp10Option.KEY_TRANSPORT:
            raise LocalProtocolError("PSO [decipher] is for key transport only")
        sd = self._need_sd_key()
        crts = tuple(
            Crt(c.tag, c.usage_qualifier, c.key_type, self._random(16), self._random(8) if c.kind == "mac" else None)
            for c in self._crts
        )
        self._key_data = SessionKeyData(int(self.level), crts)
        self._keys = SessionKeys.from_transport(crts)
        block = pkcs1_type2_block(self._key_data.to_bytes(), sd.size)
        command = CommandApdu(self._cla(), INS_PERFORM_SECURITY_OPERATION, 0x80, 0x84, sd.raw(block))
        return chain_command(command, max_data)

    def get_challenge(self) -> CommandApdu:
        """GET CHALLENGE (F.4.2)."""
        return CommandApdu(self._cla(), INS_GET_CHALLENGE, 0x00, 0x00, le=256)

    def receive_challenge(self, response: ResponseApdu) -> None:
        self.receive_ok(response)
        if len(response.data) != self.option.challenge_length:
            self._fail(AuthenticationError(f"card challenge is {len(response.data)} bytes"))
        self._card_challenge = response.data

    def external_authenticate(self) -> CommandApdu:
        """EXTERNAL AUTHENTICATE (F.4.1) with the off-card entity signature (F.1.4.4). Chain it with
        :func:`chain_command` if the transport cannot carry ``len(data)`` bytes."""
        if not self._card_challenge:
            raise LocalProtocolError("GET CHALLENGE first")
        sk = self._oce_key
        if self.option is Scp10Option.KEY_TRANSPORT:
            if self._key_data is None:
                raise LocalProtocolError("PSO [decipher] first")
            data = pkcs1_v15_sign_sha1(sk, self._key_data.to_bytes() + self._card_challenge)
        else:
            sd = self._need_sd_key()
            if len(self.card_id) != 8:
                raise LocalProtocolError("the card id (subject of CERT.SD.AUT) is needed for key agreement")
            self._key_data = SessionKeyData(int(self.level), tuple(c.without_secrets() for c in self._crts))
            self._oes = self._random(32)
            middle = self._key_data.to_bytes() + self._oes
            rpd = self._random(sk.public.size - 22 - len(middle))
            sigma = iso9796_2_ds1_sign(sk, rpd + middle, self._card_challenge + self.card_id)
            data = sd.raw(sigma)
        self._card_challenge = b""
        self.state = ChannelState.EXTERNAL_AUTHENTICATE_SENT
        return CommandApdu(self._cla(), INS_EXTERNAL_AUTHENTICATE, 0x00, 0x00, data)

    def receive_external_authenticate(self, response: ResponseApdu) -> None:
        """9000: key transport opens (the keys are ours); key agreement waits for INTERNAL AUTHENTICATE."""
        self.receive_ok(response)
        if self.option is Scp10Option.KEY_TRANSPORT:
            assert self._keys is not None
            self.sm = SecureMessaging(int(self.level), self._keys)
            self.state = ChannelState.OPEN

    def internal_authenticate(self) -> CommandApdu:
        """INTERNAL AUTHENTICATE (F.4.4): our challenge and id, no secure messaging."""
        self._require(ChannelState.EXTERNAL_AUTHENTICATE_SENT, ChannelState.OPEN)
        self._oce_challenge = self._random(self.option.challenge_length)
        return CommandApdu(
            self._cla(), INS_INTERNAL_AUTHENTICATE, 0x00, 0x00, self._oce_challenge + self.oce_id, le=256
        )

    def receive_internal_authenticate(self, response: ResponseApdu) -> None:
        """Verify the card signature (F.1.4.3); key agreement derives the session keys (F.3.1.3)."""
        self._require(ChannelState.EXTERNAL_AUTHENTICATE_SENT, ChannelState.OPEN)
        if response.sw != 0x9000:
            self._fail(CardStatusError(response.sw, "INTERNAL AUTHENTICATE refused"))
        sd = self._need_sd_key()
        assert self._key_data is not None
        if self.option is Scp10Option.KEY_TRANSPORT:
            keys = b"".join(c.key or b"" for c in self._key_data.crts)
            if not pkcs1_v15_verify_sha1(sd, keys + self._oce_challenge, response.data):
                self._fail(AuthenticationError("card signature does not verify"))
            return
        sk = self._oce_key
        try:
            if len(response.data) != sk.public.size:
                raise SecurityError("encrypted card signature has the wrong length")
            recovered, digest = iso9796_2_ds1_open(sd, sk.raw(response.data))
        except SecurityError as exc:
            self._fail(AuthenticationError(f"card signature: {exc}"))
        if len(recovered) < 33 or not constant_time_equal(sha1(recovered + self._oce_challenge + self.oce_id), digest):
            self._fail(AuthenticationError("card signature does not verify"))
        cs = recovered[-32:]
        self.sm = SecureMessaging(int(self.level), derive_agreement_keys(self._key_data.crts, self._oes, cs))
        self.state = ChannelState.OPEN

    def _need_sd_key(self) -> RsaPublicKey:
        if self.sd_public_key is None:
            raise LocalProtocolError("PK.SD.AUT is not validated: receive_certificate() first")
        return self.sd_public_key

    # -- the session ----------------------------------------------------------------------------------------------
    def wrap(self, command: CommandApdu) -> CommandApdu:
        """Protect a command at the session level (F.3.2.1 to F.3.2.3)."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        return self.sm.protect_command(command)

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        """Verify and decrypt a response (F.3.2.4 to F.3.2.6); IntegrityError terminates the channel."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        try:
            return self.sm.unprotect_response(response)
        except (DecodeError, SecurityError) as exc:
            self._fail(IntegrityError(f"response: {exc}"))

    def encrypt_key(self, key: bytes) -> bytes:
        """Sensitive data for the card under the command DEK (F.3.2.7); ``key`` is a multiple of 8 bytes."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        return self.sm.crypt_sensitive(KeyUsage.DEK_COMMAND, key, encrypt=True)

    def decrypt_sensitive(self, data: bytes) -> bytes:
        """Sensitive data from the card under the response DEK (F.3.2.7)."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        return self.sm.crypt_sensitive(KeyUsage.DEK_RESPONSE, data, encrypt=False)

    def run(self, transmit: Callable[[CommandApdu], ResponseApdu]) -> None:
        """Drive the whole initiation through ``transmit`` (which carries one APDU and returns the answer)."""
        if self.sd_public_key is None:
            self.receive_certificate(transmit(self.get_certificate()))
        self.receive_ok(transmit(self.manage_security_environment()))
        for command in self.verify_certificate_commands():
            self.receive_ok(transmit(command))
        if self.option is Scp10Option.KEY_TRANSPORT:
            for command in self.decipher():
                self.receive_ok(transmit(command))
        self.receive_challenge(transmit(self.get_challenge()))
        *first, last = chain_command(self.external_authenticate())
        for command in first:
            self.receive_ok(transmit(command))
        self.receive_external_authenticate(transmit(last))
        if self.mutual:
            self.receive_internal_authenticate(transmit(self.internal_authenticate()))
