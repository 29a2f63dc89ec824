"""Key providers of the OTA server: where each card's keys live and how the secure channels get to use them (the
contract and the shared part: :mod:`gpchannel.keystore`).

A card's keys are rows of ``card_keys`` (card, purpose, KVN, blob, algorithm; :mod:`gpchannel.server.repository`).
What the blob holds depends on the provider:

- :class:`DbKeyProvider` (the default): the key wrapped under the server's master key with AES-256-GCM (NIST
  SP 800-38D). The associated data binds the wrapped key to its row (card id, purpose, KVN, algorithm) so that a
  blob copied to another card or relabelled does not unwrap, and a key identifier of the master key travels in
  the clear beside it, so that a server started with another master key says so (:class:`WrongMasterKey`)
  rather than failing on every tag. The master key is 32 bytes, from ``GPCHANNEL_MASTER_KEY`` (hex) or the file
  ``master.key`` in the data directory, created on first start (:func:`load_master_key`).
- :class:`gpchannel.io.pkcs11.Pkcs11KeyProvider`: the label of a key object in a PKCS#11 token; the key never
  leaves the token, which runs the SCP80 ciphering and CC and the SCP03 KDF's CMACs itself.

A row may also hold a *reference* instead of a key (:class:`gpchannel.keystore.DerivedKey`): the card key is
diversified from the key of the same purpose of a master "card" (a card record that only holds master keys) with
the card's key diversification data, by one of the schemes of :mod:`gpchannel.crypto.diversification` (EMV CPS
1.1 and VISA2 for 3DES masters, KDF3 for AES masters). Both providers resolve references; the PKCS#11 one derives
inside the token.

The algorithm column names the key's family (``aes``, ``des3``, ``des`` for single DES, ``psk``) or, for SCP80
keys, the algorithm the key set is bound to (a :class:`~gpchannel.ota.spi.CipherAlgorithm` value such as
``AES-CBC`` for a KIc key, a :class:`~gpchannel.ota.spi.MacAlgorithm` value such as ``AES-CMAC`` for a KID key):
a bound key set refuses a KIc/KID naming another algorithm (ota-notes E.2). Single DES is allowed only for keys
whose algorithm says so (TS 102 225 keeps it for legacy cards).

The SCP81 PSK has to reach the TLS stack as bytes (OpenSSL's PSK callback copies it into the handshake), so
:meth:`gpchannel.keystore.KeyProvider.psk` returns bytes with either provider; with PKCS#11 the PSK is an
extractable secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpchannel.crypto import ciphers
from gpchannel.crypto.ciphers import KeyMaterial
from gpchannel.crypto.diversification import Diversification, diversify_key
from gpchannel.errors import IntegrityError, KeyProviderError, WrongMasterKey
from gpchannel.keystore import (
    BLOB_VERSION,
    BaseKeyProvider,
    KeyFamily,
    KeyPurpose,
    KeyRepository,
    diversification_purpose,
)

if TYPE_CHECKING:
    from gpchannel.server.config import ServerConfig

__all__ = [
    "MASTER_KEY_ENV",
    "MASTER_KEY_FILE",
    "PIN_ENV",
    "DbKeyProvider",
    "load_master_key",
    "master_key_id",
    "open_key_provider",
]

MASTER_KEY_ENV = "GPCHANNEL_MASTER_KEY"
"""Environment variable holding the master key in hex (64 hex digits)."""
MASTER_KEY_FILE = "master.key"
"""File of the master key (hex, mode 0600) in the server's data directory, created on first start."""

PIN_ENV = "GPCHANNEL_PKCS11_PIN"
"""Environment variable read for the token's user PIN when the configuration gives none."""

_MASTER_KEY_LENGTH = 32
_WRAP = "A256GCM"


# --------------------------------------------------------------------------------------------- the master key


def master_key_id(master_key: bytes) -> bytes:
    """8 bytes naming a master key without revealing it: HMAC-SHA-256(master, "gpchannel master key id")."""
    return hmac.new(master_key, b"gpchannel master key id", hashlib.sha256).digest()[:8]


def load_master_key(
    data_dir: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """The 32-byte master key: ``GPCHANNEL_MASTER_KEY`` (64 hex digits) if set, else the file ``path`` (by
    default ``<data_dir>/master.key``).

    On first start (no variable, no file) a random key is written to ``master.key`` with mode 0600, atomically:
    a temporary file is written and fsynced, then hard-linked to its final name (which fails if another process
    won the race; its key is then used) and the directory fsynced. A file readable by group or others is refused,
    as ssh refuses such private keys. Back this file up: without it the wrapped keys are lost.
    """
    env = os.environ if environ is None else environ
    value = env.get(MASTER_KEY_ENV)
    if value:
        return _parse_master_key(value, MASTER_KEY_ENV)
    if path is not None:
        file = Path(path)
    elif data_dir is not None:
        file = Path(data_dir) / MASTER_KEY_FILE
    else:
        raise KeyProviderError(f"no master key: set {MASTER_KEY_ENV} or give the server a data directory")
    if not file.exists():
        _create_master_key(file.parent, file)
    mode = file.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyProviderError(f"{file} is readable by others (mode {mode:04o}); chmod 600 it")
    return _parse_master_key(file.read_text(), str(file))


def _parse_master_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyProviderError(f"the master key in {where} is not hex") from None
    if len(key) != _MASTER_KEY_LENGTH:
        raise KeyProviderError(f"the master key in {where} is {len(key)} bytes; it must be {_MASTER_KEY_LENGTH}")
    return key


def _create_master_key(directory: Path, path: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{MASTER_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secrets.token_bytes(_MASTER_KEY_LENGTH).hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first: use that one
    finally:
        tmp.unlink()
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------------------------- DbKeyProvider


class DbKeyProvider(BaseKeyProvider):
    """Keys in the database, each wrapped under the master key with AES-256-GCM (see the module docstring).

    Blob: ``{"v": 1, "wrap": "A256GCM", "mk": <master key id>, "n": <12-byte random nonce>, "ct": <ciphertext
    and tag>}`` (hex), associated data ``"gpchannel card key v1" || card id (8 bytes) || purpose || 00 || KVN ||
    algorithm``. A wrong master key raises :class:`WrongMasterKey`; an altered blob (or one moved to another
    row) :class:`KeyProviderError`. Never a garbage key.
    """

    def __init__(self, repository: KeyRepository, master_key: bytes) -> None:
        if len(master_key) != _MASTER_KEY_LENGTH:
            raise ValueError(f"the master key is {_MASTER_KEY_LENGTH} bytes, got {len(master_key)}")
        super().__init__(repository)
        self._master = master_key
        self._master_id = master_key_id(master_key)

    def __repr__(self) -> str:
        return f"DbKeyProvider(master key id {self._master_id.hex()})"

    @staticmethod
    def _aad(card_id: int, purpose: KeyPurpose, kvn: int, algorithm: str) -> bytes:
        return (
            b"gpchannel card key v1"
            + card_id.to_bytes(8, "big", signed=True)
            + purpose.value.encode()
            + b"\x00"
            + bytes((kvn,))
            + algorithm.encode()
        )

    def _store_key(self, card_id: int, purpose: KeyPurpose, kvn: int, key: bytes, algorithm: str) -> bytes:
        nonce = secrets.token_bytes(12)
        sealed = ciphers.aes_gcm_encrypt(self._master, nonce, key, self._aad(card_id, purpose, kvn, algorithm))
        doc = {"v": BLOB_VERSION, "wrap": _WRAP, "mk": self._master_id.hex(), "n": nonce.hex(), "ct": sealed.hex()}
        return json.dumps(doc, sort_keys=True).encode()

    def _open_key(self, card_id: int, purpose: KeyPurpose, kvn: int, algorithm: str, doc: dict[str, Any]) -> bytes:
        where = f"card {card_id}'s {purpose.value} key (KVN {kvn})"
        if "pkcs11" in doc:
            raise KeyProviderError(f"{where} is in a PKCS#11 token: start the server with --keys pkcs11")
        if doc.get("wrap") != _WRAP:
            raise KeyProviderError(f"{where} is wrapped with {doc.get('wrap')!r}, not {_WRAP}")
        try:
            mk, nonce, sealed = bytes.fromhex(doc["mk"]), bytes.fromhex(doc["n"]), bytes.fromhex(doc["ct"])
        except (KeyError, TypeError, ValueError):
            raise KeyProviderError(f"{where}: malformed wrapped-key document") from None
        if not hmac.compare_digest(mk, self._master_id):
            raise WrongMasterKey(
                f"{where} was wrapped under master key {mk.hex()}, this server's master key is "
                f"{self._master_id.hex()}: start it with the {MASTER_KEY_ENV} or {MASTER_KEY_FILE} the keys were "
                "imported with"
            )
        try:
            return ciphers.aes_gcm_decrypt(self._master, nonce, sealed, self._aad(card_id, purpose, kvn, algorithm))
        except (IntegrityError, ValueError):
            raise KeyProviderError(
                f"{where} does not verify (GCM tag): the blob was altered or moved to another row"
            ) from None

    def _derive(
        self, master: KeyMaterial, scheme: Diversification, purpose: KeyPurpose, kdd: bytes, family: KeyFamily
    ) -> bytes:
        assert isinstance(master, bytes)
        return diversify_key(master, scheme, diversification_purpose(purpose), kdd)

    def _psk_value(self, key: KeyMaterial) -> bytes:
        assert isinstance(key, bytes)
        return key


def open_key_provider(
    config: ServerConfig, repository: KeyRepository, environ: Mapping[str, str] | None = None
) -> BaseKeyProvider:
    """The provider ``config.key_provider`` names: ``db`` (:class:`DbKeyProvider` with :func:`load_master_key`
    from ``config.master_key_file`` or ``config.data_dir``) or ``pkcs11``
    (:class:`gpchannel.io.pkcs11.Pkcs11KeyProvider` on ``config.pkcs11_lib`` / ``pkcs11_token``, the PIN from
    ``config.pkcs11_pin`` or the environment variable ``GPCHANNEL_PKCS11_PIN``)."""
    env = os.environ if environ is None else environ
    if config.key_provider == "db":
        master = load_master_key(config.data_dir, env, path=config.master_key_file)
        return DbKeyProvider(repository, master)
    if config.key_provider == "pkcs11":
        from gpchannel.io.pkcs11 import Pkcs11KeyProvider  # lazily: loads the PKCS#11 library

        if not config.pkcs11_lib or not config.pkcs11_token:
            raise KeyProviderError("--keys pkcs11 needs --pkcs11-lib (the module .so) and --token (its label)")
        pin = config.pkcs11_pin if config.pkcs11_pin is not None else env.get(PIN_ENV)
        if pin is None:
            raise KeyProviderError(f"--keys pkcs11 needs the token's user PIN (--pin-env VAR, or {PIN_ENV})")
        return Pkcs11KeyProvider(repository, config.pkcs11_lib, config.pkcs11_token, pin)
    raise KeyProviderError(f"unknown key provider {config.key_provider!r} (db or pkcs11)")
