"""The key provider contract: where a card's keys live and how the secure channels get to use them, whatever holds
them (the OTA server's database, a PKCS#11 token).

A card's keys are rows (card, purpose, KVN, blob, algorithm) of a :class:`KeyRepository`; :class:`KeyProvider` is
what the OTA server asks (a card's SCP81 PSK, its SCP80 key set, its SCP03 keys or session keys, key check
values), and :class:`BaseKeyProvider` is what every provider shares: the row look-ups, references resolved
(:class:`DerivedKey`: a card key diversified from a master key, GP 2.3.1 / EMV CPS 1.1 / Amendment D schemes of
:mod:`gpchannel.crypto.diversification`), key sets bound to their SCP80 algorithms (ETSI TS 102 225 5.1), the
SCP03 KDF (Amendment D 6.2.1) and KCVs (Amendment D 7.2.2). How a provider protects a key is its own part
(:class:`gpchannel.server.keys.DbKeyProvider`, :class:`gpchannel.io.pkcs11.Pkcs11KeyProvider`).

This module sits in the core, below the adapters and the server: it imports the core (``crypto``, ``ota``,
``scp``) only, so that a provider in :mod:`gpchannel.io` needs nothing from :mod:`gpchannel.server`.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, Self

from gpchannel.crypto import ciphers
from gpchannel.crypto.ciphers import KeyMaterial, key_length
from gpchannel.crypto.diversification import Diversification
from gpchannel.crypto.diversification import KeyPurpose as DiversificationPurpose
from gpchannel.crypto.kdf import DerivationConstant, scp03_kdf
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import KeyNotFound, KeyProviderError, UnsupportedError
from gpchannel.ota.algorithms import KIC_ALGORITHMS, KID_ALGORITHMS, Scp80KeySet
from gpchannel.ota.spi import CipherAlgorithm, MacAlgorithm
from gpchannel.scp.scp03 import Scp03KeyHandles, Scp03SessionKeys

__all__ = [
    "BLOB_VERSION",
    "BaseKeyProvider",
    "CardRef",
    "DerivedKey",
    "KeyFamily",
    "KeyProvider",
    "KeyPurpose",
    "KeyRepository",
    "check_key",
    "decode_blob",
    "diversification_purpose",
    "parse_algorithm",
]

BLOB_VERSION = 1
"""The ``v`` of every ``card_keys`` blob document."""


class KeyPurpose(StrEnum):
    """The ``purpose`` column of ``card_keys``."""

    PSK = "psk"
    KIC = "kic"
    KID = "kid"
    ENC = "enc"
    MAC = "mac"
    DEK = "dek"


class KeyFamily(StrEnum):
    """What kind of key a row holds: the cipher its handle or bytes belong to."""

    AES = "aes"
    DES3 = "des3"
    DES = "des"
    PSK = "psk"


_LENGTHS = {KeyFamily.AES: (16, 24, 32), KeyFamily.DES3: (16, 24), KeyFamily.DES: (8,)}
_DIVERSIFICATION_PURPOSE = {
    KeyPurpose.KIC: DiversificationPurpose.ENC,
    KeyPurpose.ENC: DiversificationPurpose.ENC,
    KeyPurpose.KID: DiversificationPurpose.MAC,
    KeyPurpose.MAC: DiversificationPurpose.MAC,
    KeyPurpose.DEK: DiversificationPurpose.DEK,
}
_CIPHER_FAMILY = {
    CipherAlgorithm.DES_CBC: KeyFamily.DES,
    CipherAlgorithm.DES_ECB: KeyFamily.DES,
    CipherAlgorithm.DES3_2KEY_CBC: KeyFamily.DES3,
    CipherAlgorithm.DES3_3KEY_CBC: KeyFamily.DES3,
    CipherAlgorithm.DES3_ECB: KeyFamily.DES3,
    CipherAlgorithm.AES_CBC: KeyFamily.AES,
}
_MAC_FAMILY = {
    MacAlgorithm.DES_CBC_MAC: KeyFamily.DES,
    MacAlgorithm.DES3_2KEY_CBC_MAC: KeyFamily.DES3,
    MacAlgorithm.DES3_3KEY_CBC_MAC: KeyFamily.DES3,
    MacAlgorithm.AES_CMAC: KeyFamily.AES,
}


def diversification_purpose(purpose: KeyPurpose) -> DiversificationPurpose:
    """The diversification key type byte of a purpose: 01 for ENC and KIc, 02 for MAC and KID, 03 for DEK."""
    try:
        return _DIVERSIFICATION_PURPOSE[purpose]
    except KeyError:
        raise UnsupportedError(f"a {purpose.value} key cannot be diversified") from None


def parse_algorithm(
    algorithm: str, purpose: KeyPurpose | None = None
) -> tuple[KeyFamily, CipherAlgorithm | MacAlgorithm | None]:
    """The family of a ``card_keys.algorithm`` value and the SCP80 algorithm it binds the key to, if any.

    Accepted: the families ``aes``, ``des3``, ``des``, ``psk`` (also ``tls-psk``); the profile and inventory
    names of KIc algorithms (``des-cbc``, ``3des-2key``, ``3des-3key``, ``aes-cbc``) and KID algorithms
    (``des-cbc-mac``, ``3des-2key``, ``3des-3key``, ``aes-cmac``; ``3des-2key``/``3des-3key`` are read by the
    row's purpose); the :class:`CipherAlgorithm` / :class:`MacAlgorithm` values (``AES-CBC``, ``AES-CMAC``, ...).
    """
    name = algorithm.strip().lower()
    if name == "tls-psk":
        return KeyFamily.PSK, None
    try:
        return KeyFamily(name), None
    except ValueError:
        pass
    bound: CipherAlgorithm | MacAlgorithm | None = None
    if purpose is not KeyPurpose.KID:
        bound = KIC_ALGORITHMS.get(name)
    if bound is None and purpose is not KeyPurpose.KIC:
        bound = KID_ALGORITHMS.get(name)
    if bound is None:
        bound = next((c for c in CipherAlgorithm if c.value.lower() == name), None)
    if bound is None:
        bound = next((m for m in MacAlgorithm if m.value.lower() == name), None)
    if isinstance(bound, CipherAlgorithm):
        return _CIPHER_FAMILY[bound], bound
    if isinstance(bound, MacAlgorithm):
        return _MAC_FAMILY[bound], bound
    raise UnsupportedError(
        f"unknown key algorithm {algorithm!r}: one of aes, des3, des, psk (tls-psk), a KIc cipher "
        f"({', '.join(KIC_ALGORITHMS)}) or a KID MAC ({', '.join(KID_ALGORITHMS)})"
    )


def check_key(purpose: KeyPurpose, family: KeyFamily, key: bytes) -> None:
    """UnsupportedError unless ``key`` has a length its family allows and the family fits the purpose."""
    if purpose is KeyPurpose.PSK:
        if family is not KeyFamily.PSK:
            raise UnsupportedError(f"a PSK is stored with the algorithm 'psk', not {family.value!r}")
        if not 1 <= len(key) <= 64:
            raise UnsupportedError(f"a TLS PSK is 1 to 64 bytes here, got {len(key)}")
        return
    if family is KeyFamily.PSK:
        raise UnsupportedError(f"a {purpose.value} key cannot have the algorithm 'psk'")
    if len(key) not in _LENGTHS[family]:
        raise UnsupportedError(f"a {family.value} key is {_LENGTHS[family]} bytes, got {len(key)}")


class CardRef(Protocol):
    """What the providers read of a card record (:class:`gpchannel.server.repository.CardRecord` fits)."""

    @property
    def id(self) -> int: ...

    @property
    def ota(self) -> Mapping[str, Any]: ...


class KeyRepository(Protocol):
    """The part of :class:`gpchannel.server.repository.Repository` the providers use."""

    def set_card_key(self, card_id: int, purpose: str, kvn: int, blob: bytes, algorithm: str) -> None: ...

    def card_key(self, card_id: int, purpose: str, kvn: int | None = None) -> tuple[int, bytes, str] | None: ...


@dataclass(frozen=True, slots=True)
class DerivedKey:
    """A card key that is not stored but diversified from a master key (a reference in ``card_keys.blob``).

    The master is the key of the same purpose, KVN ``master_kvn`` (by default the card row's own KVN), of the
    card record ``master_card``. ``kdd`` is the 10-byte key diversification data: for SCP02/SCP03 card keys, the
    first 10 bytes of the card's INITIALIZE UPDATE response; for SCP80 keys, whatever the card issuer used (often
    the 10-byte ICCID). The diversification purpose byte is 01 for ENC and KIc, 02 for MAC and KID, 03 for DEK
    (see :mod:`gpchannel.crypto.diversification`).
    """

    master_card: int
    scheme: Diversification
    kdd: bytes
    master_kvn: int | None = None

    def __post_init__(self) -> None:
        if len(self.kdd) != 10:
            raise ValueError(f"key diversification data is 10 bytes, got {len(self.kdd)}")
        if self.scheme is Diversification.NONE:
            raise ValueError("a derived key needs a diversification scheme (emv, visa2 or kdf3)")

    def to_blob(self) -> bytes:
        doc: dict[str, Any] = {
            "v": BLOB_VERSION,
            "derive": self.scheme.value,
            "master_card": self.master_card,
            "kdd": self.kdd.hex(),
        }
        if self.master_kvn is not None:
            doc["master_kvn"] = self.master_kvn
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> DerivedKey:
        try:
            return cls(
                int(doc["master_card"]),
                Diversification(doc["derive"]),
                bytes.fromhex(doc["kdd"]),
                None if doc.get("master_kvn") is None else int(doc["master_kvn"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyProviderError(f"malformed derived-key reference: {exc}") from None


def decode_blob(blob: bytes) -> dict[str, Any]:
    """The JSON document of a ``card_keys`` blob (every provider writes one)."""
    try:
        doc = json.loads(blob)
    except (ValueError, UnicodeDecodeError):
        raise KeyProviderError("a card_keys blob is not a gpchannel key document") from None
    if not isinstance(doc, dict) or doc.get("v") != BLOB_VERSION:
        raise KeyProviderError("a card_keys blob is not a version-1 gpchannel key document")
    return doc


class KeyProvider(Protocol):
    """Where the OTA server gets each card's keys (contract F)."""

    def psk(self, card: CardRef) -> bytes | None:
        """The card's SCP81 PSK (KVN ``ota["psk_kvn"]``, else the highest stored), or None if it has none."""
        ...

    def scp80_keyset(self, card: CardRef, kvn: int) -> Scp80KeySet:
        """The card's SCP80 key set ``kvn`` (KIc and KID keys; token handles with PKCS#11); KeyNotFound."""
        ...

    def store_card_keys(self, card_id: int, keys: Mapping[tuple[str, int], tuple[bytes, str]]) -> None:
        """Import keys: (purpose, KVN) -> (key value, algorithm)."""
        ...

    def store_derived_keys(self, card_id: int, refs: Mapping[tuple[str, int], tuple[DerivedKey, str]]) -> None:
        """Store references to master keys: (purpose, KVN) -> (reference, algorithm of the card key)."""
        ...

    def scp03_session_keys(self, card: CardRef, kvn: int, context: bytes) -> Scp03SessionKeys:
        """S-ENC, S-MAC, S-RMAC of the card's SCP03 key set ``kvn`` (Amendment D 6.2.1) for ``context`` =
        host challenge || card challenge."""
        ...

    def scp03_keys(self, card: CardRef, kvn: int) -> StaticKeys | Scp03KeyHandles:
        """The card's SCP03 key set ``kvn`` for :class:`gpchannel.scp.scp03_host.Scp03Host`: bytes with the DB
        provider, token handles (session keys and DEK encryption in the token) with PKCS#11."""
        ...

    def key_check_value(self, card_id: int, purpose: str, kvn: int) -> bytes:
        """The 3-byte KCV (3DES over 8 x 00, AES over 16 x 01): what may be shown of a key."""
        ...

    def close(self) -> None: ...


class BaseKeyProvider(ABC):
    """What both providers share: the ``card_keys`` look-ups, key sets, SCP03 KDF, KCVs and references."""

    def __init__(self, repository: KeyRepository) -> None:
        self.repository = repository

    # -- the provider-specific part ------------------------------------------------------------------------------
    @abstractmethod
    def _store_key(self, card_id: int, purpose: KeyPurpose, kvn: int, key: bytes, algorithm: str) -> bytes:
        """Protect ``key`` and return the blob to store in its row."""

    @abstractmethod
    def _open_key(
        self, card_id: int, purpose: KeyPurpose, kvn: int, algorithm: str, doc: dict[str, Any]
    ) -> KeyMaterial:
        """The key of a stored (non-reference) row: bytes, or a handle that runs the operations."""

    @abstractmethod
    def _derive(
        self, master: KeyMaterial, scheme: Diversification, purpose: KeyPurpose, kdd: bytes, family: KeyFamily
    ) -> KeyMaterial:
        """The card key diversified from ``master``."""

    @abstractmethod
    def _psk_value(self, key: KeyMaterial) -> bytes:
        """The PSK's bytes for the TLS stack."""

    def close(self) -> None:
        """Release what the provider holds (token sessions); the repository stays open."""
        return None

    # -- shared -------------------------------------------------------------------------------------------------
    def reading_from(self, repository: KeyRepository) -> Self:
        """This provider looking its ``card_keys`` rows up in ``repository`` instead (a worker's rows, read for a
        whole batch of cards in one query): a shallow copy sharing the master key or the token session."""
        clone = copy.copy(self)
        clone.repository = repository
        return clone

    def store_card_keys(self, card_id: int, keys: Mapping[tuple[str, int], tuple[bytes, str]]) -> None:
        for (purpose_name, kvn), (key, algorithm) in keys.items():
            purpose = KeyPurpose(purpose_name)
            _check_kvn(kvn)
            family, _ = parse_algorithm(algorithm, purpose)
            check_key(purpose, family, key)
            blob = self._store_key(card_id, purpose, kvn, key, algorithm)
            self.repository.set_card_key(card_id, purpose.value, kvn, blob, algorithm)

    def store_derived_keys(self, card_id: int, refs: Mapping[tuple[str, int], tuple[DerivedKey, str]]) -> None:
        for (purpose_name, kvn), (ref, algorithm) in refs.items():
            purpose = KeyPurpose(purpose_name)
            _check_kvn(kvn)
            family, _ = parse_algorithm(algorithm, purpose)
            _check_scheme(purpose, ref.scheme, family)
            self.repository.set_card_key(card_id, purpose.value, kvn, ref.to_blob(), algorithm)

    def key(self, card_id: int, purpose: str, kvn: int | None = None) -> tuple[int, KeyMaterial, str]:
        """(KVN, key, algorithm) of a row, references resolved; KeyNotFound when there is none."""
        p = KeyPurpose(purpose)
        row = self.repository.card_key(card_id, p.value, kvn)
        if row is None:
            at = "any KVN" if kvn is None else f"KVN {kvn}"
            raise KeyNotFound(f"card {card_id} has no {p.value} key at {at}")
        found_kvn, blob, algorithm = row
        doc = decode_blob(blob)
        if "derive" not in doc:
            return found_kvn, self._open_key(card_id, p, found_kvn, algorithm, doc), algorithm
        ref = DerivedKey.from_document(doc)
        family, _ = parse_algorithm(algorithm, p)
        _check_scheme(p, ref.scheme, family)
        master_kvn = found_kvn if ref.master_kvn is None else ref.master_kvn
        _, master, _ = self.key(ref.master_card, p.value, master_kvn)
        return found_kvn, self._derive(master, ref.scheme, p, ref.kdd, family), algorithm

    def psk(self, card: CardRef) -> bytes | None:
        wanted = card.ota.get("psk_kvn")
        try:
            _, key, _ = self.key(card.id, KeyPurpose.PSK, None if wanted is None else int(wanted))
        except KeyNotFound:
            return None
        return self._psk_value(key)

    def scp80_keyset(self, card: CardRef, kvn: int) -> Scp80KeySet:
        """KIc and KID of key set ``kvn`` bound to their algorithm columns' SCP80 algorithms (when they name
        one); ``ota["cmac_length"]`` (4 or 8, default 8) is the AES-CMAC truncation (TS 102 225 5.1.3)."""
        _, kic, kic_alg = self.key(card.id, KeyPurpose.KIC, kvn)
        _, kid, kid_alg = self.key(card.id, KeyPurpose.KID, kvn)
        kic_family, cipher = parse_algorithm(kic_alg, KeyPurpose.KIC)
        kid_family, mac = parse_algorithm(kid_alg, KeyPurpose.KID)
        return Scp80KeySet(
            kic,
            kid,
            cipher=cipher if isinstance(cipher, CipherAlgorithm) else None,
            mac=mac if isinstance(mac, MacAlgorithm) else None,
            cmac_length=int(card.ota.get("cmac_length", 8)),
            allow_single_des=KeyFamily.DES in (kic_family, kid_family),
        )

    def scp03_session_keys(self, card: CardRef, kvn: int, context: bytes) -> Scp03SessionKeys:
        _, enc, enc_alg = self.key(card.id, KeyPurpose.ENC, kvn)
        _, mac, mac_alg = self.key(card.id, KeyPurpose.MAC, kvn)
        if parse_algorithm(enc_alg, KeyPurpose.ENC)[0] is not KeyFamily.AES or (
            parse_algorithm(mac_alg, KeyPurpose.MAC)[0] is not KeyFamily.AES
        ):
            raise UnsupportedError(f"SCP03 needs AES keys; card {card.id} KVN {kvn} has {enc_alg}/{mac_alg}")
        return Scp03SessionKeys(
            s_enc=scp03_kdf(enc, DerivationConstant.S_ENC, context, 8 * key_length(enc)),
            s_mac=scp03_kdf(mac, DerivationConstant.S_MAC, context, 8 * key_length(mac)),
            s_rmac=scp03_kdf(mac, DerivationConstant.S_RMAC, context, 8 * key_length(mac)),
        )

    def scp03_keys(self, card: CardRef, kvn: int) -> StaticKeys | Scp03KeyHandles:
        found = []
        for purpose in (KeyPurpose.ENC, KeyPurpose.MAC, KeyPurpose.DEK):
            _, key, algorithm = self.key(card.id, purpose, kvn)
            if parse_algorithm(algorithm, purpose)[0] is not KeyFamily.AES:
                raise UnsupportedError(f"SCP03 needs AES keys; card {card.id} KVN {kvn} {purpose.value} is {algorithm}")
            found.append(key)
        enc, mac, dek = found
        if isinstance(enc, bytes) and isinstance(mac, bytes) and isinstance(dek, bytes):
            return StaticKeys(enc, mac, dek, kvn, KeyType.AES)
        if isinstance(enc, bytes) or isinstance(mac, bytes) or isinstance(dek, bytes):
            raise KeyProviderError(f"card {card.id} KVN {kvn}: SCP03 keys partly in a token, partly not")
        return Scp03KeyHandles(enc, mac, dek, kvn)

    def key_check_value(self, card_id: int, purpose: str, kvn: int) -> bytes:
        _, key, algorithm = self.key(card_id, purpose, kvn)
        family, _ = parse_algorithm(algorithm, KeyPurpose(purpose))
        if family is KeyFamily.PSK:
            raise UnsupportedError("a PSK has no key check value")
        block = bytes(8) if family is not KeyFamily.AES else b"\x01" * 16
        if isinstance(key, bytes):
            if family is KeyFamily.AES:
                return ciphers.aes_ecb_encrypt(key, block)[:3]
            return ciphers.des3_ecb_encrypt(key, block)[:3]
        return key.encrypt_ecb(block)[:3]


def _check_kvn(kvn: int) -> None:
    if not 0 <= kvn <= 0xFF:
        raise ValueError(f"kvn must be a byte, got {kvn}")


def _check_scheme(purpose: KeyPurpose, scheme: Diversification, family: KeyFamily) -> None:
    if purpose is KeyPurpose.PSK:
        raise UnsupportedError("a PSK cannot be diversified here (store each card's PSK)")
    wanted = KeyFamily.AES if scheme is Diversification.KDF3 else KeyFamily.DES3
    if family is not wanted:
        raise UnsupportedError(f"{scheme.name} diversification gives {wanted.value} keys, the row says {family.value}")
