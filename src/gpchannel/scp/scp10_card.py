"""SCP10 on the card: the Security Domain side of GP Card Specification 2.2.1, Appendix F.

Sequence on one logical channel (F.1.2, Figures F-4 and F-9; commands of F.4)::

    MANAGE SECURITY ENVIRONMENT (22)        select SCP10 and "i", the starting public key, our private key
    PSO [verify certificate] (2A 00 AE/BE)* verify the off-card entity's chain from PK.TP_EX.AUT
    GET DATA [certificate] (CA/CB 7F21 ...) may be interleaved: CERT.SD.AUT, EF.OD, other certificates
    PSO [decipher] (2A 80 84)               key transport only: session keys and level, under PK.SD.AUT
    GET CHALLENGE (84)                      8 (key agreement) or 16 (key transport) random bytes
    EXTERNAL AUTHENTICATE (82)              verify the off-card entity's signature -> AUTHENTICATED
    INTERNAL AUTHENTICATE (88)              sign the off-card challenge; key agreement: derive the keys
    ... secure messaging at the requested level (F.3.2) ...

:meth:`Scp10Card.process` takes every APDU of the channel: it runs the initiation commands (handling ISO/IEC
7816-4 command chaining), and once a session is open it unwraps other commands, hands them to the
application callable, and wraps the answer. Card errors become status words there: 6300 when a certificate or
signature does not verify (Tables F-17, F-36), 6A80 for wrong data (F-26, F-33), 6A88 / 9484 in MSE (F-30),
6883 for a broken chain (F-36), 6985 out of sequence, 6982 for secure messaging errors (F.1.6). Any failure
during initiation discards the keys validated in it; any secure messaging failure aborts the session, after
which every command is refused with 6982 until a new initiation (F.1.6).

Randomness (challenges, card secret, random padding) is injected; validity dates are checked against ``now``.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import Tlv, parse_all
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
    CardError,
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    ReferencedDataNotFound,
    SecurityError,
    SecurityNotSatisfied,
    WrongLength,
)
from gpchannel.scp.common import CardChannel, ChannelState, RandomSource, ScpProtocol, SecurityLevel
from gpchannel.scp.scp10 import (
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_CHALLENGE,
    INS_INTERNAL_AUTHENTICATE,
    INS_MANAGE_SECURITY_ENVIRONMENT,
    INS_PERFORM_SECURITY_OPERATION,
    KeyUsage,
    Scp10Option,
    SessionKeyData,
    SessionKeys,
    derive_agreement_keys,
    leftmost_key_data,
    pkcs1_type2_open,
)
from gpchannel.scp.scp10_cert import verify_certificate
from gpchannel.scp.scp10_sm import SecureMessaging

__all__ = ["Scp10Card", "Scp10CardConfig", "Scp10Phase"]

VERIFICATION_FAILED = 0x6300
LAST_COMMAND_EXPECTED = 0x6883
ALGORITHM_NOT_SUPPORTED = 0x9484
MAX_CHAINED_DATA = 4096  # a 4096-bit certificate chain element fits; anything larger is refused (6700)


class Scp10Phase(enum.Enum):
    IDLE = "idle"
    SETUP = "setup"  # after MSE or PSO [verify certificate]
    KEYS = "keys"  # key transport: PSO [decipher] done
    CHALLENGED = "challenged"  # GET CHALLENGE answered
    EXTERNAL_DONE = "external-done"  # EXTERNAL AUTHENTICATE verified; INTERNAL AUTHENTICATE may follow
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class Scp10CardConfig:
    """What a Security Domain holds for SCP10 (F.1.3.1): SK.SD.AUT, CERT.SD.AUT, PK.TP_EX.AUT, and options.

    ``certificate`` is the encoded ``7F21`` CERT.SD.AUT; ``card_id`` its 8-byte subject (Table F-9).
    ``validated_keys`` are public keys already validated (F.1.2, "null condition"), by reference: MSE tag 83
    may name one (and, with P2 'A4', use it as PK.OCE.AUT). ``certificates`` maps other data object ids
    (P1P2 of GET DATA) to certificates; ``ef_od`` is the content of EF.OD (5031), provided by the SD's owner.
    """

    private_key: RsaPrivateKey = field(repr=False)
    certificate: bytes
    card_id: bytes
    trust_point: RsaPublicKey
    trust_point_id: bytes = b"TP_EX\x00\x00\x01"
    private_key_id: bytes = b"\x01"
    options: frozenset[Scp10Option] = frozenset(Scp10Option)
    default_option: Scp10Option = Scp10Option.KEY_TRANSPORT
    self_descriptive: bool = True
    validated_keys: Mapping[bytes, RsaPublicKey] = field(default_factory=dict)
    certificates: Mapping[int, bytes] = field(default_factory=dict)
    ef_od: bytes = b""
    provider_id: bytes | None = None


class Scp10Card(CardChannel):
    """The Security Domain side of one SCP10 session on one logical channel."""

    protocol = ScpProtocol.SCP10

    def __init__(
        self,
        config: Scp10CardConfig,
        random: RandomSource,
        now: Callable[[], datetime.date],
        channel: int = 0,
    ) -> None:
        super().__init__(channel)
        self.config = config
        self._random = random
        self._now = now
        self._reset_initiation()
        self.sm: SecureMessaging | None = None
        self._chain: tuple[bytes, bytes] | None = None

    def _reset_initiation(self) -> None:
        self.phase = Scp10Phase.IDLE
        self.option = self.config.default_option
        self._current_key: RsaPublicKey | None = self.config.trust_point
        self._oce_key: RsaPublicKey | None = None
        self._oce_id = b""
        self._key_data: SessionKeyData | None = None
        self._keys: SessionKeys | None = None
        self._challenge = b""
        self._internal_done = False

    def _abort(self, error: CardError) -> NoReturn:
        """Abort initiation or session: discard validated keys and session keys (F.1.3.2, F.1.4.2, F.1.6)."""
        self._reset_initiation()
        self.sm = None
        self._fail(error)

    def _start_initiation(self) -> None:
        """A new initiation terminates any session on this channel (F.1.6, F.4.5.1)."""
        self._reset_initiation()
        self.sm = None
        self.state = ChannelState.INITIALIZED
        self.level = SecurityLevel.NONE
        self.phase = Scp10Phase.SETUP

    @property
    def authenticated_subject(self) -> bytes | None:
        """The subject id of the authenticated off-card entity (10.4.2), once EXTERNAL AUTHENTICATE succeeded."""
        return self._oce_id if self.phase in (Scp10Phase.EXTERNAL_DONE, Scp10Phase.OPEN) else None

    @property
    def current_security_level(self) -> int:
        """Table 10-1: the level with AUTHENTICATED (80) or ANY_AUTHENTICATED (40); 00 without a session (F.1.5.2)."""
        if self.state is not ChannelState.OPEN:
            return 0
        provider = self.config.provider_id
        return int(self.level) | (0x80 if provider is None or provider == self._oce_id else 0x40)

    # -- the CardChannel contract ---------------------------------------------------------------------------------
    @property
    def sequence_counter(self) -> int:
        """SCP10 keeps no persistent sequence counter (ICV counters are per session, F.2.3)."""
        return 0

    def initialize_update(self, command: CommandApdu) -> ResponseApdu:
        """SCP10 has no INITIALIZE UPDATE (only explicit initiation by MSE / PSO, F.1.2)."""
        raise ConditionsNotSatisfied("SCP10 is initiated with MANAGE SECURITY ENVIRONMENT, not INITIALIZE UPDATE")

    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """Check an incoming command at the session level (F.1.6, F.3.2.1-3); 6982 and abort on any error."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        self.phase = Scp10Phase.OPEN
        try:
            return self.sm.unprotect_command(command)
        except (SecurityError, DecodeError) as exc:
            self._abort(SecurityNotSatisfied(f"secure messaging: {exc}"))

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """Protect a response at the session level (F.3.2.4-6); 6982 and abort if a key is missing."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        try:
            return self.sm.protect_response(response)
        except SecurityError as exc:
            self._abort(SecurityNotSatisfied(str(exc)))

    def decrypt_key(self, data: bytes) -> bytes:
        """Decrypt sensitive data sent under the command DEK (F.3.2.7); no padding is removed."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        try:
            return self.sm.crypt_sensitive(KeyUsage.DEK_COMMAND, data, encrypt=False)
        except (SecurityError, ValueError) as exc:
            raise IncorrectData(str(exc)) from None

    def encrypt_sensitive(self, data: bytes) -> bytes:
        """Encrypt sensitive response data under the response DEK (F.3.2.7)."""
        self._require(ChannelState.OPEN)
        assert self.sm is not None
        try:
            return self.sm.crypt_sensitive(KeyUsage.DEK_RESPONSE, data, encrypt=True)
        except (SecurityError, ValueError) as exc:
            raise IncorrectData(str(exc)) from None

    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """EXTERNAL AUTHENTICATE (F.4.1): verify the off-card entity's signature (F.1.4.4)."""
        if self.phase is not Scp10Phase.CHALLENGED:
            self._abort(ConditionsNotSatisfied("EXTERNAL AUTHENTICATE must immediately follow GET CHALLENGE"))
        challenge, self._challenge = self._challenge, b""
        if self._oce_key is None:
            self._abort(SecurityNotSatisfied("no validated off-card entity public key"))
        assert self._oce_key is not None
        try:
            if self.option is Scp10Option.KEY_TRANSPORT:
                assert self._key_data is not None and self._keys is not None
                if not pkcs1_v15_verify_sha1(self._oce_key, self._key_data.to_bytes() + challenge, command.data):
                    raise SecurityError("off-card entity signature does not verify")
                level = self._key_data.level
                self.sm = SecureMessaging(level, self._keys)
                self.state = ChannelState.OPEN
            else:
                level = self._open_agreement_signature(command.data, challenge)
        except (SecurityError, DecodeError) as exc:
            self._abort(CardError(f"EXTERNAL AUTHENTICATE: {exc}", sw=VERIFICATION_FAILED))
        self.level = SecurityLevel(level)
        self.phase = Scp10Phase.EXTERNAL_DONE
        return ResponseApdu(b"", 0x9000)

    def _open_agreement_signature(self, data: bytes, challenge: bytes) -> int:
        """Tables F-9/F-10: decrypt with SK.SD.AUT, recover with PK.OCE.AUT, check the hash, parse."""
        assert self._oce_key is not None
        key = self.config.private_key
        if len(data) != key.public.size:
            raise DecodeError(f"encrypted signature is {len(data)} bytes, expected {key.public.size}")
        recovered, digest = iso9796_2_ds1_open(self._oce_key, key.raw(data))
        if len(recovered) < 32 + 4 or not constant_time_equal(
            sha1(recovered + challenge + self.config.card_id), digest
        ):
            raise SecurityError("off-card entity signature does not verify")
        oes, middle = recovered[-32:], recovered[:-32]
        key_data = leftmost_key_data(middle)
        if any(c.key is not None or c.counter is not None for c in key_data.crts):
            raise DecodeError("key agreement CRTs carry no keys")
        self._key_data = key_data
        self._oes = oes
        return key_data.level

    def internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """INTERNAL AUTHENTICATE (F.4.4): sign the off-card challenge (F.1.4.3); key agreement opens here."""
        if self.phase is not Scp10Phase.EXTERNAL_DONE or self._internal_done:
            self._abort(ConditionsNotSatisfied("INTERNAL AUTHENTICATE must immediately follow EXTERNAL AUTHENTICATE"))
        self._internal_done = True
        size = self.option.challenge_length
        if len(command.data) != size + 8 or not constant_time_equal(command.data[size:], self._oce_id):
            self._abort(IncorrectData("INTERNAL AUTHENTICATE data is the challenge and the off-card entity id"))
        challenge = command.data[:size]
        sk = self.config.private_key
        assert self._key_data is not None and self._oce_key is not None
        if self.option is Scp10Option.KEY_TRANSPORT:
            keys = b"".join(c.key or b"" for c in self._key_data.crts)
            signature = pkcs1_v15_sign_sha1(sk, keys + challenge)
        else:
            cs = self._random(32)
            rp = self._random(sk.public.size - 54)
            sigma = iso9796_2_ds1_sign(sk, rp + cs, challenge + self._oce_id)
            signature = self._oce_key.raw(sigma)
            self.sm = SecureMessaging(self._key_data.level, derive_agreement_keys(self._key_data.crts, self._oes, cs))
            self.state = ChannelState.OPEN
        self.phase = Scp10Phase.OPEN
        return ResponseApdu(signature, 0x9000)

    # -- initiation commands --------------------------------------------------------------------------------------
    def manage_security_environment(self, command: CommandApdu) -> ResponseApdu:
        """MSE (F.4.5): terminates any session; selects "i", the starting public key and our private key."""
        self._start_initiation()
        if command.p1 not in (0x81, 0xC1) or command.p2 not in (0xA4, 0xB6):
            self._abort(IncorrectP1P2("MSE P1 must be 81 or C1 and P2 A4 or B6"))
        try:
            items = {i.tag: i.value for i in parse_all(command.data)}
        except DecodeError:
            self._abort(IncorrectData("MSE data is not BER-TLV"))
        mech = items.get(0x80, b"")
        if len(mech) != 2 or mech[0] != 0x10 or mech[1] not in {o.value for o in self.config.options}:
            self._abort(CardError("cryptographic mechanism is not SCP10 with a supported i", ALGORITHM_NOT_SUPPORTED))
        self.option = Scp10Option(mech[1])
        if 0x84 in items and items[0x84] not in (b"", self.config.private_key_id):
            self._abort(ReferencedDataNotFound("unknown private key reference"))
        ref = items.get(0x83, b"")
        if ref and ref != self.config.trust_point_id:
            known = self.config.validated_keys.get(ref)
            if known is None:
                self._abort(ReferencedDataNotFound("unknown public key reference"))
            self._current_key = known
            if command.p2 == 0xA4:  # no certificate verification: the referenced key is PK.OCE.AUT
                self._oce_key, self._oce_id = known, ref
        return ResponseApdu(b"", 0x9000)

    def verify_certificate(self, command: CommandApdu) -> ResponseApdu:
        """PSO [verify certificate] (F.4.7): verify with the Current Public Key, which then moves down."""
        if self.phase is not Scp10Phase.SETUP:
            self._start_initiation()
        assert self._current_key is not None
        try:
            cert = verify_certificate(
                command.data, self._current_key, self_descriptive=command.p2 == 0xBE, now=self._now()
            )
        except DecodeError as exc:
            self._abort(IncorrectData(f"certificate: {exc}"))
        except SecurityError as exc:
            self._abort(CardError(f"certificate: {exc}", sw=VERIFICATION_FAILED))
        self._current_key = self._oce_key = cert.body.public_key
        self._oce_id = cert.body.subject
        return ResponseApdu(b"", 0x9000)

    def decipher(self, command: CommandApdu) -> ResponseApdu:
        """PSO [decipher] (F.4.6): the session keys and level under PK.SD.AUT (Table F-32)."""
        if self.phase is not Scp10Phase.SETUP or self.option is not Scp10Option.KEY_TRANSPORT:
            self._abort(ConditionsNotSatisfied("PSO [decipher] needs MSE or PSO first, with key transport"))
        sk = self.config.private_key
        try:
            if len(command.data) != sk.public.size:
                raise DecodeError("cryptogram length differs from the modulus length")
            key_data = SessionKeyData.from_bytes(pkcs1_type2_open(sk.raw(command.data)))
            keys = SessionKeys.from_transport(key_data.crts)
        except (DecodeError, SecurityError) as exc:
            self._abort(IncorrectData(f"PSO [decipher]: {exc}"))
        self._key_data, self._keys = key_data, keys
        self.phase = Scp10Phase.KEYS
        return ResponseApdu(b"", 0x9000)

    def get_challenge(self, command: CommandApdu) -> ResponseApdu:
        """GET CHALLENGE (F.4.2): after MSE or PSO (and PSO [decipher] for key transport)."""
        needed = Scp10Phase.KEYS if self.option is Scp10Option.KEY_TRANSPORT else Scp10Phase.SETUP
        if self.phase is not needed:
            self._abort(ConditionsNotSatisfied("GET CHALLENGE out of sequence"))
        self._challenge = self._random(self.option.challenge_length)
        self.phase = Scp10Phase.CHALLENGED
        return ResponseApdu(self._challenge, 0x9000)

    def get_data_certificate(self, command: CommandApdu) -> ResponseApdu:
        """GET DATA [certificate] (F.4.3): 7F21 is CERT.SD.AUT, 5031 EF.OD, other P1P2 a certificate id."""
        tag = command.p1 << 8 | command.p2
        gp_class = bool(command.cla & 0x80)
        if tag == 0x7F21:
            cert = self.config.certificate
        else:
            if command.data != b"\x5c\x00":
                raise IncorrectData("GET DATA [certificate] data must be 5C 00")
            if tag == 0x5031:
                return ResponseApdu(self.config.ef_od, 0x9000)
            if tag not in self.config.certificates:
                raise ReferencedDataNotFound(f"no certificate with data object id {tag:04X}")
            cert = self.config.certificates[tag]
        return ResponseApdu(cert if gp_class else Tlv.from_bytes(cert).value, 0x9000)

    # -- the dispatcher -------------------------------------------------------------------------------------------
    def process(
        self, command: CommandApdu, application: Callable[[CommandApdu], ResponseApdu] | None = None
    ) -> ResponseApdu:
        """One APDU on this channel; CardErrors become status words (see the module docstring)."""
        try:
            return self._process(command, application)
        except CardError as exc:
            return ResponseApdu(b"", exc.sw)

    def _process(self, command: CommandApdu, application: Callable[[CommandApdu], ResponseApdu] | None) -> ResponseApdu:
        sm = bool(command.cla & (0x20 if command.cla & 0x40 else 0x0C))
        handler = None if sm else self._initiation_handler(command)
        if handler is not None:
            full = self._unchain(command)
            if full is None:
                return ResponseApdu(b"", 0x9000)
            return handler(full)
        if self._chain is not None:
            self._chain = None
            raise CardError("the last command of the chain was expected", LAST_COMMAND_EXPECTED)
        if self.state is ChannelState.OPEN:
            plain = self.unwrap(command)
            restart = self._initiation_handler(plain)
            if restart is not None and plain.ins != INS_INTERNAL_AUTHENTICATE:
                return restart(plain)  # a protected MSE / PSO: a new initiation ends this session (F.1.6)
            if self._is_get_certificate(plain):
                try:
                    answer = self.get_data_certificate(plain)
                except CardError as exc:
                    answer = ResponseApdu(b"", exc.sw)
            else:
                answer = application(plain) if application else ResponseApdu(b"", 0x6D00)
            return self.wrap(answer)
        if self.state is ChannelState.TERMINATED:
            raise SecurityNotSatisfied("the secure channel session was aborted")
        if self._is_get_certificate(command):
            return self.get_data_certificate(command)
        return application(command) if application else ResponseApdu(b"", 0x6D00)

    @staticmethod
    def _is_get_certificate(command: CommandApdu) -> bool:
        tag = command.p1 << 8 | command.p2
        return command.ins in (0xCA, 0xCB) and (tag in (0x7F21, 0x5031) or command.data == b"\x5c\x00")

    def _initiation_handler(self, command: CommandApdu) -> Callable[[CommandApdu], ResponseApdu] | None:
        ins, p1, p2 = command.ins, command.p1, command.p2
        if ins == INS_MANAGE_SECURITY_ENVIRONMENT and p1 in (0x81, 0xC1):
            return self.manage_security_environment
        if ins == INS_PERFORM_SECURITY_OPERATION and p1 == 0x00 and p2 in (0xAE, 0xBE):
            return self.verify_certificate
        if ins == INS_PERFORM_SECURITY_OPERATION and (p1, p2) == (0x80, 0x84):
            return self.decipher
        if self.phase is Scp10Phase.OPEN or (self.state is ChannelState.OPEN and ins != INS_INTERNAL_AUTHENTICATE):
            return None
        return {
            INS_GET_CHALLENGE: self.get_challenge,
            INS_EXTERNAL_AUTHENTICATE: self.external_authenticate,
            INS_INTERNAL_AUTHENTICATE: self.internal_authenticate,
        }.get(ins)

    def _unchain(self, command: CommandApdu) -> CommandApdu | None:
        """ISO/IEC 7816-4 command chaining (F.4): collect segments until the last (CLA b5 clear)."""
        header = bytes((command.ins, command.p1, command.p2))
        if self._chain is not None and self._chain[0] != header:
            self._chain = None
            raise CardError("the last command of the chain was expected", LAST_COMMAND_EXPECTED)
        data = (self._chain[1] if self._chain else b"") + command.data
        if len(data) > MAX_CHAINED_DATA:
            self._chain = None
            raise WrongLength(f"chained command data over {MAX_CHAINED_DATA} bytes")
        if command.cla & 0x10:
            self._chain = (header, data)
            return None
        self._chain = None
        return command.with_changes(data=data)
