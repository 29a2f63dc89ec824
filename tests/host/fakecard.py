"""A small GlobalPlatform card for host and CLI tests: our SCP03/SCP02 card channel for the secure channel, and
a few handlers that answer SELECT, GET DATA (with the GPShell / GPPro card data vectors), GET STATUS (both
formats, with 6310 continuation), DELETE, INSTALL, LOAD, PUT KEY, STORE DATA and SET STATUS.

It is a test double, not the emulator: it records what it was sent so tests can check the host's commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import parse_pairs, tlv
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import CardError, DecodeError
from gpchannel.gp.card_data import CardRecognitionData
from gpchannel.gp.install import parse_install
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.gp.registry_data import RegistryEntry, StatusScope, encode_entry
from gpchannel.scp.common import CardChannel
from gpchannel.scp.put_key import PutKeyCommand
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp03_card import Scp03Card

ISD_AID = bytes.fromhex("A000000151000000")
DEFAULT_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
GET_DATA = {
    0x9F7F: "9F7F2A4790D6004700000000003244342952208448000000000000000015278234323935320000000000000000",
    0x66: "664D734B06072A864886FC6B01600B06092A864886FC6B020203630906072A864886FC6B03640B06092A864886FC6B040370"
    "650D060B2A864886FC6B0507020000660C060A2B060104012A026E0103",
    0x67: "6735A00E8001038106001020306070820107A007800102810215558103FF9E0082031E160083010284018F8502FF028602FF02"
    "8702FF02",
    0xE0: "E012C00401308810C00402308810C00403308810",
    0xFF21: "FF211081020002820400016DB483040000086A",
    0x42: "4203123456",
    0x45: "450A00010203040506070809",
}


@dataclass
class FakeCard:
    protocol: int = 3
    i_param: int = 0x70
    kvn: int = 0x30
    key: bytes = DEFAULT_KEY
    page_size: int = 2
    """GET STATUS entries per response before 6310."""
    legacy_status: bool = False
    """Refuse P2=02 with 6A86, like a GP 2.1.1 card."""
    max_command_length: int = 0xFF
    registry: list[tuple[StatusScope, RegistryEntry]] = field(default_factory=list)
    received: list[CommandApdu] = field(default_factory=list)
    channel: CardChannel | None = None
    counter: int = 1
    keysets: dict[int, StaticKeys] = field(default_factory=dict)
    applied: list[tuple[str, bytes]] = field(default_factory=list)
    _pending: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        key_type = KeyType.AES if self.protocol == 3 else KeyType.DES3
        self.keysets[self.kvn] = StaticKeys.single(self.key, self.kvn, key_type)
        if not self.registry:
            sd = Privileges.of(Privilege.SECURITY_DOMAIN)
            self.registry = [
                (StatusScope.ISD, RegistryEntry(ISD_AID, 0x0F, Privileges.from_bytes(bytes.fromhex("9EFE80")))),
                (StatusScope.APPLICATIONS, RegistryEntry(bytes.fromhex("A0000000620301010C01"), 0x07, Privileges())),
                (StatusScope.APPLICATIONS, RegistryEntry(bytes.fromhex("A00000015153504101"), 0x0F, sd)),
                (StatusScope.APPLICATIONS, RegistryEntry(bytes.fromhex("A0000000620301010C02"), 0x83, Privileges())),
                (
                    StatusScope.LOAD_FILES_AND_MODULES,
                    RegistryEntry(bytes.fromhex("A0000000620301"), 0x01, modules=(bytes.fromhex("A000000062030101"),)),
                ),
            ]

    def random(self, n: int) -> bytes:
        return bytes(range(0x10, 0x10 + n))

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        try:
            return self._process(command)
        except CardError as exc:
            return ResponseApdu(b"", exc.sw)

    def close(self) -> None:
        pass

    def _process(self, command: CommandApdu) -> ResponseApdu:
        if command.ins == 0xA4:
            self.channel = None
            self.received.append(command)
            if command.data in (b"", ISD_AID):
                return ResponseApdu(self.fci(), 0x9000)
            return ResponseApdu(b"", 0x6A82)
        if command.ins == 0x50:
            keys = self.keysets.get(command.p1 or self.kvn)
            if keys is None:
                return ResponseApdu(b"", 0x6A88)
            cls: type[Scp03Card] | type[Scp02Card] = Scp03Card if self.protocol == 3 else Scp02Card
            self.channel = cls(
                keys,
                i_param=self.i_param,
                key_diversification_data=bytes(range(10)),
                sequence_counter=self.counter,
                random=self.random,
                aid=ISD_AID,
            )
            response = self.channel.initialize_update(command)
            self.counter = self.channel.sequence_counter
            return response
        if command.ins == 0x82:
            if self.channel is None:
                return ResponseApdu(b"", 0x6985)
            return self.channel.external_authenticate(command)
        if self.channel is not None and self.channel.is_open:
            plain = self.channel.unwrap(command)
            self.received.append(plain)
            return self.channel.wrap(self._application(plain))
        self.received.append(command)
        return self._application(command)

    def fci(self) -> bytes:
        card_data = CardRecognitionData("2.3.1", ((self.protocol, self.i_param),)).template()
        prop = card_data + tlv(0x9F6E, bytes(6)) + tlv(0x9F65, bytes((self.max_command_length,)))
        return tlv(0x6F, tlv(0x84, ISD_AID) + tlv(0xA5, prop))

    def _secure(self) -> None:
        if self.channel is None or not self.channel.is_open:
            raise CardError("needs a secure channel", 0x6982)

    def _application(self, c: CommandApdu) -> ResponseApdu:
        handlers: dict[int, Callable[[CommandApdu], ResponseApdu]] = {
            0xCA: self._get_data,
            0xF2: self._get_status,
            0xE4: self._delete,
            0xE6: self._install,
            0xE8: self._load,
            0xD8: self._put_key,
            0xE2: self._store_data,
            0xF0: self._set_status,
        }
        handler = handlers.get(c.ins)
        if handler is None:
            return ResponseApdu(b"", 0x6D00)
        return handler(c)

    def _get_data(self, c: CommandApdu) -> ResponseApdu:
        value = GET_DATA.get(c.p1 << 8 | c.p2)
        return ResponseApdu(bytes.fromhex(value), 0x9000) if value else ResponseApdu(b"", 0x6A88)

    def _get_status(self, c: CommandApdu) -> ResponseApdu:
        self._secure()
        tlv = bool(c.p2 & 0x02)
        if tlv and self.legacy_status:
            return ResponseApdu(b"", 0x6A86)
        scope = StatusScope.from_p1(c.p1)
        if not c.p2 & 0x01:
            self._pending = [encode_entry(e, scope, tlv=tlv) for s, e in self.registry if s is scope]
            if not self._pending:
                return ResponseApdu(b"", 0x6A88)
        page, self._pending = self._pending[: self.page_size], self._pending[self.page_size :]
        return ResponseApdu(b"".join(page), 0x6310 if self._pending else 0x9000)

    def _delete(self, c: CommandApdu) -> ResponseApdu:
        self._secure()
        aid = dict(parse_pairs(c.data)).get(0x4F, b"")
        before = len(self.registry)
        self.registry = [(s, e) for s, e in self.registry if e.aid != aid]
        self.applied.append(("delete", aid))
        return ResponseApdu(b"\x00", 0x9000) if len(self.registry) < before else ResponseApdu(b"", 0x6A88)

    def _install(self, c: CommandApdu) -> ResponseApdu:
        self._secure()
        try:
            roles, variant = parse_install(c.p1, c.p2, c.data)
        except DecodeError:
            return ResponseApdu(b"", 0x6A80)
        self.applied.append((f"install:{int(roles):02X}", c.data))
        aid = getattr(variant, "application_aid", None)
        if aid and roles & 0x04:
            privileges = getattr(variant, "privileges", Privileges())
            self.registry.append((StatusScope.APPLICATIONS, RegistryEntry(aid, 0x07, privileges)))
        return ResponseApdu(b"\x00", 0x9000)

    def _load(self, c: CommandApdu) -> ResponseApdu:
        self._secure()
        self.applied.append((f"load:{c.p1:02X}:{c.p2}", c.data))
        return ResponseApdu(b"\x00", 0x9000)

    def _put_key(self, c: CommandApdu) -> ResponseApdu:
        self._secure()
        assert self.channel is not None
        parsed = PutKeyCommand.from_apdu(c)
        keys = parsed.data.decrypt(self.channel.decrypt_key)
        key_type = KeyType.AES if self.protocol == 3 else KeyType.DES3
        enc, mac, dek = keys
        self.keysets[parsed.data.new_kvn] = StaticKeys(enc, mac, dek, parsed.data.new_kvn, key_type)
        return ResponseApdu(parsed.data.response_data(), 0x9000)

    def _store_data(self, c: CommandApdu) -> ResponseApdu:
        self._secure()
        self.applied.append((f"store:{c.p1:02X}:{c.p2}", c.data))
        return ResponseApdu(b"", 0x9000)

    def _set_status(self, c: CommandApdu) -> ResponseApdu:
        self._secure()
        self.applied.append((f"status:{c.p1:02X}:{c.p2:02X}", c.data))
        return ResponseApdu(b"", 0x9000)
