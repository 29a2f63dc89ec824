"""The off-card side of Delegated Management and DAP (GP Card Specification 2.3.1, 9.3.5, Appendix C).

:class:`Delegation` says how the host authorizes a delegated command, either with the Card Issuer's token key
(tokens computed on the fly over the command, C.4) or with a token the issuer computed beforehand, and with
which key it checks the receipts the card returns (C.5). :class:`DapSigner` makes the DAP block of a Load
File for a Security Domain with (Mandated) DAP Verification, from a key or from a signature computed
elsewhere (C.3). :func:`content_key_command` builds the PUT KEY of a token (70), receipt (71) or DAP (73) key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, cla_for_channel
from gpchannel.crypto.asym import EcPublicKey, RsaPublicKey
from gpchannel.errors import DecodeError, IntegrityError, RemoteProtocolError
from gpchannel.gp.dap import DapBlock, dap_block
from gpchannel.gp.tokens import (
    Confirmation,
    ConfirmationData,
    SigningKey,
    SymmetricKey,
    VerificationKey,
    public_key_data,
    sign,
    verify,
)
from gpchannel.scp.put_key import KeyComponent, PutKeyData, put_key_command

__all__ = ["DapSigner", "Delegation", "content_key_command"]


@dataclass(frozen=True, slots=True)
class Delegation:
    """Token source and receipt check for delegated commands. Keys stay out of the repr."""

    token_key: SigningKey | None = field(default=None, repr=False)
    token: bytes | None = None
    receipt_key: VerificationKey | None = field(default=None, repr=False)

    def token_for(self, signed: Callable[[], bytes]) -> bytes:
        """The token of a command whose signed data is ``signed()`` (C.4): the given one, or computed."""
        if self.token is not None:
            return self.token
        if self.token_key is not None:
            return sign(self.token_key, signed())
        return b""

    def check_receipt(
        self, response_data: bytes, receipt_data: Callable[[ConfirmationData], bytes]
    ) -> Confirmation | None:
        """Verify the receipt of a delegated command's response when a receipt key is known (C.5).

        Returns the confirmation (None when the card sent none and no receipt key was given).
        RemoteProtocolError when the confirmation is malformed or missing, IntegrityError when the receipt
        does not verify."""
        try:
            confirmation = Confirmation.from_response(response_data)
        except DecodeError as exc:
            raise RemoteProtocolError(f"the card's confirmation is malformed: {exc}") from None
        if self.receipt_key is None:
            return confirmation
        if confirmation is None or not confirmation.receipt:
            raise RemoteProtocolError("the card returned no receipt, but a receipt key was given")
        if not verify(self.receipt_key, receipt_data(confirmation.data), confirmation.receipt):
            raise IntegrityError("the card's receipt does not verify with the receipt key (C.5)")
        return confirmation


@dataclass(frozen=True, slots=True)
class DapSigner:
    """The DAP block for ``sd_aid``: signed here with ``key`` or given as ``signature`` (C.3)."""

    sd_aid: bytes
    key: SigningKey | None = field(default=None, repr=False)
    signature: bytes | None = None

    def __post_init__(self) -> None:
        if (self.key is None) == (self.signature is None):
            raise ValueError("a DAP needs either a signing key or a precomputed signature")

    def block(self, data_hash: bytes) -> DapBlock:
        if self.signature is not None:
            return DapBlock(self.sd_aid, self.signature)
        assert self.key is not None
        return dap_block(self.key, self.sd_aid, data_hash)


def content_key_command(
    kvn: int,
    key: RsaPublicKey | EcPublicKey | SymmetricKey,
    encrypt: Callable[[bytes], bytes],
    *,
    replace: bool = False,
    channel: int = 0,
) -> CommandApdu:
    """PUT KEY of a token (70), receipt (71) or DAP (73) key (11.8; C.1): a public key in clear (A1/A0 or
    B0/F0), a secret key encrypted with the channel's DEK (``encrypt``) with its KCV."""
    old = kvn if replace else 0
    if isinstance(key, SymmetricKey):
        data = PutKeyData(kvn, (KeyComponent.build(key.value, key.key_type, encrypt),))
        return put_key_command(data, key_id=1, old_kvn=old, channel=channel)
    body = bytes((kvn,)) + public_key_data(key)
    return CommandApdu(cla_for_channel(0x80, channel), 0xD8, old, 0x81, body, 256)
