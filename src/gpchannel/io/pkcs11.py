"""Keys in a PKCS#11 token (python-pkcs11; SoftHSM2 in the tests): the static keys never leave the token.

Every SCP80 and SCP03 key is a secret key object with ``CKA_SENSITIVE`` true and ``CKA_EXTRACTABLE`` false
(PKCS#11 v2.40, 4.9): its value cannot be read, wrapped out or made readable again. The protocols get
:class:`Pkcs11Key` handles (:class:`gpchannel.crypto.ciphers.SymmetricKey`) and the token does the work:

- SCP80 ciphering (ETSI TS 102 225 5.1.2): ``CKM_DES3_CBC`` / ``CKM_AES_CBC`` with a zero ICV, ``CKM_DES3_ECB``;
- the SCP80 CC (5.1.3): for 3DES the last block of ``CKM_DES3_CBC`` over the zero-padded input (ISO/IEC 9797-1
  MAC algorithm 1), for AES ``CKM_AES_CMAC`` (NIST SP 800-38B);
- the SCP03 KDF (Amendment D 4.1.5): each PRF call is ``CKM_AES_CMAC`` in the token; only the session keys come
  out (they are per-session, as the card's are);
- per-card diversification (:class:`gpchannel.keystore.DerivedKey`) with ``C_DeriveKey``, so that the card key
  exists only in the token, as a session object: EMV CPS 1.1 and VISA2 are one 3DES-ECB encryption of a 16-byte
  block (``CKM_DES3_ECB_ENCRYPT_DATA``); KDF3 is AES-CMAC over exactly one block ``i || 00 00 00 || kt || 00 ||
  KDD``, i.e. ``AES(master, block XOR K1)`` with the CMAC subkey K1 (SP 800-38B 6.1), so it is
  ``CKM_AES_ECB_ENCRYPT_DATA`` over the blocks XORed with K1. Computing K1 needs ``L = AES(master, 0^128)`` outside
  the token: a known-plaintext block of the master, the kind of value a key check value reveals, never the key.

Single DES keys (8 bytes, legacy SCP80) are stored as the equivalent 3DES key ``K || K || K``; two-key 3DES keys
as ``CKK_DES2``. Key objects are labelled ``gpchannel:<card>:<purpose>:<kvn>:<random>``; the ``card_keys`` blob
holds that label (``{"v": 1, "pkcs11": label, "type": family, "len": n}``), and a re-import creates the new object
before the row points to it and destroys the old one after.

The SCP81 PSK is the exception: OpenSSL's PSK callback must hand the key's bytes to the TLS handshake, so a PSK
is a ``CKK_GENERIC_SECRET`` with ``CKA_SENSITIVE`` false and ``CKA_EXTRACTABLE`` true, read when a card connects.
(Keeping PSKs in a token therefore protects them at rest only; the DB provider gives the same protection.)

Threads: python-pkcs11 initialises the module without OS locking (``C_Initialize(NULL)``), so the provider
serialises its calls into the module with one process-wide lock and uses one logged-in session; it may be
called from any thread (the asyncio server calls it through ``asyncio.to_thread``). A token operation is a few
microseconds in SoftHSM; a network HSM would want a session pool and a module initialised for threads.
"""

from __future__ import annotations

import ctypes
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import NoSuchKey, NoSuchToken, PKCS11Error, UserAlreadyLoggedIn

from gpchannel.crypto.ciphers import KeyMaterial
from gpchannel.crypto.diversification import Diversification
from gpchannel.errors import KeyNotFound, KeyProviderError, UnsupportedError
from gpchannel.keystore import (
    BaseKeyProvider,
    KeyFamily,
    KeyPurpose,
    KeyRepository,
    decode_blob,
    diversification_purpose,
    parse_algorithm,
)

__all__ = ["Pkcs11Key", "Pkcs11KeyProvider"]

_T = TypeVar("_T")
_DERIVED_CACHE = 256
_OBJECT_CACHE = 4096
_LABEL_PREFIX = "gpchannel"

# PKCS#11 login is per application and token: providers on the same token share one login session, closed (which
# logs out) when the last of them closes. python-pkcs11 initialises the module with C_Initialize(NULL), which
# tells it that the application does not call it from several threads at once (PKCS#11 v2.40 5.4): every call
# into the module holds this lock.
_LOGINS: dict[tuple[str, str], list[Any]] = {}
_TOKEN_LOCK = threading.RLock()


@dataclass(frozen=True, slots=True)
class _Stored:
    label: str


@dataclass(frozen=True, slots=True)
class _Derived:
    master: _Stored | _Derived
    mechanism: Mechanism
    data: bytes
    key_type: KeyType
    length: int


_Ref = _Stored | _Derived


class _StringData(ctypes.Structure):
    """CK_KEY_DERIVATION_STRING_DATA (PKCS#11 v2.40 2.14.2), for CKM_DES3_ECB_ENCRYPT_DATA, which python-pkcs11
    passes through as raw bytes."""

    _fields_ = (("pData", ctypes.c_void_p), ("ulLen", ctypes.c_ulong))


class Pkcs11Key:
    """A DES/3DES or AES key in the token (a :class:`gpchannel.crypto.ciphers.SymmetricKey`). Its repr shows the
    label and size, never a value (the token does not give it out anyway)."""

    __slots__ = ("_family", "_provider", "_ref", "key_length")

    def __init__(self, provider: Pkcs11KeyProvider, ref: _Ref, family: KeyFamily, length: int) -> None:
        self._provider = provider
        self._ref = ref
        self._family = family
        self.key_length = length

    def __repr__(self) -> str:
        where = self._ref.label if isinstance(self._ref, _Stored) else "derived"
        return f"Pkcs11Key({where}, {self._family.value}, {8 * self.key_length} bits)"

    @property
    def block_size(self) -> int:
        return 16 if self._family is KeyFamily.AES else 8

    @property
    def family(self) -> KeyFamily:
        return self._family

    def _ecb(self) -> Mechanism:
        return Mechanism.AES_ECB if self._family is KeyFamily.AES else Mechanism.DES3_ECB

    def _cbc(self) -> Mechanism:
        return Mechanism.AES_CBC if self._family is KeyFamily.AES else Mechanism.DES3_CBC

    def _blocks(self, data: bytes) -> None:
        if len(data) % self.block_size:
            raise ValueError(f"data must be a multiple of {self.block_size} bytes, got {len(data)}")

    def encrypt_ecb(self, data: bytes) -> bytes:
        self._blocks(data)
        return self._provider._run(self._ref, lambda k: bytes(k.encrypt(data, mechanism=self._ecb()))) if data else b""

    def decrypt_ecb(self, data: bytes) -> bytes:
        self._blocks(data)
        return self._provider._run(self._ref, lambda k: bytes(k.decrypt(data, mechanism=self._ecb()))) if data else b""

    def encrypt_cbc(self, data: bytes, iv: bytes) -> bytes:
        self._blocks(data)
        if not data:
            return b""
        return self._provider._run(
            self._ref, lambda k: bytes(k.encrypt(data, mechanism=self._cbc(), mechanism_param=iv))
        )

    def decrypt_cbc(self, data: bytes, iv: bytes) -> bytes:
        self._blocks(data)
        if not data:
            return b""
        return self._provider._run(
            self._ref, lambda k: bytes(k.decrypt(data, mechanism=self._cbc(), mechanism_param=iv))
        )

    def cmac(self, data: bytes) -> bytes:
        """AES-CMAC in the token (``CKM_AES_CMAC``, full 16-byte tag)."""
        if self._family is not KeyFamily.AES:
            raise UnsupportedError(f"AES-CMAC needs an AES key, this one is {self._family.value}")
        return self._provider._run(self._ref, lambda k: bytes(k.sign(data, mechanism=Mechanism.AES_CMAC)))


class Pkcs11KeyProvider(BaseKeyProvider):
    """Keys in the PKCS#11 token labelled ``token_label`` of the module ``lib_path`` (see the module docstring).

    ``pin`` is the token's user PIN (never logged). For SoftHSM2, ``SOFTHSM2_CONF`` must name the token store's
    configuration before the first provider is made (``eval "$(scripts/softhsm.sh env)"``).
    """

    def __init__(self, repository: KeyRepository, lib_path: str, token_label: str, pin: str) -> None:
        super().__init__(repository)
        self._login_key = (lib_path, token_label)
        try:
            self._lib = pkcs11.lib(lib_path)
            self._token = self._lib.get_token(token_label=token_label)
            with _TOKEN_LOCK:
                entry = _LOGINS.get(self._login_key)
                if entry is None:
                    try:
                        entry = [self._token.open(user_pin=pin, rw=True), 0]
                    except UserAlreadyLoggedIn:  # logged in by a session this module does not know
                        entry = [self._token.open(rw=True), 0]
                    _LOGINS[self._login_key] = entry
                entry[1] += 1
                self._login = entry[0]
        except NoSuchToken:
            raise KeyProviderError(f"no PKCS#11 token labelled {token_label!r} in {lib_path}") from None
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise KeyProviderError(f"cannot open the PKCS#11 token {token_label!r} ({lib_path}): {exc!r}") from None
        self.token_label = token_label
        self._objects: OrderedDict[_Stored, Any] = OrderedDict()
        self._derived: OrderedDict[_Derived, Any] = OrderedDict()

    def __repr__(self) -> str:
        return f"Pkcs11KeyProvider(token {self.token_label!r})"

    def close(self) -> None:
        """Forget the objects and (if no other provider on this token is open) close the login session, which
        logs out. Idempotent."""
        with _TOKEN_LOCK:
            self._objects.clear()
            derived, self._derived = list(self._derived.values()), OrderedDict()
            for obj in derived:  # session objects would live as long as the (shared) login session
                try:
                    obj.destroy()
                except PKCS11Error:
                    pass
            entry = _LOGINS.get(self._login_key)
            if entry is None or entry[0] is not self._login:
                return  # closed already
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _LOGINS[self._login_key]
            try:
                self._login.close()
            except PKCS11Error:
                pass

    # -- objects ------------------------------------------------------------------------------------------------
    def _object(self, ref: _Ref) -> Any:
        """The token object of ``ref``: found by label (handles kept in an LRU of 4096) or derived (session
        objects, an LRU of 256, destroyed when they leave it); under the lock."""
        if isinstance(ref, _Stored):
            obj = self._objects.get(ref)
            if obj is not None:
                self._objects.move_to_end(ref)
                return obj
            try:
                obj = self._login.get_key(object_class=ObjectClass.SECRET_KEY, label=ref.label)
            except NoSuchKey:
                raise KeyNotFound(f"the token {self.token_label!r} has no key labelled {ref.label!r}") from None
            self._objects[ref] = obj
            if len(self._objects) > _OBJECT_CACHE:
                self._objects.popitem(last=False)  # a handle only: the token object stays
            return obj
        obj = self._derived.get(ref)
        if obj is not None:
            self._derived.move_to_end(ref)
            return obj
        obj = _derive(self._object(ref.master), ref)
        self._derived[ref] = obj
        if len(self._derived) > _DERIVED_CACHE:
            _, old = self._derived.popitem(last=False)
            old.destroy()
        return obj

    def _run(self, ref: _Ref, operation: Callable[[Any], _T]) -> _T:
        try:
            with _TOKEN_LOCK:
                return operation(self._object(ref))
        except PKCS11Error as exc:
            raise KeyProviderError(f"the token refused the operation: {type(exc).__name__}") from None

    # -- BaseKeyProvider ---------------------------------------------------------------------------------------
    def store_card_keys(self, card_id: int, keys: Mapping[tuple[str, int], tuple[bytes, str]]) -> None:
        """Import keys into the token (see the module docstring), then point their rows at them; objects the
        rows pointed to before are destroyed afterwards."""
        for (purpose, kvn), value in keys.items():
            before = self.repository.card_key(card_id, KeyPurpose(purpose).value, kvn)
            super().store_card_keys(card_id, {(purpose, kvn): value})
            if before is not None and before[0] == kvn:
                self._destroy_old(before[1])

    def _destroy_old(self, blob: bytes) -> None:
        try:
            label = decode_blob(blob).get("pkcs11")
        except KeyProviderError:
            return
        if not isinstance(label, str):
            return
        with _TOKEN_LOCK:
            try:
                for obj in self._login.get_objects({Attribute.LABEL: label}):
                    obj.destroy()
            except PKCS11Error:
                pass
            self._objects.pop(_Stored(label), None)

    def _store_key(self, card_id: int, purpose: KeyPurpose, kvn: int, key: bytes, algorithm: str) -> bytes:
        family, _ = parse_algorithm(algorithm, purpose)
        label = f"{_LABEL_PREFIX}:{card_id}:{purpose.value}:{kvn}:{secrets.token_hex(4)}"
        template: dict[Attribute, Any] = {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.LABEL: label,
        }
        if family is KeyFamily.PSK:
            # The TLS stack needs the PSK's bytes (module docstring): readable, not usable for anything else.
            template |= {
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.VALUE: key,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
            }
        else:
            value = key * 3 if family is KeyFamily.DES else key
            key_type = KeyType.AES if family is KeyFamily.AES else (KeyType.DES2 if len(value) == 16 else KeyType.DES3)
            template |= {
                Attribute.KEY_TYPE: key_type,
                Attribute.VALUE: value,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.SIGN: family is KeyFamily.AES,
                Attribute.VERIFY: family is KeyFamily.AES,
                Attribute.DERIVE: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
            }
        try:
            with _TOKEN_LOCK:
                self._login.create_object(template)
        except PKCS11Error as exc:
            raise KeyProviderError(f"the token refused to import a {family.value} key: {type(exc).__name__}") from None
        doc = {"v": 1, "pkcs11": label, "type": family.value, "len": len(key)}
        return json.dumps(doc, sort_keys=True).encode()

    def _open_key(
        self, card_id: int, purpose: KeyPurpose, kvn: int, algorithm: str, doc: dict[str, Any]
    ) -> KeyMaterial:
        where = f"card {card_id}'s {purpose.value} key (KVN {kvn})"
        if "wrap" in doc:
            raise KeyProviderError(f"{where} is wrapped in the database: start the server with --keys db")
        label, family_name, length = doc.get("pkcs11"), doc.get("type"), doc.get("len")
        if not isinstance(label, str) or not isinstance(length, int):
            raise KeyProviderError(f"{where}: malformed PKCS#11 key reference")
        try:
            family = KeyFamily(str(family_name))
        except ValueError:
            raise KeyProviderError(f"{where}: unknown key type {family_name!r}") from None
        handle = Pkcs11Key(self, _Stored(label), family, length)
        self._run(handle._ref, lambda k: k)  # fail here (KeyNotFound) rather than in the middle of a packet
        return handle

    def _derive(
        self, master: KeyMaterial, scheme: Diversification, purpose: KeyPurpose, kdd: bytes, family: KeyFamily
    ) -> KeyMaterial:
        if not isinstance(master, Pkcs11Key):
            raise KeyProviderError("a master key for the token provider must be in the token")
        kt = bytes((diversification_purpose(purpose),))
        if scheme in (Diversification.EMV, Diversification.VISA2):
            if master.family is not KeyFamily.DES3 or master.key_length != 16:
                raise UnsupportedError(f"{scheme.name} diversification needs a 16-byte 3DES master key")
            part = kdd[4:10] if scheme is Diversification.EMV else kdd[0:2] + kdd[4:8]
            data = part + b"\xf0" + kt + part + b"\x0f" + kt
            ref = _Derived(master._ref, Mechanism.DES3_ECB_ENCRYPT_DATA, data, KeyType.DES2, 16)
            return Pkcs11Key(self, ref, KeyFamily.DES3, 16)
        if scheme is Diversification.KDF3:
            if master.family is not KeyFamily.AES:
                raise UnsupportedError("KDF3 diversification needs an AES master key")
            k1 = _cmac_subkey(master.encrypt_ecb(bytes(16)))
            blocks = -(-master.key_length // 16)
            data = b"".join(_xor(bytes((i,)) + b"\x00\x00\x00" + kt + b"\x00" + kdd, k1) for i in range(1, blocks + 1))
            ref = _Derived(master._ref, Mechanism.AES_ECB_ENCRYPT_DATA, data, KeyType.AES, master.key_length)
            return Pkcs11Key(self, ref, KeyFamily.AES, master.key_length)
        raise UnsupportedError(f"unknown diversification scheme {scheme!r}")

    def _psk_value(self, key: KeyMaterial) -> bytes:
        if not isinstance(key, Pkcs11Key) or not isinstance(key._ref, _Stored):
            raise KeyProviderError("a PSK in the token provider must be a stored token object")
        return self._run(key._ref, lambda k: bytes(k[Attribute.VALUE]))


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _cmac_subkey(l_block: bytes) -> bytes:
    """K1 of NIST SP 800-38B 6.1 from L = AES(K, 0^128): L << 1, XOR 0x87 if L's top bit was set."""
    value = int.from_bytes(l_block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


def _derive(master: Any, ref: _Derived) -> Any:
    """C_DeriveKey of a session object (sensitive, not extractable) from ``master`` (PKCS#11 v2.40 2.14.2)."""
    template: dict[Attribute, Any] = {
        Attribute.TOKEN: False,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.ENCRYPT: True,
        Attribute.DECRYPT: True,
        Attribute.SIGN: ref.key_type is KeyType.AES,
        Attribute.DERIVE: False,
    }
    if ref.mechanism is Mechanism.AES_ECB_ENCRYPT_DATA:
        return master.derive_key(
            ref.key_type, 8 * ref.length, mechanism=ref.mechanism, mechanism_param=ref.data, template=template
        )
    # CKM_DES3_ECB_ENCRYPT_DATA: python-pkcs11 passes the parameter structure as raw bytes; DES keys take no
    # CKA_VALUE_LEN (their length follows from the key type).
    buf = ctypes.create_string_buffer(ref.data, len(ref.data))
    param = bytes(_StringData(ctypes.cast(buf, ctypes.c_void_p), len(ref.data)))
    template[Attribute.VALUE_LEN] = pkcs11.DEFAULT
    try:
        return master.derive_key(
            ref.key_type, 8 * ref.length, mechanism=ref.mechanism, mechanism_param=param, template=template
        )
    finally:
        del buf
