"""``GpCard``: the card management operations a host tool offers, on top of a :class:`CardSession`.

Each method builds the commands of :mod:`gpchannel.host.commands`, sends them through the session (inside the
secure channel when one is open) and decodes the answers with the ``gpchannel.gp`` codecs. Status words other
than success raise :class:`CardStatusError` with the command's name.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.asym import EcPublicKey, RsaPublicKey
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import CardStatusError, DecodeError, LocalProtocolError, RemoteProtocolError
from gpchannel.gp.cap import CapFile
from gpchannel.gp.card_data import (
    TAG_CARD_CAPABILITIES,
    TAG_CARD_DATA,
    TAG_CIN,
    TAG_EXTENDED_CARD_RESOURCES,
    TAG_IIN,
    TAG_KEY_INFORMATION,
    CardCapabilities,
    CardRecognitionData,
    ExtendedCardResources,
    KeyInformation,
    decode_key_information_template,
    decode_simple,
)
from gpchannel.gp.cplc import CPLC_TAG, Cplc
from gpchannel.gp.dap import build_load_file
from gpchannel.gp.install import InstallForExtradition, InstallForInstall, InstallForLoad, InstallParameters
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.gp.registry_data import RegistryEntry, StatusScope, decode_status_response
from gpchannel.gp.tokens import (
    Confirmation,
    SymmetricKey,
    delete_receipt_data,
    delete_token_data,
    extradition_receipt_data,
    install_receipt_data,
    install_token_data,
    load_receipt_data,
    with_delete_token,
)
from gpchannel.host.commands import (
    Fci,
    SetStatusScope,
    delete_command,
    get_data_command,
    get_status_command,
    install_for_extradition_command,
    install_for_install_command,
    install_for_load_command,
    install_for_personalization_command,
    load_commands,
    select_command,
    set_status_command,
    store_data_commands,
)
from gpchannel.host.delegated import DapSigner, Delegation, content_key_command
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.scp.common import InitializeUpdateResponse, SecurityLevel
from gpchannel.scp.put_key import PutKeyData, put_key_command

__all__ = [
    "DEFAULT_ISD_AIDS",
    "SSD_LOAD_FILE_AID",
    "SSD_MODULE_AID",
    "CardInfo",
    "GpCard",
    "RegistryItem",
    "RegistryKind",
]

DEFAULT_ISD_AIDS = (bytes.fromhex("A000000151000000"), bytes.fromhex("A000000003000000"))
"""Tried in this order when the empty SELECT gives no AID (GP 2.3.1 ISD AID, then the Visa OP one)."""
SSD_LOAD_FILE_AID = bytes.fromhex("A0000001515350")
SSD_MODULE_AID = bytes.fromhex("A000000151535041")
"""The Security Domain package and module AIDs of GlobalPlatform cards (as GPPro and GPShell use them)."""


class RegistryKind(enum.Enum):
    ISD = "isd"
    SSD = "ssd"
    APPLICATION = "application"
    LOAD_FILE = "load-file"


@dataclass(frozen=True, slots=True)
class RegistryItem:
    """A GET STATUS entry with what it is."""

    kind: RegistryKind
    entry: RegistryEntry


@dataclass(frozen=True, slots=True)
class CardInfo:
    """What ``info`` gathers: GET DATA objects (None where the card has none) and the INITIALIZE UPDATE data."""

    isd_aid: bytes
    cplc: Cplc | None = None
    iin: bytes | None = None
    cin: bytes | None = None
    card_data: CardRecognitionData | None = None
    capabilities: CardCapabilities | None = None
    key_information: tuple[KeyInformation, ...] = ()
    resources: ExtendedCardResources | None = None
    key_diversification_data: bytes | None = None
    sequence_counter: bytes | None = None
    protocol: int | None = None
    i_param: int | None = None
    kvn: int | None = None
    problems: tuple[str, ...] = field(default=())


class GpCard:
    """GlobalPlatform card management over a :class:`CardSession` (GP Card Specification 2.3.1, chapter 11)."""

    def __init__(self, session: CardSession, isd_aid: bytes, fci: Fci | None = None) -> None:
        self.last_confirmation: Confirmation | None = None
        self.session = session
        self.isd_aid = isd_aid
        self.fci = fci

    @classmethod
    def connect(cls, session: CardSession, isd_aid: bytes | None = None) -> GpCard:
        """Select the ISD: ``isd_aid`` when given, else the AID in the FCI of an empty SELECT, else the defaults."""
        candidates: list[bytes | None] = [isd_aid] if isd_aid else [None, *DEFAULT_ISD_AIDS]
        last_sw = 0
        for aid in candidates:
            response = session.transmit_plain(select_command(aid, channel=session.channel))
            if response.sw != 0x9000:
                last_sw = response.sw
                continue
            fci = _try_fci(response.data)
            found = fci.aid if fci else aid
            if found:
                return cls(session, found, fci)
        what = (
            isd_aid.hex().upper()
            if isd_aid
            else "the ISD (empty SELECT, " + ", ".join(a.hex().upper() for a in DEFAULT_ISD_AIDS) + ")"
        )
        raise CardStatusError(last_sw, f"SELECT of {what} failed")

    # -- secure channel -------------------------------------------------------------------------------------------
    def open_secure_channel(self, options: ChannelOptions) -> InitializeUpdateResponse:
        """Open a secure channel with INITIALIZE UPDATE with the selected Security Domain (see
        :meth:`CardSession.open_secure_channel`)."""
        return self.session.open_secure_channel(options, aid=self.isd_aid, recognition_i=self._recognition_i())

    def open_channel(self, options: ChannelOptions) -> InitializeUpdateResponse | None:
        """Open a secure channel with the selected Security Domain the way its protocol opens (see
        :meth:`CardSession.open_channel`): None for a protocol initiated by a step driver (SCP10)."""
        return self.session.open_channel(options, aid=self.isd_aid, recognition_i=self._recognition_i())

    def _recognition_i(self) -> dict[int, int]:
        """The i of each protocol the card recognition data lists (GP 2.3.1 H.2), the first when one repeats."""
        found: dict[int, int] = {}
        if self.fci and self.fci.card_data:
            for protocol, i in self.fci.card_data.scps:
                found.setdefault(protocol, i)
        return found

    def open_application_channel(self, aid: bytes, options: ChannelOptions) -> InitializeUpdateResponse:
        """SELECT the application ``aid`` and open a secure channel with it instead of a Security Domain.

        INITIALIZE UPDATE and EXTERNAL AUTHENTICATE go to the application, which runs the protocol itself
        (direct handling) or hands them to its Security Domain (indirect handling, GP 2.3.1 10.3); the keys are
        the application's or its Security Domain's. SCP02 / SCP03 pseudo-random challenges are computed over
        ``aid``. Later commands go to the application through that channel.
        """
        self.select(aid)
        return self.session.open_secure_channel(options, aid=aid)

    @property
    def level(self) -> SecurityLevel:
        secure = self.session.secure
        return secure.level if secure is not None and secure.is_open else SecurityLevel.NONE

    # -- reading ----------------------------------------------------------------------------------------------
    def get_data(self, tag: int) -> bytes | None:
        """GET DATA; None when the card does not have the object (6A88, 6A82, 6A86, 6D00)."""
        response = self.session.transmit(get_data_command(tag, channel=self.session.channel))
        if response.sw in (0x6A88, 0x6A82, 0x6A86, 0x6D00, 0x6A81):
            return None
        if not response.is_success:
            raise CardStatusError(response.sw, f"GET DATA {tag:X}", response.data)
        return response.data

    def info(self) -> CardInfo:
        """CPLC, IIN, CIN, card recognition data, card capabilities, key information and resources, plus the
        KDD, sequence counter and protocol of the last INITIALIZE UPDATE. Undecodable objects are reported in
        ``problems`` rather than failing the whole call."""
        problems: list[str] = []

        def decode(tag: int, name: str, fn: object) -> object:
            raw = self.get_data(tag)
            if raw is None:
                return None
            try:
                assert callable(fn)
                return fn(raw)
            except DecodeError as exc:
                problems.append(f"{name}: {exc}")
                return None

        cplc = decode(CPLC_TAG, "CPLC", Cplc.from_bytes)
        iin = decode(TAG_IIN, "IIN", lambda r: decode_simple(TAG_IIN, r))
        cin = decode(TAG_CIN, "CIN", lambda r: decode_simple(TAG_CIN, r))
        card_data = decode(TAG_CARD_DATA, "card recognition data", CardRecognitionData.from_bytes)
        caps = decode(TAG_CARD_CAPABILITIES, "card capabilities", CardCapabilities.from_bytes)
        keys = decode(TAG_KEY_INFORMATION, "key information", decode_key_information_template)
        resources = decode(TAG_EXTENDED_CARD_RESOURCES, "extended card resources", ExtendedCardResources.from_bytes)
        init = self.session.init_response
        return CardInfo(
            self.isd_aid,
            cplc if isinstance(cplc, Cplc) else None,
            iin if isinstance(iin, bytes) else None,
            cin if isinstance(cin, bytes) else None,
            card_data if isinstance(card_data, CardRecognitionData) else None,
            caps if isinstance(caps, CardCapabilities) else None,
            tuple(keys) if isinstance(keys, list) else (),
            resources if isinstance(resources, ExtendedCardResources) else None,
            init.key_diversification_data if init else None,
            init.sequence_counter if init else None,
            init.protocol if init else None,
            init.i_param if init else None,
            init.kvn if init else None,
            tuple(problems),
        )

    def get_status(self, scope: StatusScope) -> list[RegistryEntry]:
        """All entries of ``scope``: P2=02 (TLV), falling back to P2=00 for GP 2.1.1 cards; 6310 continues."""
        for tlv in (True, False):
            entries: list[RegistryEntry] = []
            command = get_status_command(scope, tlv=tlv, channel=self.session.channel)
            response = self.session.transmit(command)
            if response.sw in (0x6A86, 0x6A80) and tlv:
                continue  # the card does not know the TLV format
            if response.sw == 0x6A88:
                return []  # nothing of that kind
            while True:
                if not response.is_success:
                    raise CardStatusError(response.sw, f"GET STATUS P1={int(scope):02X}", response.data)
                entries += decode_status_response(response.data, command.p1, command.p2)
                if response.sw != 0x6310:
                    return entries
                command = get_status_command(scope, tlv=tlv, next_occurrence=True, channel=self.session.channel)
                response = self.session.transmit(command)
        return []

    def list(self) -> list[RegistryItem]:
        """The ISD, the applications and Security Domains, and the load files with their modules."""
        try:
            isd = self.get_status(StatusScope.ISD)
        except CardStatusError as exc:
            # A Supplementary Security Domain may refuse the ISD scope (6A86 / 6A88): list what it can see.
            if exc.sw not in (0x6A86, 0x6A88):
                raise
            isd = []
        items = [RegistryItem(RegistryKind.ISD, e) for e in isd]
        for entry in self.get_status(StatusScope.APPLICATIONS):
            is_sd = entry.privileges is not None and Privilege.SECURITY_DOMAIN in entry.privileges
            items.append(RegistryItem(RegistryKind.SSD if is_sd else RegistryKind.APPLICATION, entry))
        try:
            files = self.get_status(StatusScope.LOAD_FILES_AND_MODULES)
        except CardStatusError:
            files = self.get_status(StatusScope.LOAD_FILES)
        items += [RegistryItem(RegistryKind.LOAD_FILE, e) for e in files]
        return items

    # -- commands -------------------------------------------------------------------------------------------------
    def apdu(self, command: CommandApdu) -> ResponseApdu:
        """Send any command (through the secure channel when open); the status word is the caller's to judge."""
        return self.session.transmit(command)

    def put_key(self, keys: StaticKeys, *, replace_kvn: int = 0) -> bytes:
        """PUT KEY of a whole key set (GP 2.3.1 11.8), then check the KVN and KCVs the card returns.

        Returns the card's response data. RemoteProtocolError when the card's KVN and KCVs differ from ours.
        """
        secure = self.session.secure
        if secure is None or not secure.is_open:
            raise LocalProtocolError("PUT KEY needs an open secure channel (the keys travel under its DEK)")
        data = PutKeyData.from_static_keys(keys, secure.encrypt_key)
        command = put_key_command(data, key_id=1, old_kvn=replace_kvn, channel=self.session.channel)
        response = self.session.send(command, "PUT KEY")
        data.check_response(response.data)
        return response.data

    def put_content_key(
        self, kvn: int, key: RsaPublicKey | EcPublicKey | SymmetricKey, *, replace: bool = False
    ) -> bytes:
        """PUT KEY of a token verification (70), receipt generation (71) or DAP verification (73) key into the
        selected Security Domain (GP 2.3.1 11.8, C.1); the card's KVN and KCV are checked."""
        secure = self.session.secure
        if secure is None or not secure.is_open:
            raise LocalProtocolError("PUT KEY needs an open secure channel")
        command = content_key_command(kvn, key, secure.encrypt_key, replace=replace, channel=self.session.channel)
        response = self.session.send(command, "PUT KEY")
        if response.data[:1] != bytes((kvn,)) or (
            isinstance(key, SymmetricKey) and response.data[1:] != command.data[-3:]
        ):
            raise RemoteProtocolError(f"PUT KEY answered {response.data.hex().upper()}; expected KVN {kvn:02X}")
        return response.data

    def delete(self, aid: bytes, *, related: bool = False, delegation: Delegation | None = None) -> None:
        """DELETE an application, load file or Security Domain (and its related objects); with ``delegation``,
        the Delete Token is appended and the Delete Receipt checked (GP 2.3.1 C.4.6, C.5.5)."""
        command = delete_command(aid, related=related, channel=self.session.channel)
        if delegation is not None:
            body = command.data
            token = delegation.token_for(lambda: delete_token_data(command.p1, command.p2, body))
            command = dataclasses.replace(command, data=with_delete_token(body, token) if token else body)
        response = self.session.send(command, "DELETE")
        if delegation is not None:
            self.last_confirmation = delegation.check_receipt(response.data, lambda cd: delete_receipt_data(cd, aid))

    def load(
        self,
        cap: CapFile,
        *,
        sd_aid: bytes | None = None,
        block_size: int | None = None,
        with_hash: bool = False,
        include_descriptor: bool = False,
        delegation: Delegation | None = None,
        daps: Sequence[DapSigner] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """INSTALL [for load] then LOAD the CAP file's Load File in blocks; returns the number of LOAD commands.
        ``progress(done, total)`` is called after each LOAD block.

        The block size defaults to the card's maximum command length (FCI ``9F65``, else 255) less the secure
        messaging overhead of the session's level. ``delegation`` adds the Load Token and checks the Load
        Receipt; ``daps`` put DAP blocks before the Load File Data Block. Both imply the SHA-256 LFDBH (C.2).
        """
        with_hash = with_hash or delegation is not None or bool(daps)
        load_hash = cap.load_file_data_block_hash("sha256", include_descriptor=include_descriptor) if with_hash else b""
        target = sd_aid if sd_aid is not None else self.isd_aid
        data = InstallForLoad(cap.package_aid, target, load_hash)
        if delegation is not None:
            unsigned = data
            data = dataclasses.replace(data, token=delegation.token_for(lambda: install_token_data(2, 0, unsigned)))
        self.session.send(install_for_load_command(data, channel=self.session.channel), "INSTALL [for load]")
        size = block_size or self.default_block_size()
        block = cap.load_file_data_block(include_descriptor=include_descriptor)
        load_file = build_load_file(block, tuple(d.block(load_hash) for d in daps))
        commands = load_commands(load_file, size, channel=self.session.channel)
        response = None
        for n, command in enumerate(commands):
            response = self.session.send(command, f"LOAD block {n}")
            if progress is not None:
                progress(n + 1, len(commands))
        if delegation is not None and response is not None:
            package = cap.package_aid
            self.last_confirmation = delegation.check_receipt(
                response.data, lambda cd: load_receipt_data(cd, package, target)
            )
        return len(commands)

    def default_block_size(self) -> int:
        limit = min(self.fci.max_command_length or 255, 255) if self.fci else 255
        overhead = 0
        if SecurityLevel.C_MAC in self.level:
            overhead += 16 if self._s16 else 8
        if SecurityLevel.C_DECRYPTION in self.level:
            overhead += 16  # padding to the block, plus SCP01's length byte, at most
        return max(limit - overhead, 16)

    @property
    def _s16(self) -> bool:
        init = self.session.init_response
        return bool(init and init.i_param is not None and init.i_param & 0x01)

    def install(
        self,
        load_file_aid: bytes,
        module_aid: bytes,
        application_aid: bytes | None = None,
        *,
        privileges: Privileges | None = None,
        parameters: bytes = b"\xc9\x00",
        make_selectable: bool = True,
        delegation: Delegation | None = None,
    ) -> None:
        """INSTALL [for install (and make selectable)] an instance of ``module_aid`` (GP 2.3.1, 11.5.2.3.2);
        with ``delegation``, the Install Token is added and the Install Receipt checked (C.4.2, C.5.2)."""
        data = InstallForInstall(
            load_file_aid, module_aid, application_aid or module_aid, privileges or Privileges(), parameters
        )
        p1 = 0x0C if make_selectable else 0x04
        if delegation is not None:
            unsigned = data
            data = dataclasses.replace(data, token=delegation.token_for(lambda: install_token_data(p1, 0, unsigned)))
        command = install_for_install_command(data, make_selectable=make_selectable, channel=self.session.channel)
        response = self.session.send(command, "INSTALL [for install]")
        if delegation is not None:
            elf, aid = load_file_aid, data.application_aid
            self.last_confirmation = delegation.check_receipt(
                response.data, lambda cd: install_receipt_data(cd, elf, aid)
            )

    def extradite(self, aid: bytes, sd_aid: bytes, *, delegation: Delegation | None = None) -> None:
        """INSTALL [for extradition] of an application or load file to ``sd_aid`` (11.5.2.3.4; C.4.4, C.5.3).

        With a receipt key, the receipt's old Security Domain is the selected one (the one extraditing)."""
        data = InstallForExtradition(sd_aid, aid)
        if delegation is not None:
            unsigned = data
            data = dataclasses.replace(data, token=delegation.token_for(lambda: install_token_data(0x10, 0, unsigned)))
        command = install_for_extradition_command(data, channel=self.session.channel)
        response = self.session.send(command, "INSTALL [for extradition]")
        if delegation is not None:
            old = self.isd_aid
            self.last_confirmation = delegation.check_receipt(
                response.data, lambda cd: extradition_receipt_data(cd, old, aid, sd_aid)
            )

    def store_data(self, blocks: Sequence[bytes], *, p1: int = 0x00, application_aid: bytes | None = None) -> None:
        """STORE DATA (GP 2.3.1, 11.11), to the Security Domain or, after INSTALL [for personalization], to
        ``application_aid``."""
        if application_aid is not None:
            command = install_for_personalization_command(application_aid, channel=self.session.channel)
            self.session.send(command, "INSTALL [for personalization]")
        for n, command in enumerate(store_data_commands(blocks, p1, channel=self.session.channel)):
            self.session.send(command, f"STORE DATA block {n}")

    def set_status(self, scope: SetStatusScope, state: int, aid: bytes = b"") -> None:
        """SET STATUS (GP 2.3.1, 11.10): lock/unlock an application or SD, or change the card life cycle."""
        if scope is SetStatusScope.ISD and not aid:
            aid = self.isd_aid
        self.session.send(set_status_command(scope, state, aid, channel=self.session.channel), "SET STATUS")

    def create_ssd(
        self,
        aid: bytes,
        *,
        privileges: Privileges | None = None,
        parameters: InstallParameters | None = None,
        load_file_aid: bytes = SSD_LOAD_FILE_AID,
        module_aid: bytes = SSD_MODULE_AID,
    ) -> None:
        """INSTALL [for install and make selectable] a Supplementary Security Domain (GP 2.3.1, 9.4 / 11.5).

        Its own keys are then put with PUT KEY in a secure channel opened with the SSD (see the CLI's
        ``create-ssd``), since only the SSD itself can receive its keys.
        """
        privs = (privileges or Privileges()) | Privileges.of(Privilege.SECURITY_DOMAIN)
        params = parameters.to_bytes() if parameters is not None else b"\xc9\x00"
        self.install(load_file_aid, module_aid, aid, privileges=privs, parameters=params)

    def select(self, aid: bytes) -> Fci | None:
        """SELECT ``aid``; this ends the secure channel (the card closes it when another application is
        selected on the channel, GP 2.3.1 10.2.3)."""
        response = self.session.transmit_plain(select_command(aid, channel=self.session.channel))
        self.session.end_secure_channel()
        if response.sw != 0x9000:
            raise CardStatusError(response.sw, f"SELECT {aid.hex().upper()}", response.data)
        fci = _try_fci(response.data)
        self.isd_aid = aid
        self.fci = fci
        return fci


def _try_fci(raw: bytes) -> Fci | None:
    try:
        return Fci.from_bytes(raw)
    except DecodeError:
        return None
