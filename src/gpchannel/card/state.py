"""The card's persistent state and the StateStore interface (GP Card Specification 2.3.1, 6.4 the
GlobalPlatform Registry; 5 life cycles; 11.8 keys).

Everything a card must remember across power cycles lives in :class:`CardState`: the card life cycle, CPLC,
IIN/CIN, the registry (Executable Load Files, applications and Security Domains with their life cycles and
privileges), each Security Domain's key sets with their sequence counters, and each applet instance's data.

``to_dict`` / ``from_dict`` give a JSON-compatible form (bytes as upper-case hex). ``from_dict`` checks every
field and raises :class:`~gpchannel.errors.DecodeError` naming it, so an unreadable state is reported, never
half-loaded. Persistence goes through :class:`StateStore`; the core never touches files (io/store.py does).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpchannel.card.scp11_material import Scp11Material
from gpchannel.card.state_fields import Fields, hex_text
from gpchannel.card.tracking import Tracked, Unit
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.crypto.rsa import RsaPrivateKey, RsaPublicKey
from gpchannel.errors import DecodeError
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.gp.privileges import Privilege, Privileges

__all__ = [
    "STATE_FORMAT",
    "Application",
    "CardState",
    "ContentKey",
    "DeltaStore",
    "KeySet",
    "LoadFile",
    "MemoryStore",
    "Scp10Material",
    "SdConfig",
    "StateStore",
]

STATE_FORMAT = 1


@dataclass(slots=True, eq=True)
class KeySet(Tracked):
    """One key version of a Security Domain: ENC, MAC, DEK and the sequence counter (SCP02 2 bytes, SCP03 3)."""

    kvn: int
    key_type: KeyType
    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    sequence_counter: int = 0

    def static_keys(self) -> StaticKeys:
        return StaticKeys(self.enc, self.mac, self.dek, self.kvn, self.key_type)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kvn": self.kvn,
            "type": self.key_type.name.lower(),
            "enc": hex_text(self.enc),
            "mac": hex_text(self.mac),
            "dek": hex_text(self.dek),
            "sequence_counter": self.sequence_counter,
        }

    @classmethod
    def from_dict(cls, raw: object, where: str) -> KeySet:
        f = Fields(raw, where)
        kind = f.text("type")
        try:
            key_type = KeyType[kind.upper()]
        except KeyError:
            raise DecodeError(f"{where}.type: {kind!r} is neither aes nor des3") from None
        keys = cls(f.num("kvn", hi=0xFF), key_type, f.hex("enc"), f.hex("mac"), f.hex("dek"))
        keys.sequence_counter = f.num("sequence_counter", 0, hi=0xFFFFFF)
        try:
            keys.static_keys()
        except ValueError as exc:
            raise DecodeError(f"{where}: {exc}") from None
        return keys


_CONTENT_KEY_KINDS = ("des3", "aes", "rsa", "ec")


@dataclass(slots=True, eq=True)
class ContentKey(Tracked):
    """A Security Domain's token verification (KVN 70), receipt generation (71) or DAP verification (73) key
    (GP 2.3.1, C.1; 11.1.8). ``kind`` is des3/aes (``value`` the secret key), rsa (``value`` the modulus,
    ``exponent`` e) or ec (``value`` the uncompressed point, ``curve`` its key parameter reference)."""

    kvn: int
    kind: str
    value: bytes = field(repr=False)
    exponent: bytes = b""
    curve: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kvn": self.kvn,
            "kind": self.kind,
            "value": hex_text(self.value),
            "exponent": hex_text(self.exponent),
            "curve": self.curve,
        }

    @classmethod
    def from_dict(cls, raw: object, where: str) -> ContentKey:
        f = Fields(raw, where)
        kind = f.text("kind")
        if kind not in _CONTENT_KEY_KINDS:
            raise DecodeError(f"{where}.kind: {kind!r} is none of {_CONTENT_KEY_KINDS}")
        return cls(f.num("kvn", hi=0x7F), kind, f.hex("value"), f.hex("exponent", ""), f.num("curve", 0, hi=0xFFFF))


@dataclass(slots=True, eq=True)
class Scp10Material(Tracked):
    """A Security Domain's SCP10 credentials (GP 2.2.1 F.1.3.1): SK.SD.AUT (PEM, never in a repr), CERT.SD.AUT
    (the encoded 7F21 data object), its subject (the card id, Table F-9), PK.TP_EX.AUT (PEM) with the reference
    MSE tag 83 may name, and the "i" options (Table F-1) the Security Domain accepts."""

    private_key: str = field(repr=False)
    certificate: bytes
    card_id: bytes
    trust_point: str
    trust_point_id: bytes = b"TP_EX\x00\x00\x01"
    options: list[int] = field(default_factory=lambda: [0x01, 0x02])

    def to_dict(self) -> dict[str, Any]:
        return {
            "private_key": self.private_key,
            "certificate": hex_text(self.certificate),
            "card_id": hex_text(self.card_id),
            "trust_point": self.trust_point,
            "trust_point_id": hex_text(self.trust_point_id),
            "options": list(self.options),
        }

    @classmethod
    def from_dict(cls, raw: object, where: str) -> Scp10Material:
        f = Fields(raw, where)
        options = f.items("options") or [0x01, 0x02]
        if not all(o in (0x01, 0x02) for o in options):
            raise DecodeError(f"{where}.options: expected a list of 1 (key agreement) and 2 (key transport)")
        material = cls(
            f.text("private_key"),
            f.hex("certificate"),
            f.hex("card_id", sizes=(8,)),
            f.text("trust_point"),
            f.hex("trust_point_id", "54505F4558000001", sizes=tuple(range(1, 17))),
            list(options),
        )
        try:
            RsaPrivateKey.from_pem_or_der(material.private_key.encode())
        except DecodeError as exc:
            raise DecodeError(f"{where}.private_key: {exc}") from None
        try:
            RsaPublicKey.from_pem_or_der(material.trust_point.encode())
        except DecodeError as exc:
            raise DecodeError(f"{where}.trust_point: {exc}") from None
        return material


@dataclass(slots=True, eq=True)
class SdConfig(Tracked):
    """What makes an application a Security Domain: its secure channel protocol, i parameter and key sets,
    and for Delegated Management / DAP its content keys and receipt confirmation counter (GP 2.3.1, C.1, C.5)."""

    scp: int
    i_param: int
    keysets: list[KeySet] = field(default_factory=list)
    content_keys: list[ContentKey] = field(default_factory=list)
    confirmation_counter: int = 0
    scp10: Scp10Material | None = None
    """SCP10 credentials, for a Security Domain whose ``scp`` is 10 (GP 2.2.1 Appendix F)."""
    scp11: Scp11Material | None = None
    """SCP11 credentials, beside the Security Domain's ``scp`` (GP 2.3 Amendment F)."""
    getdata_style: str = "gp"
    """``gp``: GET DATA E0 / 66 with their templates (GP 2.3.1 11.3); ``yubikey``: without them, as YubiKeys."""

    def content_key(self, kvn: int) -> ContentKey | None:
        return next((k for k in self.content_keys if k.kvn == kvn), None)

    def keyset(self, kvn: int) -> KeySet | None:
        """The key set of version ``kvn``; 0 means the first (default) one (GP 2.3.1, 11.12.2.1)."""
        if kvn == 0:
            return self.keysets[0] if self.keysets else None
        return next((k for k in self.keysets if k.kvn == kvn), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scp": self.scp, "i": self.i_param, "keysets": [k.to_dict() for k in self.keysets]}
        if self.content_keys:
            out["content_keys"] = [k.to_dict() for k in self.content_keys]
        if self.confirmation_counter:
            out["confirmation_counter"] = self.confirmation_counter
        if self.scp10 is not None:
            out["scp10"] = self.scp10.to_dict()
        if self.scp11 is not None:
            out["scp11"] = self.scp11.to_dict()
        if self.getdata_style != "gp":
            out["getdata_style"] = self.getdata_style
        return out

    @classmethod
    def from_dict(cls, raw: object, where: str) -> SdConfig:
        f = Fields(raw, where)
        keysets = [KeySet.from_dict(k, f"{where}.keysets[{n}]") for n, k in enumerate(f.items("keysets"))]
        content_keys = [
            ContentKey.from_dict(k, f"{where}.content_keys[{n}]") for n, k in enumerate(f.items("content_keys"))
        ]
        counter = f.num("confirmation_counter", 0, hi=0xFFFF)
        scp10 = Scp10Material.from_dict(f.raw["scp10"], f"{where}.scp10") if "scp10" in f.raw else None
        scp11 = Scp11Material.from_dict(f.raw["scp11"], f"{where}.scp11") if "scp11" in f.raw else None
        style = f.text("getdata_style", "gp")
        if style not in ("gp", "yubikey"):
            raise DecodeError(f"{where}.getdata_style: {style!r} is neither gp nor yubikey")
        return cls(f.num("scp", hi=0xFF), f.num("i", hi=0xFF), keysets, content_keys, counter, scp10, scp11, style)


@dataclass(slots=True, eq=True)
class Application(Tracked):
    """A registry entry for an application or Security Domain (the ISD included), GP 2.3.1 6.4.1."""

    aid: bytes
    lifecycle: int
    privileges: Privileges
    sd_aid: bytes
    load_file_aid: bytes = b""
    module_aid: bytes = b""
    applet: str = ""
    install_parameters: bytes = field(default=b"", repr=False)  # may hold an applet's keys (scp03-direct)
    implicit_selection: list[int] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # personalization data may hold keys
    sd: SdConfig | None = None
    system_parameters: bytes = b""
    """The UICC System Specific Parameters (install parameters tag EA, ETSI TS 102 226 8.2.1.3.2): the toolkit
    parameters with the application's TAR values and MSL, read by the OTA side."""

    @property
    def is_security_domain(self) -> bool:
        return Privilege.SECURITY_DOMAIN in self.privileges

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "aid": hex_text(self.aid),
            "lifecycle": self.lifecycle,
            "privileges": hex_text(self.privileges.to_bytes()),
            "sd_aid": hex_text(self.sd_aid),
            "load_file_aid": hex_text(self.load_file_aid),
            "module_aid": hex_text(self.module_aid),
            "applet": self.applet,
            "install_parameters": hex_text(self.install_parameters),
            "implicit_selection": list(self.implicit_selection),
            "data": copy.deepcopy(self.data),
        }
        if self.sd is not None:
            out["sd"] = self.sd.to_dict()
        if self.system_parameters:
            out["system_parameters"] = hex_text(self.system_parameters)
        return out

    @classmethod
    def from_dict(cls, raw: object, where: str) -> Application:
        f = Fields(raw, where)
        try:
            privileges = Privileges.from_bytes(f.hex("privileges", sizes=(3,)))
        except DecodeError as exc:
            raise DecodeError(f"{where}.privileges: {exc}") from None
        implicit = f.items("implicit_selection")
        if not all(isinstance(p, int) and 0 <= p <= 0xFF for p in implicit):
            raise DecodeError(f"{where}.implicit_selection: expected bytes (0..255)")
        return cls(
            aid=f.hex("aid", sizes=tuple(range(5, 17))),
            lifecycle=f.num("lifecycle", hi=0xFF),
            privileges=privileges,
            sd_aid=f.hex("sd_aid"),
            load_file_aid=f.hex("load_file_aid", ""),
            module_aid=f.hex("module_aid", ""),
            applet=f.text("applet", ""),
            install_parameters=f.hex("install_parameters", ""),
            implicit_selection=list(implicit),
            data=f.obj("data"),
            sd=SdConfig.from_dict(f.raw["sd"], f"{where}.sd") if "sd" in f.raw else None,
            system_parameters=f.hex("system_parameters", ""),
        )


@dataclass(slots=True, eq=True)
class LoadFile(Tracked):
    """An Executable Load File and its Executable Modules (GP 2.3.1, 5.2, 6.4.1)."""

    aid: bytes
    sd_aid: bytes
    modules: list[bytes] = field(default_factory=list)
    version: bytes = b""
    lifecycle: int = 0x01
    data_hash: bytes = b""
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "aid": hex_text(self.aid),
            "sd_aid": hex_text(self.sd_aid),
            "modules": [hex_text(m) for m in self.modules],
            "version": hex_text(self.version),
            "lifecycle": self.lifecycle,
            "data_hash": hex_text(self.data_hash),
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, raw: object, where: str) -> LoadFile:
        f = Fields(raw, where)
        modules = []
        for n, m in enumerate(f.items("modules")):
            modules.append(Fields({"m": m}, f"{where}.modules[{n}]").hex("m"))
        return cls(
            f.hex("aid", sizes=tuple(range(5, 17))),
            f.hex("sd_aid"),
            modules,
            f.hex("version", ""),
            f.num("lifecycle", 1, hi=0xFF),
            f.hex("data_hash", ""),
            f.num("size", 0),
        )


@dataclass(slots=True, eq=True)
class CardState(Tracked):
    """Everything the card keeps. ``applications`` holds the ISD (``isd_aid``), SSDs and applications."""

    lifecycle: CardLifeCycle
    isd_aid: bytes
    atr: bytes
    cplc: bytes
    iin: bytes = b""
    cin: bytes = b""
    key_diversification_data: bytes = bytes(10)
    applications: list[Application] = field(default_factory=list)
    load_files: list[LoadFile] = field(default_factory=list)
    ota: dict[str, Any] = field(default_factory=dict, repr=False)  # holds OTA and PSK keys
    files: dict[str, Any] = field(default_factory=dict, repr=False)
    """The UICC file system (card/filesystem.py, JSON form); empty means the default tree."""

    @property
    def isd(self) -> Application:
        for app in self.applications:
            if app.aid == self.isd_aid:
                return app
        raise LookupError("the state has no Issuer Security Domain entry")

    def application(self, aid: bytes) -> Application | None:
        for app in self.applications:  # a loop, not next(generator): looked up on every command
            if app.aid == aid:
                return app
        return None

    def load_file(self, aid: bytes) -> LoadFile | None:
        return next((f for f in self.load_files if f.aid == aid), None)

    def _child(self, name: str, value: Any, unit: Unit) -> Any:
        return unit.tracker.child(name, value)

    def header_dict(self) -> dict[str, Any]:
        """The card's own fields in the JSON form (everything but the registry, load files, OTA and files)."""
        return {
            "format": STATE_FORMAT,
            "lifecycle": self.lifecycle.name,
            "isd_aid": hex_text(self.isd_aid),
            "atr": hex_text(self.atr),
            "cplc": hex_text(self.cplc),
            "iin": hex_text(self.iin),
            "cin": hex_text(self.cin),
            "key_diversification_data": hex_text(self.key_diversification_data),
        }

    @staticmethod
    def header_fields(raw: object, where: str = "state") -> dict[str, Any]:
        """The card's own fields read from the JSON form (see :meth:`header_dict`), by attribute name."""
        f = Fields(raw, where)
        if f.num("format", hi=0xFFFF) != STATE_FORMAT:
            raise DecodeError(f"{where}.format: {f.raw['format']}, this version reads format {STATE_FORMAT}")
        name = f.text("lifecycle")
        try:
            lifecycle = CardLifeCycle[name]
        except KeyError:
            raise DecodeError(f"{where}.lifecycle: {name!r} is not a card life cycle state") from None
        return {
            "lifecycle": lifecycle,
            "isd_aid": f.hex("isd_aid", sizes=tuple(range(5, 17))),
            "atr": f.hex("atr"),
            "cplc": f.hex("cplc"),
            "iin": f.hex("iin", ""),
            "cin": f.hex("cin", ""),
            "key_diversification_data": f.hex("key_diversification_data", sizes=(10,)),
        }

    def to_dict(self) -> dict[str, Any]:
        out = self.header_dict()
        out["applications"] = [a.to_dict() for a in self.applications]
        out["load_files"] = [f.to_dict() for f in self.load_files]
        out["ota"] = copy.deepcopy(self.ota)
        out["files"] = copy.deepcopy(self.files)
        return out

    @classmethod
    def from_dict(cls, raw: object) -> CardState:
        f = Fields(raw, "state")
        state = cls(
            **cls.header_fields(raw),
            applications=[
                Application.from_dict(a, f"state.applications[{n}]") for n, a in enumerate(f.items("applications"))
            ],
            load_files=[LoadFile.from_dict(x, f"state.load_files[{n}]") for n, x in enumerate(f.items("load_files"))],
            ota=f.obj("ota"),
            files=f.obj("files"),
        )
        try:
            isd = state.isd
        except LookupError:
            raise DecodeError("state.applications: no entry for the ISD (isd_aid)") from None
        if isd.sd is None:
            raise DecodeError("state.applications: the ISD entry has no security domain configuration (sd)")
        return state

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> CardState:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise DecodeError(f"the state is not valid JSON: {exc}") from None
        return cls.from_dict(raw)

    def copy(self) -> CardState:
        return CardState.from_dict(self.to_dict())


class StateStore(Protocol):
    """Where a card keeps its state. ``commit`` must be atomic: after a crash, ``load`` returns the state of
    just before or just after the last ``commit``, never a mix."""

    def load(self) -> CardState | None:
        """The committed state, or None when nothing was committed yet."""
        ...

    def commit(self, state: CardState) -> None:
        """Persist ``state`` atomically (raise on failure; the card then answers 6581, memory failure)."""
        ...


class DeltaStore(StateStore, Protocol):
    """A StateStore that can also persist one command's changes alone (card/state_tracker.py's delta: the units
    that changed), atomically and durably, as :meth:`StateStore.commit` persists a whole state."""

    def commit_delta(self, delta: dict[str, Any], state: CardState) -> None:
        """Persist ``delta`` (``state`` is the live state it was taken from, already holding it)."""
        ...


class MemoryStore:
    """A StateStore in memory, for tests and the in-process transport; it keeps the JSON form, so what it
    returns went through the same serialisation as a file would."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] | None = None
        self.commits = 0

    @property
    def text(self) -> str | None:
        return None if self.raw is None else json.dumps(self.raw, indent=1, sort_keys=True)

    def load(self) -> CardState | None:
        return None if self.raw is None else CardState.from_json(json.dumps(self.raw))

    def commit(self, state: CardState) -> None:
        self.raw = json.loads(state.to_json())
        self.commits += 1

    def commit_delta(self, delta: dict[str, Any], state: CardState) -> None:
        from gpchannel.card.state_delta import apply_delta

        if self.raw is None:
            self.commit(state)
            return
        self.raw = apply_delta(self.raw, json.loads(json.dumps(delta)))
        self.commits += 1
