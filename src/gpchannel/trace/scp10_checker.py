"""The trace checker of SCP10 sessions (GP Card Specification 2.2.1, Appendix F), built on the protocol code of
:mod:`gpchannel.scp.scp10` and :mod:`gpchannel.scp.scp10_sm` (no cryptography of its own).

An SCP10 session starts at MANAGE SECURITY ENVIRONMENT (INS 22, P1 81/C1, ``80 = 10 i``) and opens after
EXTERNAL AUTHENTICATE (key transport, i=02) or INTERNAL AUTHENTICATE (key agreement, i=01; F.1.5). What a trace
reader needs to recover the session keys, and why:

- key transport: the keys and ICV counters travel in PSO [decipher] (F.4.6, Table F-32) under PK.SD.AUT, so the
  card's private key SK.SD.AUT opens them; the off-card entity's private key cannot (it never sees them
  enciphered for itself).
- key agreement: the keys come from OES xor CS (F.3.1.3). OES travels in EXTERNAL AUTHENTICATE under PK.SD.AUT
  (Tables F-9, F-10: SK.SD.AUT opens it), CS in the INTERNAL AUTHENTICATE answer under PK.OCE.AUT (Tables F-5,
  F-6: SK.OCE.AUT opens it). Both private keys are needed; with one of them the session cannot be decoded.
- either way, the session keys themselves (:func:`parse_session_keys`: the MAC key with its ICV counter, the
  ENC key, the DEK) decode the secure messaging without the handshake.

Secure messaging is then checked with :class:`~gpchannel.scp.scp10_sm.SecureMessaging` as the card checks a
command (``unprotect_command``) and the off-card entity a response (``unprotect_response``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.codec.tlv import Tlv, parse_all
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.rsa import RsaPrivateKey, RsaPublicKey, iso9796_2_ds1_open, pkcs1_v15_verify_sha1, sha1
from gpchannel.errors import DecodeError, IntegrityError, SecurityError
from gpchannel.scp.scp10 import (
    C_ENC,
    C_MAC,
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_CHALLENGE,
    INS_INTERNAL_AUTHENTICATE,
    INS_MANAGE_SECURITY_ENVIRONMENT,
    INS_PERFORM_SECURITY_OPERATION,
    R_ENC,
    R_MAC,
    Crt,
    Scp10Option,
    SessionKeyData,
    SessionKeys,
    check_level,
    derive_agreement_keys,
    leftmost_key_data,
    pkcs1_type2_open,
)
from gpchannel.scp.scp10_cert import CertificateBody
from gpchannel.scp.scp10_sm import SecureMessaging
from gpchannel.trace.verifiers import Failure, Mismatch

__all__ = ["Scp10Secrets", "Scp10SessionKeys", "Scp10Tracker", "parse_session_keys", "scp10_option"]

_PART = re.compile(r"^(mac|enc|dek|counter|level)=([0-9A-Fa-f]+)$")


@dataclass(frozen=True, slots=True)
class Scp10SessionKeys:
    """One SCP10 session's keys as the default CRTs give them (B4 30, B8 30, B8 C0: one MAC key for C-MAC and
    R-MAC with its ICV counter, one ENC key, one DEK; Table F-11). ``level`` None: read from the wire."""

    mac: bytes = field(repr=False)
    enc: bytes = field(repr=False)
    counter: int
    dek: bytes = field(default=b"", repr=False)
    level: int | None = None

    def session_keys(self) -> SessionKeys:
        """Fresh :class:`SessionKeys` (their counters move as the session goes)."""
        crts = [Crt(0xB4, 0x30, key=self.mac, counter=self.counter.to_bytes(8, "big")), Crt(0xB8, 0x30, key=self.enc)]
        if self.dek:
            crts.append(Crt(0xB8, 0xC0, key=self.dek))
        return SessionKeys.from_transport(crts)


def parse_session_keys(text: str) -> Scp10SessionKeys:
    """``mac=HEX,enc=HEX,counter=HEX[,dek=HEX][,level=HEX]`` (commas or spaces); DecodeError otherwise, never
    echoing a key. ``counter`` is the MAC key's 8-byte ICV counter at the session's start (F.2.3)."""
    values: dict[str, bytes] = {}
    for part in (p for p in re.split(r"[\s,]+", text.strip()) if p):
        match = _PART.match(part)
        if match is None or match.group(1) in values or len(match.group(2)) % 2:
            raise DecodeError("SCP10 session keys are mac=HEX,enc=HEX,counter=HEX[,dek=HEX][,level=HEX]")
        values[match.group(1)] = bytes.fromhex(match.group(2))
    if not {"mac", "enc", "counter"} <= set(values):
        raise DecodeError("SCP10 session keys need mac=, enc= and counter= (the MAC key's ICV counter)")
    level = values.get("level")
    try:
        if len(values["counter"]) > 8 or (level is not None and len(level) != 1):
            raise ValueError("counter is 8 bytes at most, level one byte")
        keys = Scp10SessionKeys(
            values["mac"],
            values["enc"],
            int.from_bytes(values["counter"], "big"),
            values.get("dek", b""),
            check_level(level[0]) if level is not None else None,
        )
        keys.session_keys()
    except (ValueError, DecodeError) as exc:
        raise DecodeError(f"SCP10 session keys: {exc}") from None
    return keys


@dataclass(frozen=True, slots=True)
class Scp10Secrets:
    """What the reader of a trace holds: the card's private key (SK.SD.AUT), the off-card entity's (SK.OCE.AUT),
    session key sets. Never in a repr."""

    card_key: RsaPrivateKey | None = field(default=None, repr=False)
    oce_key: RsaPrivateKey | None = field(default=None, repr=False)
    session_keys: tuple[Scp10SessionKeys, ...] = field(default=(), repr=False)


def scp10_option(command: CommandApdu) -> Scp10Option | None:
    """The "i" of an MSE that starts an SCP10 initiation (F.4.5), None for any other command."""
    if command.ins != INS_MANAGE_SECURITY_ENVIRONMENT or command.p1 not in (0x81, 0xC1):
        return None
    if cla_has_secure_messaging(command.cla):
        return None
    try:
        items = {i.tag: i.value for i in parse_all(command.data)}
    except DecodeError:
        return None
    mech = items.get(0x80, b"")
    if len(mech) != 2 or mech[0] != 0x10 or mech[1] not in (1, 2):
        return None
    return Scp10Option(mech[1])


def certificate_body(raw: bytes) -> CertificateBody | None:
    """The body of a self-descriptive or 5F4E certificate, read without verifying it (None for the forms with
    message recovery, which only the issuer's key opens)."""
    try:
        outer = Tlv.from_bytes(raw)
        items = outer.children()
        if outer.tag != 0x7F21 or not items or items[-1].tag != 0x9E:
            return None
        if [i.tag for i in items[:-1]] == [0x5F4E]:
            return CertificateBody.from_value_bytes(items[0].value)
        if items[0].tag == 0x42:
            return CertificateBody.from_tlv_bytes(outer.value[: len(outer.value) - len(items[-1].to_bytes())])
    except DecodeError:
        return None
    return None


def _tags(data: bytes) -> set[int]:
    try:
        return {i.tag for i in parse_all(data)}
    except DecodeError:
        return set()


@dataclass(frozen=True, slots=True)
class Step:
    """What one exchange of an SCP10 session was: ``role`` is a :class:`~gpchannel.trace.session.Role` value."""

    role: str
    checks: tuple[str, ...] = ()
    plain_command: CommandApdu | None = None
    plain_response: ResponseApdu | None = None
    note: str = ""


class Scp10Tracker:
    """Follows one SCP10 session from its MSE; :meth:`step` takes each later exchange of its channel and raises
    :class:`Mismatch` where a check fails. ``unreadable`` says why the session cannot be decoded, once known."""

    def __init__(self, mse: CommandApdu, secrets: Scp10Secrets, card_certificate: bytes | None) -> None:
        option = scp10_option(mse)
        assert option is not None
        self.option = option
        self.secrets = secrets
        self.pk_oce: RsaPublicKey | None = secrets.oce_key.public if secrets.oce_key else None
        self.oce_id = b""
        if mse.p2 == 0xA4:  # the card already holds PK.OCE.AUT: tag 83 names it (F.4.5)
            self.oce_id = next((i.value for i in parse_all(mse.data) if i.tag == 0x83), b"")
        body = certificate_body(card_certificate) if card_certificate else None
        self.card_id = body.subject if body else b""
        self.pk_sd: RsaPublicKey | None = secrets.card_key.public if secrets.card_key else None
        if self.pk_sd is None and body is not None:
            self.pk_sd = body.public_key
        self.key_data: SessionKeyData | None = None
        self.transported: SessionKeys | None = None
        self.oes = b""
        self.challenge = b""
        self.chains: dict[tuple[int, int, int], bytes] = {}
        self.sm: SecureMessaging | None = None
        self.opened = False
        self.internal_done = False
        self.inferred = False
        self.unreadable = ""

    @property
    def level(self) -> int | None:
        return self.sm.level if self.sm is not None else (self.key_data.level if self.key_data else None)

    # -- initiation ---------------------------------------------------------------------------------------------
    def _joined(self, command: CommandApdu) -> bytes | None:
        """ISO/IEC 7816-4 command chaining (F.4): the whole data at the last segment, None before it."""
        header = (command.ins, command.p1, command.p2)
        data = self.chains.pop(header, b"") + command.data
        if command.cla & 0x10:
            self.chains[header] = data
            return None
        return data

    def step(self, command: CommandApdu, response: ResponseApdu | None) -> Step:
        """Check one exchange; Mismatch with the failure where a check does not hold."""
        sm = cla_has_secure_messaging(command.cla)
        if self.opened and not (command.ins == INS_INTERNAL_AUTHENTICATE and not sm and not self.internal_done):
            return self._secured(command, response)
        if response is None or response.sw != 0x9000:
            what = (
                "the trace ends before the card answered"
                if response is None
                else f"the card answered {response.sw:04X}"
            )
            raise Mismatch(Failure.CARD_REFUSED, f"SCP10 initiation refused: {what}")
        data = self._joined(command)
        if data is None:
            return Step("initiation", note="a segment of a chained command")
        ins, p1, p2 = command.ins, command.p1, command.p2
        if ins == INS_PERFORM_SECURITY_OPERATION and p1 == 0x00 and p2 in (0xAE, 0xBE):
            found = certificate_body(data)
            if found is None:
                return Step("initiation", note="a certificate with message recovery: read only with its issuer's key")
            if self.secrets.oce_key is None:
                self.pk_oce = found.public_key
            self.oce_id = found.subject
            return Step("initiation", ("certificate read",), note=f"certificate of {found.subject.hex().upper()}")
        if ins == INS_PERFORM_SECURITY_OPERATION and (p1, p2) == (0x80, 0x84):
            return self._decipher(data)
        if ins == INS_GET_CHALLENGE:
            self.challenge = response.data
            return Step("initiation")
        if ins == INS_EXTERNAL_AUTHENTICATE:
            return self._external_authenticate(data)
        if ins == INS_INTERNAL_AUTHENTICATE:
            return self._internal_authenticate(data, response)
        return Step("initiation")

    def _decipher(self, data: bytes) -> Step:
        key = self.secrets.card_key
        if key is None:
            return Step("key-agreement", note="PSO [decipher] carries the session keys under PK.SD.AUT: not opened")
        try:
            if len(data) != key.public.size:
                raise DecodeError(f"{len(data)} bytes for a {key.public.size}-byte key")
            self.key_data = SessionKeyData.from_bytes(pkcs1_type2_open(key.raw(data)))
            self.transported = SessionKeys.from_transport(self.key_data.crts)
        except (DecodeError, SecurityError, ValueError) as exc:
            raise Mismatch(
                Failure.WRONG_KEY,
                f"the card private key given does not open PSO [decipher] ({exc}): it is not this card's SK.SD.AUT, "
                "or a byte of the command changed",
            ) from None
        return Step("key-agreement", ("session keys recovered",), note=f"security level {self.key_data.level:02X}")

    def _external_authenticate(self, data: bytes) -> Step:
        checks: list[str] = []
        note = ""
        if self.option is Scp10Option.KEY_TRANSPORT:
            if self.pk_oce is not None and self.key_data is not None:
                if not pkcs1_v15_verify_sha1(self.pk_oce, self.key_data.to_bytes() + self.challenge, data):
                    raise Mismatch(Failure.SIGNATURE, "the off-card entity's signature does not verify (F.1.4.4)")
                checks.append("OCE signature")
            self._open(self.transported)
            return Step("external-authenticate", tuple(checks), note=note)
        key, pk_oce = self.secrets.card_key, self.pk_oce
        if key is None or pk_oce is None:
            self.unreadable = (
                "key agreement: OES is in EXTERNAL AUTHENTICATE under PK.SD.AUT and CS in the INTERNAL AUTHENTICATE "
                "answer under PK.OCE.AUT (F.3.1.3); "
                + ("the card's private key (--scp10-card-key)" if key is None else "the off-card entity's public key")
                + " is missing, so OES cannot be read"
            )
            return Step("external-authenticate", note="OES not opened")
        try:
            if len(data) != key.public.size:
                raise SecurityError(f"{len(data)} bytes for a {key.public.size}-byte key")
            recovered, digest = iso9796_2_ds1_open(pk_oce, key.raw(data))
            if len(recovered) < 36:
                raise SecurityError("the recovered message is too short")
        except SecurityError as exc:
            raise Mismatch(
                Failure.WRONG_KEY,
                f"EXTERNAL AUTHENTICATE does not open with the keys given ({exc}): the card private key is not "
                "SK.SD.AUT, or the off-card entity's key is not PK.OCE.AUT",
            ) from None
        if self.card_id:
            if not constant_time_equal(sha1(recovered + self.challenge + self.card_id), digest):
                raise Mismatch(Failure.SIGNATURE, "the off-card entity's signature does not verify (F.1.4.4)")
            checks.append("OCE signature")
        else:
            note = "OCE signature not checked: the card id (CERT.SD.AUT, GET DATA 7F21) is not in the trace"
        self.oes = recovered[-32:]
        try:
            self.key_data = leftmost_key_data(recovered[:-32])
        except DecodeError as exc:
            raise Mismatch(Failure.MALFORMED, f"EXTERNAL AUTHENTICATE: {exc}") from None
        checks.append("OES recovered")
        return Step("external-authenticate", tuple(checks), note=note)

    def _internal_authenticate(self, data: bytes, response: ResponseApdu) -> Step:
        self.internal_done = True
        size = self.option.challenge_length
        challenge, oce_id = data[:size], data[size:]
        if self.option is Scp10Option.KEY_TRANSPORT:
            if self.pk_sd is None or self.key_data is None:
                return Step("initiation", note="card signature not checked (no PK.SD.AUT or session keys)")
            keys = b"".join(c.key or b"" for c in self.key_data.crts)
            if not pkcs1_v15_verify_sha1(self.pk_sd, keys + challenge, response.data):
                raise Mismatch(Failure.SIGNATURE, "the card's signature does not verify (F.1.4.3)")
            return Step("initiation", ("card signature",))
        key, pk_sd = self.secrets.oce_key, self.pk_sd
        if key is None or pk_sd is None:
            reason = "the off-card entity's private key (--scp10-oce-key)" if key is None else "PK.SD.AUT"
            self.unreadable = self.unreadable or (
                f"key agreement: CS is in the INTERNAL AUTHENTICATE answer under PK.OCE.AUT; {reason} is missing, "
                "so CS cannot be read (F.3.1.3)"
            )
            self._open(None)
            return Step("key-agreement", note="CS not opened")
        try:
            recovered, digest = iso9796_2_ds1_open(pk_sd, key.raw(response.data))
        except (SecurityError, ValueError) as exc:
            raise Mismatch(Failure.WRONG_KEY, f"the INTERNAL AUTHENTICATE answer does not open ({exc})") from None
        if len(recovered) < 33 or not constant_time_equal(sha1(recovered + challenge + oce_id), digest):
            raise Mismatch(Failure.SIGNATURE, "the card's signature does not verify (F.1.4.3)")
        if self.key_data is None or not self.oes:
            self._open(None)
            return Step("key-agreement", ("card signature", "CS recovered"))
        self._open(derive_agreement_keys(self.key_data.crts, self.oes, recovered[-32:]))
        return Step("key-agreement", ("card signature", "CS recovered", "session keys derived"))

    def _open(self, keys: SessionKeys | None) -> None:
        self.opened = True
        if keys is not None and self.key_data is not None:
            self.sm = SecureMessaging(self.key_data.level, keys)
            self.unreadable = ""
        elif self.secrets.session_keys:
            self.unreadable = ""  # the session keys given pick themselves at the first secured command
        elif not self.unreadable:
            self.unreadable = (
                "key transport: the session keys travel in PSO [decipher] under PK.SD.AUT; give the card's private "
                "key SK.SD.AUT (--scp10-card-key) or the session keys (--scp10-session-keys)"
            )

    # -- secure messaging ---------------------------------------------------------------------------------------
    def _pick(self, command: CommandApdu) -> CommandApdu:
        """No keys from the handshake: the first session key set whose C-MAC verifies (or the only one)."""
        for spec in self.secrets.session_keys:
            level = spec.level if spec.level is not None else self._seen(command, None)
            sm = SecureMessaging(level, spec.session_keys())
            try:
                plain = sm.unprotect_command(command)
            except (IntegrityError, SecurityError, DecodeError):
                continue
            if level & C_MAC or len(self.secrets.session_keys) == 1:
                self.sm, self.inferred = sm, spec.level is None
                return plain
        raise Mismatch(
            Failure.WRONG_KEY,
            f"the C-MAC verifies with none of the {len(self.secrets.session_keys)} SCP10 session key set(s) given",
        )

    @staticmethod
    def _seen(command: CommandApdu | None, response: ResponseApdu | None) -> int:
        """The protections the wire shows (used only when no level is known)."""
        bits = 0
        if command is not None:
            tags = _tags(command.data) if cla_has_secure_messaging(command.cla) else set()
            bits |= (C_MAC if 0x8E in tags else 0) | (C_ENC if tags & {0x86, 0x87} else 0)
        if response is not None:
            tags = _tags(response.data)
            bits |= (R_MAC if 0x8E in tags else 0) | (R_ENC if tags & {0x86, 0x87} else 0)
        return bits

    def _secured(self, command: CommandApdu, response: ResponseApdu | None) -> Step:
        if self.sm is None and not self.secrets.session_keys:
            return Step("unchecked", note=self.unreadable)
        checks: list[str] = []
        try:
            if self.sm is None:
                plain = self._pick(command)
            else:
                if self.inferred:
                    self.sm.level |= self._seen(command, None)
                plain = self.sm.unprotect_command(command)
        except IntegrityError:
            raise Mismatch(Failure.C_MAC, "the C-MAC does not verify (F.3.2.1)") from None
        except DecodeError as exc:
            raise Mismatch(Failure.DECRYPTION, f"the command does not decode (F.3.2.2): {exc}") from None
        except SecurityError as exc:
            raise Mismatch(Failure.OUTSIDE_CHANNEL, f"{exc} (F.1.6): the card ends the session") from None
        assert self.sm is not None
        if cla_has_secure_messaging(command.cla):
            checks += ["C-MAC"] if self.sm.level & C_MAC else []
            checks += ["decrypted"] if self.sm.level & C_ENC and plain.data else []
        if response is None:
            return Step("secured", tuple(checks), plain)
        if self.inferred:
            self.sm.level |= self._seen(None, response)
        try:
            plain_response = self.sm.unprotect_response(response)
        except IntegrityError as exc:
            raise Mismatch(Failure.R_MAC, f"{exc} (F.3.2.4)") from None
        except DecodeError as exc:
            raise Mismatch(Failure.R_DECRYPTION, f"the response does not decode (F.3.2.5): {exc}") from None
        if plain_response != response:
            checks += ["R-MAC"] if self.sm.level & R_MAC else ["decrypted"]
        return Step("secured", tuple(checks), plain, plain_response)
