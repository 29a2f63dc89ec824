"""Delegated Management and DAP verification on the card (GP Card Specification 2.3.1, 9.1.3, 9.2, 9.3.5,
Appendix C).

Theory of operation. A Security Domain with the Delegated Management privilege manages card content only with
a token per command (9.3.5, C.4), verified by the Security Domain holding the Token Verification privilege
with its key version 70 (C.1.1.1). Without that privilege a token is refused (11.5.2.3: "an error status shall
be returned if a token is present"). After the operation the Security Domain with the Receipt Generation
privilege (key version 71, AES or DES) returns a receipt over the Confirmation Data and the operation's AIDs,
and counts it (C.5). Load Files carry DAP blocks: every Security Domain with Mandated DAP Verification (in the
PERSONALIZED state, or the ISD) and the associated Security Domain with DAP Verification must find its block,
and each block is verified with the key version 73 of the Security Domain it names (9.3.5, C.3).

Status words: a token or DAP that is missing or does not verify, or a verification key that is absent, is
6982 (security status not satisfied); a token where none is expected, or a DAP block without a Load File Data
Block Hash, is 6A80. The dispatcher rolls the state back on any error, so nothing is installed, loaded or
counted then.
"""

from __future__ import annotations

from collections.abc import Callable

from gpchannel.card.context import CardContext
from gpchannel.card.state import Application, ContentKey
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import first_value, parse_pairs
from gpchannel.crypto.asym import EcCurve, EcPublicKey, RsaPublicKey, rsa_public_key
from gpchannel.crypto.keys import KeyType
from gpchannel.errors import DecodeError, IncorrectData, SecurityNotSatisfied
from gpchannel.gp import lifecycle as lc
from gpchannel.gp.dap import LoadFileParts, verify_dap
from gpchannel.gp.privileges import Privilege
from gpchannel.gp.tokens import (
    KVN_DAP_VERIFICATION,
    KVN_RECEIPT_GENERATION,
    KVN_TOKEN_VERIFICATION,
    Confirmation,
    ConfirmationData,
    SymmetricKey,
    VerificationKey,
    parse_public_key_data,
    sign,
    verify,
)
from gpchannel.scp.common import CardChannel
from gpchannel.scp.put_key import PutKeyCommand

__all__ = [
    "authorize",
    "check_daps",
    "confirm",
    "is_delegated",
    "put_content_key",
    "signature_key",
    "token_identifier",
]


def is_delegated(sd: Application) -> bool:
    """Whether ``sd`` acts under Delegated Management (6.6.1)."""
    return Privilege.DELEGATED_MANAGEMENT in sd.privileges


def signature_key(key: ContentKey) -> VerificationKey:
    """The verification (or, for a symmetric key, signing) key of a stored content key."""
    if key.kind == "rsa":
        return rsa_public_key(key.value, key.exponent)
    if key.kind == "ec":
        return EcPublicKey(EcCurve(key.curve), key.value)
    return SymmetricKey(KeyType.AES if key.kind == "aes" else KeyType.DES3, key.value)


def _holder(ctx: CardContext, privilege: Privilege) -> Application | None:
    return next((a for a in ctx.state.applications if a.sd is not None and privilege in a.privileges), None)


def _key_of(ctx: CardContext, privilege: Privilege, kvn: int, what: str) -> tuple[Application, ContentKey]:
    holder = _holder(ctx, privilege)
    key = holder.sd.content_key(kvn) if holder is not None and holder.sd is not None else None
    if holder is None or key is None:
        raise SecurityNotSatisfied(f"no {what} key: a Security Domain with {privilege.camel_name} and key {kvn:02X}")
    return holder, key


def token_identifier(parameters: bytes) -> bytes | None:
    """The token identifier (``93`` in the ``B6`` template) of a parameters field or DELETE data, if any."""
    try:
        template = first_value(parse_pairs(parameters), 0xB6)
        return first_value(parse_pairs(template), 0x93) if template is not None else None
    except DecodeError:
        return None


def authorize(ctx: CardContext, sd: Application, token: bytes, signed: Callable[[], bytes]) -> bool:
    """Check the token of a card content command issued through ``sd`` (9.3.5; C.4).

    Returns True for a delegated command whose token verified; False when ``sd`` manages content on its own
    authority. ``signed`` gives the bytes the token signs (P1 P2 Lc data, Tables C-4 to C-9)."""
    if not is_delegated(sd):
        if token:
            raise IncorrectData("a token is only for Delegated Management (11.5.2.3)")
        return False
    if not token:
        raise SecurityNotSatisfied("Delegated Management needs a token with this command (9.3.5, C.4)")
    _, key = _key_of(ctx, Privilege.TOKEN_MANAGEMENT, KVN_TOKEN_VERIFICATION, "token verification")
    try:
        verification_key = signature_key(key)
    except ValueError:
        raise SecurityNotSatisfied("the token verification key is not usable") from None
    if not verify(verification_key, signed(), token):
        raise SecurityNotSatisfied("the token does not verify (C.4)")
    receipt_holder = _holder(ctx, Privilege.RECEIPT_GENERATION)
    if receipt_holder is not None:  # C.1.1.2: the operation fails when the receipt key is missing
        _key_of(ctx, Privilege.RECEIPT_GENERATION, KVN_RECEIPT_GENERATION, "receipt generation")
    return True


def _unique_data(ctx: CardContext, holder: Application) -> bytes:
    """SD unique data (11.1.6): 42 || 45 of the receipt SD; the ISD's are the IIN and CIN. An SSD here has no
    provider identification of its own, so its AID stands in."""
    if holder.aid == ctx.state.isd_aid and ctx.state.iin + ctx.state.cin:
        return ctx.state.iin + ctx.state.cin
    return holder.aid


def confirm(
    ctx: CardContext, sd: Application, identifier: bytes | None, receipt_data: Callable[[ConfirmationData], bytes]
) -> bytes:
    """The response data of a delegated command (Tables 11-13, 11-25, 11-54, 11-59): the confirmation with its
    receipt, and the confirmation counter counted up (it stops at FFFF, C.5); ``00`` when no receipt applies."""
    if not is_delegated(sd) or _holder(ctx, Privilege.RECEIPT_GENERATION) is None:
        return b"\x00"
    holder, key = _key_of(ctx, Privilege.RECEIPT_GENERATION, KVN_RECEIPT_GENERATION, "receipt generation")
    assert holder.sd is not None
    receipt_key = signature_key(key)
    if not isinstance(receipt_key, SymmetricKey):
        raise SecurityNotSatisfied("receipts are generated with AES or DES keys on this card")
    counter = holder.sd.confirmation_counter
    data = ConfirmationData(counter, _unique_data(ctx, holder), identifier)
    receipt = sign(receipt_key, receipt_data(data))
    holder.sd.confirmation_counter = min(counter + 1, 0xFFFF)
    return Confirmation(receipt, data).to_bytes()


def _requires_dap(ctx: CardContext, app: Application, associated: bytes) -> bool:
    if app.sd is None:
        return False
    if Privilege.MANDATED_DAP_VERIFICATION in app.privileges:
        return app.aid == ctx.state.isd_aid or (app.lifecycle & ~lc.LOCKED_BIT) == lc.SD_PERSONALIZED
    return app.aid == associated and Privilege.DAP_VERIFICATION in app.privileges


def _minimum_hash_length(key: VerificationKey) -> int:
    """Table C-3: the LFDBH is at least as strong as the hash the signature scheme uses (B.3, B.4.3)."""
    if isinstance(key, RsaPublicKey):
        return 20 if key.bits <= 1024 else 32
    if isinstance(key, EcPublicKey):
        return {32: 32, 48: 48}.get(key.order_length, 64)
    return 0


def check_daps(ctx: CardContext, associated_sd: bytes, data_hash: bytes, parts: LoadFileParts) -> None:
    """DAP verification at the end of a load (9.3.5 Load Phase / Completion; C.3)."""
    required = {a.aid for a in ctx.state.applications if _requires_dap(ctx, a, associated_sd)}
    if not parts.dap_blocks and not required:
        return
    if not data_hash:
        raise IncorrectData("DAP verification needs the Load File Data Block Hash in INSTALL [for load] (C.2)")
    verified: set[bytes] = set()
    for block in parts.dap_blocks:
        verifier = ctx.state.application(block.sd_aid)
        privileges = verifier.privileges if verifier is not None else None
        if (
            verifier is None
            or verifier.sd is None
            or privileges is None
            or not (Privilege.DAP_VERIFICATION in privileges or Privilege.MANDATED_DAP_VERIFICATION in privileges)
        ):
            raise SecurityNotSatisfied("a DAP block names no Security Domain with DAP Verification (9.3.5)")
        key = verifier.sd.content_key(KVN_DAP_VERIFICATION)
        if key is None:
            raise SecurityNotSatisfied("the DAP Verification Security Domain has no key 73 (C.1.2)")
        try:
            verification_key = signature_key(key)
            ok = verify_dap(verification_key, data_hash, block)
        except ValueError:
            ok = False
        if ok and len(data_hash) < _minimum_hash_length(verification_key):
            raise IncorrectData("the Load File Data Block Hash is weaker than the DAP's hash (Table C-3)")
        if not ok:
            raise SecurityNotSatisfied("the DAP does not verify against the Load File Data Block Hash (C.3)")
        verified.add(block.sd_aid)
    if required - verified:
        raise SecurityNotSatisfied("a DAP block is required for this load (DAP / Mandated DAP Verification, 9.2.1)")


def put_content_key(sd: Application, session: CardChannel, command: CommandApdu) -> ResponseApdu:
    """PUT KEY of a token (70), receipt (71) or DAP (73) key (11.8; C.1): an AES/DES key encrypted with the
    DEK and checked by its KCV, or a public key in clear (RSA A1 + A0, ECC B0 + F0). P1 00 adds the key, P1
    equal to the KVN replaces it. The response is the KVN and the KCV (none for a public key)."""
    assert sd.sd is not None
    data = command.data
    kvn, old = data[0], command.p1 & 0x7F
    existing = sd.sd.content_key(kvn)
    if old not in (0, kvn) or (old == 0) != (existing is None):
        raise IncorrectData(f"key {kvn:02X}: P1 00 adds a new key, P1 {kvn:02X} replaces the existing one")
    kcv = b""
    try:
        public = parse_public_key_data(data[1:]) if len(data) > 1 and data[1] in (0xA0, 0xA1, 0xB0) else None
    except DecodeError as exc:
        raise IncorrectData(f"PUT KEY public key: {exc}") from None
    if public is not None:
        if kvn == KVN_RECEIPT_GENERATION:
            raise IncorrectData("receipt keys are AES or DES keys on this card")
        if isinstance(public, RsaPublicKey):
            key = ContentKey(kvn, "rsa", public.modulus_bytes, public.exponent_bytes)
        else:
            key = ContentKey(kvn, "ec", public.point, curve=int(public.curve))
    else:
        parsed = PutKeyCommand.from_apdu(command)
        if len(parsed.data.keys) != 1:
            raise IncorrectData("a token, receipt or DAP key is one key")
        (clear,) = parsed.data.decrypt(session.decrypt_key)
        component = parsed.data.keys[0]
        kind = "aes" if component.key_type == KeyType.AES.value else "des3"
        if kind == "des3" and len(clear) != 16:
            raise IncorrectData("a DES token, receipt or DAP key is 16 bytes (Table C-1)")
        key, kcv = ContentKey(kvn, kind, clear), component.kcv
    sd.sd.content_keys = [k for k in sd.sd.content_keys if k.kvn != kvn] + [key]
    return ResponseApdu(bytes((kvn,)) + kcv)
