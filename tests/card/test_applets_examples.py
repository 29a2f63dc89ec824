"""The example applets end to end: the host tool (CardSession, GpCard) over an in-process transport to the
emulator (Card.process), both applets installed from a profile and with INSTALL, SCP03 at levels 01, 03 and 33,
commands below the required level (6982), and Security Domain association (SSD keys, extradition).

The protocol bytes themselves are checked against external vectors in test_secure_channel_service.py (service)
and tests/scp/test_scp03.py (Scp03Card, which the direct applet uses); here both sides are ours.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpchannel.card.applets_examples import (
    DIRECT_MODULE_AID,
    EXAMPLES_PACKAGE_AID,
    SECURE_STORE_MODULE_AID,
    DirectScp03Applet,
)
from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import LoadFile, MemoryStore
from gpchannel.cli.main import cli
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.sw import describe
from gpchannel.codec.tlv import tlv
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import (
    AuthenticationError,
    CardError,
    CardStatusError,
    DecodeError,
    GPChannelError,
    IncorrectData,
)
from gpchannel.host.card import SSD_LOAD_FILE_AID, SSD_MODULE_AID, GpCard
from gpchannel.host.session import CardSession, ChannelOptions, Exchange
from gpchannel.io.transport import InProcessTransport
from gpchannel.scp.common import SecurityLevel
from tests.card.harness import counter_random
from tests.gp.test_cap import applet, build_cap, components, header

ISD_AID = bytes.fromhex("A000000151000000")
STORE_AID = bytes.fromhex("F0677063680001010A")
DIRECT_AID = bytes.fromhex("F0677063680001020A")
SSD_AID = bytes.fromhex("A000000151535041AA")
ISD_KEYS = StaticKeys.single(bytes.fromhex("404142434445464748494A4B4C4D4E4F"), 0x30, KeyType.AES)
DIRECT_KEYS = StaticKeys(bytes([0x11]) * 16, bytes([0x22]) * 16, bytes([0x33]) * 16, 0x21, KeyType.AES)
LEVELS = [0x01, 0x03, 0x33]


def _direct_params(level: int, keys: StaticKeys = DIRECT_KEYS, i: int = 0x70) -> bytes:
    return bytes((keys.kvn, i, level)) + keys.enc + keys.mac + keys.dek


def _profile(store_level: str = "01", direct_level: int = 0x01) -> str:
    return f"""
[card]
kdd = "00112233445566778899"

[isd]
aid = "{ISD_AID.hex()}"
scp = "03"
i = "70"

[[isd.keysets]]
kvn = 0x30
type = "aes"
enc = "404142434445464748494A4B4C4D4E4F"
mac = "404142434445464748494A4B4C4D4E4F"
dek = "404142434445464748494A4B4C4D4E4F"

[[applications]]
aid = "{STORE_AID.hex()}"
kind = "secure-store"
parameters = "{store_level}"

[[applications]]
aid = "{DIRECT_AID.hex()}"
kind = "scp03-direct"
parameters = "{_direct_params(direct_level).hex()}"
"""


class Wire:
    """The card and a host session over an in-process transport; ``exchanges`` records what went over it."""

    def __init__(self, text: str) -> None:
        state = load_profile(text)
        self.store = MemoryStore()
        self.store.commit(state)
        self.card = Card(state, self.store, random=counter_random())
        self.exchanges: list[Exchange] = []
        session = CardSession(
            InProcessTransport(self.card.process), random=counter_random(), trace=self.exchanges.append
        )
        self.gp = GpCard.connect(session, ISD_AID)

    def open_app(self, aid: bytes, keys: StaticKeys, level: int, kvn: int = 0) -> None:
        """SELECT the application, then open SCP03 with it (the host computes challenges over its AID)."""
        self.gp.select(aid)
        self.gp.open_secure_channel(ChannelOptions(keys, SecurityLevel(level), kvn=kvn))

    def send(self, ins: int, data: bytes = b"") -> ResponseApdu:
        return self.gp.apdu(CommandApdu(0x80, ins, 0x00, 0x00, data, le=256 if ins in (0xCA, 0x10, 0x12) else None))


def _put(key: bytes, value: bytes) -> bytes:
    return bytes((len(key),)) + key + value


# -- installed from a profile ------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_secure_store_from_a_profile(level: int) -> None:
    wire = Wire(_profile())
    wire.open_app(STORE_AID, ISD_KEYS, level)
    assert wire.send(0xDA, _put(b"pin", b"1234")).sw == 0x9000
    got = wire.send(0xCA, b"pin")
    assert got == ResponseApdu(b"1234")
    on_the_wire = wire.exchanges[-1].response
    if level & SecurityLevel.R_ENCRYPTION:
        assert len(on_the_wire.data) == 16 + 8 and b"1234" not in on_the_wire.data  # R-ENC block + R-MAC
    elif level & SecurityLevel.R_MAC:
        assert on_the_wire.data[:4] == b"1234" and len(on_the_wire.data) == 12
    else:
        assert on_the_wire.data == b"1234"  # no response protection below R-MAC
    if level & SecurityLevel.C_DECRYPTION:
        assert b"1234" not in wire.exchanges[-2].command.data  # the PUT travelled enciphered
    assert wire.send(0xE4, b"pin").sw == 0x9000
    assert wire.send(0xCA, b"pin").sw == 0x6A88
    app = wire.store.load()
    assert app is not None and (app.application(STORE_AID) or app.isd).data["values"] == {}


@pytest.mark.parametrize("level", LEVELS)
def test_direct_applet_from_a_profile(level: int) -> None:
    wire = Wire(_profile())
    wire.open_app(DIRECT_AID, DIRECT_KEYS, level)
    assert wire.send(0x10, b"hello") == ResponseApdu(b"hello")
    assert wire.send(0x12) == ResponseApdu(bytes((level,)))
    init = wire.gp.session.init_response
    assert init is not None and init.kvn == DIRECT_KEYS.kvn
    assert init.key_diversification_data == DIRECT_AID[:9] + b"\x00"  # its own, not the card's
    saved = wire.store.load()
    assert saved is not None and (saved.application(DIRECT_AID) or saved.isd).data["sequence_counter"] == 1


def test_each_applet_refuses_the_other_keys() -> None:
    wire = Wire(_profile())
    with pytest.raises(AuthenticationError):
        wire.open_app(DIRECT_AID, ISD_KEYS, 0x01)  # KVN 0: the applet's key set, and the wrong keys
    with pytest.raises(CardStatusError) as exc:
        wire.open_app(DIRECT_AID, ISD_KEYS, 0x01, kvn=0x30)  # the applet has key set 21 only
    assert exc.value.sw == 0x6A88
    with pytest.raises(CardStatusError) as exc:
        wire.open_app(STORE_AID, DIRECT_KEYS, 0x01, kvn=0x21)  # the ISD has no key set 21
    assert exc.value.sw == 0x6A88


# -- below the required level ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("required", "opened"), [("03", 0x01), ("33", 0x03), ("33", 0x13), ("13", 0x03)])
def test_secure_store_below_its_level_is_6982(required: str, opened: int) -> None:
    wire = Wire(_profile(store_level=required))
    wire.open_app(STORE_AID, ISD_KEYS, opened)
    assert wire.send(0xDA, _put(b"k", b"v")).sw == 0x6982
    wire.open_app(STORE_AID, ISD_KEYS, int(required, 16))
    assert wire.send(0xDA, _put(b"k", b"v")).sw == 0x9000


@pytest.mark.parametrize(("required", "opened"), [(0x03, 0x01), (0x33, 0x03)])
def test_direct_below_its_level_is_6982(required: int, opened: int) -> None:
    wire = Wire(_profile(direct_level=required))
    wire.open_app(DIRECT_AID, DIRECT_KEYS, opened)
    assert wire.send(0x10, b"x").sw == 0x6982
    wire.open_app(DIRECT_AID, DIRECT_KEYS, required)
    assert wire.send(0x10, b"x") == ResponseApdu(b"x")


@pytest.mark.parametrize("aid", [STORE_AID, DIRECT_AID])
def test_without_a_session_commands_are_6982(aid: bytes) -> None:
    wire = Wire(_profile())
    wire.gp.select(aid)
    assert wire.send(0x10 if aid == DIRECT_AID else 0xCA, b"k").sw == 0x6982


@pytest.mark.parametrize("aid", [STORE_AID, DIRECT_AID])
def test_reselection_ends_the_applet_session(aid: bytes) -> None:
    wire = Wire(_profile())
    wire.open_app(aid, ISD_KEYS if aid == STORE_AID else DIRECT_KEYS, 0x01)
    secure = wire.gp.session.secure
    assert secure is not None
    command = CommandApdu(0x80, 0x10 if aid == DIRECT_AID else 0xCA, 0, 0, b"k")
    wrapped = secure.wrap(command)
    wire.gp.session.transmit_plain(CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, le=256))  # SELECT again
    assert wire.gp.session.transmit_plain(wrapped).sw == 0x6982


def test_a_tampered_command_aborts_the_store_session() -> None:
    wire = Wire(_profile())
    wire.open_app(STORE_AID, ISD_KEYS, 0x03)
    secure = wire.gp.session.secure
    assert secure is not None
    wrapped = secure.wrap(CommandApdu(0x80, 0xDA, 0, 0, _put(b"k", b"v")))
    bad = wrapped.with_changes(data=bytes((wrapped.data[0] ^ 1,)) + wrapped.data[1:])
    assert wire.gp.session.transmit_plain(bad).sw == 0x6982
    again = secure.wrap(CommandApdu(0x80, 0xDA, 0, 0, _put(b"k", b"v")))
    assert wire.gp.session.transmit_plain(again).sw == 0x6982  # aborted: refused until a new session


# -- installed with INSTALL ----------------------------------------------------------------------------------------


def _with_examples_package(wire: Wire) -> None:
    """The examples' Executable Load File, as if loaded (or in ROM): the INSTALL target of both modules."""
    wire.card.state.load_files.append(
        LoadFile(EXAMPLES_PACKAGE_AID, ISD_AID, [SECURE_STORE_MODULE_AID, DIRECT_MODULE_AID])
    )
    wire.card.state.load_files.append(LoadFile(SSD_LOAD_FILE_AID, ISD_AID, [SSD_MODULE_AID]))
    wire.card.save()


def _c9(value: bytes) -> bytes:
    return b"\xc9" + bytes((len(value),)) + value


@pytest.mark.parametrize("level", LEVELS)
def test_both_installed_with_install(level: int) -> None:
    wire = Wire(_profile())
    _with_examples_package(wire)
    wire.gp.open_secure_channel(ChannelOptions(ISD_KEYS, SecurityLevel.C_MAC))
    store, direct = bytes.fromhex("F067706368000101BB"), bytes.fromhex("F067706368000102BB")
    wire.gp.install(EXAMPLES_PACKAGE_AID, SECURE_STORE_MODULE_AID, store, parameters=_c9(bytes((level,))))
    keys = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x40, KeyType.AES)
    wire.gp.install(EXAMPLES_PACKAGE_AID, DIRECT_MODULE_AID, direct, parameters=_c9(_direct_params(level, keys)))
    wire.open_app(store, ISD_KEYS, level)
    assert wire.send(0xDA, _put(b"a", b"b")).sw == 0x9000
    assert wire.send(0xCA, b"a") == ResponseApdu(b"b")
    wire.open_app(direct, keys, level)
    assert wire.send(0x12) == ResponseApdu(bytes((level,)))


@pytest.mark.parametrize(
    ("module", "value"),
    [
        (DIRECT_MODULE_AID, b""),  # no key set
        (DIRECT_MODULE_AID, _direct_params(0x01)[:-1]),  # keys of unequal length
        (DIRECT_MODULE_AID, _direct_params(0x02)),  # C-DECRYPTION without C-MAC
        (DIRECT_MODULE_AID, _direct_params(0x01, i=0x71)),  # S16 is not offered
        (SECURE_STORE_MODULE_AID, b"\x21"),  # R-ENC without R-MAC
        (SECURE_STORE_MODULE_AID, b"\x01\x01"),
    ],
)
def test_install_refuses_bad_parameters(module: bytes, value: bytes) -> None:
    wire = Wire(_profile())
    _with_examples_package(wire)
    wire.gp.open_secure_channel(ChannelOptions(ISD_KEYS, SecurityLevel.C_MAC))
    with pytest.raises(CardStatusError) as exc:
        wire.gp.install(EXAMPLES_PACKAGE_AID, module, bytes.fromhex("F0677063680001FFFF"), parameters=_c9(value))
    assert exc.value.sw == 0x6A80
    assert wire.card.state.application(bytes.fromhex("F0677063680001FFFF")) is None


def test_direct_parameters_parse() -> None:
    keys, i, level = DirectScp03Applet.parse_parameters(_direct_params(0x33))
    assert (keys.kvn, keys.enc, keys.dek, i, level) == (0x21, DIRECT_KEYS.enc, DIRECT_KEYS.dek, 0x70, 0x33)
    with pytest.raises(CardError):
        DirectScp03Applet.parse_parameters(b"\x30\x70")


# -- Security Domain association ---------------------------------------------------------------------------------


def _key_dgis(keys: StaticKeys, encrypt: object) -> bytes:
    """DGI 00B9 (one B9 control reference template per key) then one 8113 per key (GP 2.3.1, 11.11.4.1)."""
    assert callable(encrypt)
    crts, values = b"", b""
    for key_id, (key, check) in enumerate(zip((keys.enc, keys.mac, keys.dek), keys.kcvs(), strict=True), start=1):
        body = b"".join(
            tlv(tag, value)
            for tag, value in (
                (0x95, b"\x18"),
                (0x80, bytes((keys.key_type.value,))),
                (0x81, bytes((len(key),))),
                (0x82, bytes((key_id,))),
                (0x83, bytes((keys.kvn,))),
                (0x84, check),
            )
        )
        crts += tlv(0xB9, body)
        cryptogram = encrypt(key)
        assert isinstance(cryptogram, bytes)
        values += b"\x81\x13" + bytes((len(cryptogram),)) + cryptogram
    return b"\x00\xb9" + bytes((len(crts),)) + crts + values


def test_extradition_moves_the_application_to_the_ssd_keys() -> None:
    wire = Wire(_profile())
    _with_examples_package(wire)
    first = StaticKeys(bytes([0xA1]) * 16, bytes([0xA2]) * 16, bytes([0xA3]) * 16, 0x30, KeyType.AES)
    own = StaticKeys(bytes([0xB1]) * 16, bytes([0xB2]) * 16, bytes([0xB3]) * 16, 0x31, KeyType.AES)
    # Before: the store uses its Security Domain's keys, the ISD's.
    wire.open_app(STORE_AID, ISD_KEYS, 0x03)
    assert wire.send(0xDA, _put(b"k", b"isd")).sw == 0x9000
    # Create the SSD; it has no keys (GP 2.3.1 5.3.2.2) until the ISD personalizes it with a first key set.
    wire.gp.select(ISD_AID)
    wire.gp.open_secure_channel(ChannelOptions(ISD_KEYS, SecurityLevel(0x03)))
    wire.gp.create_ssd(SSD_AID)
    secure = wire.gp.session.secure
    assert secure is not None
    wire.gp.store_data([_key_dgis(first, secure.encrypt_key)], p1=0x68, application_aid=SSD_AID)
    # Its own keys with PUT KEY, in its own secure channel: key set 31 replaces 30.
    wire.gp.select(SSD_AID)
    wire.gp.open_secure_channel(ChannelOptions(first, SecurityLevel(0x03)))
    wire.gp.put_key(own, replace_kvn=first.kvn)
    ssd = wire.card.state.application(SSD_AID)
    assert ssd is not None and ssd.sd is not None and [k.kvn for k in ssd.sd.keysets] == [0x31]
    # Extradite the store to the SSD (by the ISD, which owns it).
    wire.gp.select(ISD_AID)
    wire.gp.open_secure_channel(ChannelOptions(ISD_KEYS, SecurityLevel(0x03)))
    wire.gp.extradite(STORE_AID, SSD_AID)
    app = wire.card.state.application(STORE_AID)
    assert app is not None and app.sd_aid == SSD_AID
    # The ISD's keys no longer open a session with the store: KVN 30 is unknown, KVN 0 is the SSD's key set.
    with pytest.raises(CardStatusError) as exc:
        wire.open_app(STORE_AID, ISD_KEYS, 0x03, kvn=0x30)
    assert exc.value.sw == 0x6A88
    with pytest.raises(AuthenticationError):
        wire.open_app(STORE_AID, ISD_KEYS, 0x03)
    # The SSD's keys do, and the data stayed with the application.
    wire.open_app(STORE_AID, own, 0x33)
    assert wire.send(0xCA, b"k") == ResponseApdu(b"isd")
    init = wire.gp.session.init_response
    assert init is not None and init.kvn == 0x31


# -- the command line: --app ---------------------------------------------------------------------------------------


def _cli(wire: Wire, *args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "200"})
    obj = {"transport_factory": lambda: InProcessTransport(wire.card.process), "random": counter_random()}
    return runner.invoke(cli, list(args), obj=obj, catch_exceptions=False)


@pytest.mark.parametrize("level", ["01", "03", "33"])
def test_cli_opens_the_channel_with_an_application(level: str) -> None:
    wire = Wire(_profile())
    keys = ["--key-enc", DIRECT_KEYS.enc.hex(), "--key-mac", DIRECT_KEYS.mac.hex(), "--key-dek", DIRECT_KEYS.dek.hex()]
    result = _cli(
        wire, *keys, "--security-level", level, "--app", DIRECT_AID.hex(), "apdu", "8010000002CAFE00", "80120000"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["CAFE", *_ok(), level, *_ok()]
    isd_key = ISD_KEYS.enc.hex()
    result = _cli(
        wire, "--key", isd_key, "--security-level", level, "--app", STORE_AID.hex(), "apdu", "80DA000003016B76"
    )
    assert result.exit_code == 0, result.output
    stored = wire.card.state.application(STORE_AID)
    assert stored is not None and stored.data["values"] == {"6B": "76"}
    refused = _cli(wire, "--key", isd_key, "--app", DIRECT_AID.hex(), "apdu", "8012000000")  # the ISD's keys
    assert refused.exit_code != 0


def _ok() -> list[str]:
    """How ``apdu`` prints 9000 (the words of ``describe``)."""
    return describe(0x9000).split()


def test_cli_load_and_install_both_examples(tmp_path: Path) -> None:
    """``gpchannel load`` of a CAP whose package and applets are the examples', then ``gpchannel install``."""
    parts = components()
    parts["Header"] = header(EXAMPLES_PACKAGE_AID)
    parts["Applet"] = applet((SECURE_STORE_MODULE_AID, DIRECT_MODULE_AID))
    cap = tmp_path / "examples.cap"
    cap.write_bytes(build_cap(parts))
    wire = Wire(_profile())
    isd = ["--key", ISD_KEYS.enc.hex(), "--security-level", "03"]
    loaded = _cli(wire, *isd, "load", str(cap))
    assert loaded.exit_code == 0, loaded.output
    store, direct = bytes.fromhex("F0677063680001010C"), bytes.fromhex("F0677063680001020C")
    for module, instance, params in (
        (SECURE_STORE_MODULE_AID, store, "C90133"),
        (DIRECT_MODULE_AID, direct, "C9" + bytes((51,)).hex() + _direct_params(0x03).hex()),
    ):
        args = ["install", "--package", EXAMPLES_PACKAGE_AID.hex(), "--applet", module.hex(), "--instance"]
        result = _cli(wire, *isd, *args, instance.hex(), "--params", params)
        assert result.exit_code == 0, result.output
    put = ["--app", store.hex(), "apdu", "80DA000003016B76"]
    below = _cli(wire, *isd, *put)
    assert below.exit_code != 0 and "6982" in below.stdout  # the store asks for 33
    at_33 = _cli(wire, "--key", ISD_KEYS.enc.hex(), "--security-level", "33", *put)
    assert at_33.exit_code == 0, at_33.output
    keys = ["--key-enc", DIRECT_KEYS.enc.hex(), "--key-mac", DIRECT_KEYS.mac.hex(), "--key-dek", DIRECT_KEYS.dek.hex()]
    echoed = _cli(wire, *keys, "--security-level", "03", "--app", direct.hex(), "apdu", "8010000001AA00")
    assert echoed.exit_code == 0 and echoed.stdout.split()[0] == "AA"


# -- parsers and robustness ----------------------------------------------------------------------------------------


@given(st.binary(max_size=110))
def test_direct_parameters_parse_or_6a80(raw: bytes) -> None:
    try:
        keys, i, level = DirectScp03Applet.parse_parameters(raw)
    except IncorrectData:
        return
    assert len(raw) == 3 + 3 * len(keys.enc) and (keys.kvn, i, int(level)) == (raw[0], raw[1], raw[2])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(aid=st.sampled_from([STORE_AID, DIRECT_AID]), raw=st.binary(min_size=4, max_size=40), wrap=st.booleans())
def test_arbitrary_commands_never_crash_the_applets(aid: bytes, raw: bytes, wrap: bool) -> None:
    wire = Wire(_profile())
    wire.open_app(aid, ISD_KEYS if aid == STORE_AID else DIRECT_KEYS, 0x33)
    secure = wire.gp.session.secure
    assert secure is not None
    try:
        command = CommandApdu.from_bytes(raw)
    except DecodeError:
        command = None
    if wrap and command is not None and command.cla & 0x80 and not command.is_extended:
        try:
            raw = secure.wrap(command.with_changes(cla=0x80)).to_bytes()
        except GPChannelError:
            pass
    answer = ResponseApdu.from_bytes(wire.card.process(raw))
    assert answer.sw != 0x6F00


@pytest.mark.parametrize(
    ("i", "level"), [("55", 0x01), ("55", 0x03), ("55", 0x13), ("15", 0x01), ("15", 0x03), ("15", 0x11)]
)
def test_secure_store_under_an_scp02_security_domain(i: str, level: int) -> None:
    """Indirect handling is protocol independent: the same applet behind an SCP02 Security Domain."""
    text = _profile(store_level="01").replace('scp = "03"', 'scp = "02"').replace('i = "70"', f'i = "{i}"')
    wire = Wire(text.replace('type = "aes"', 'type = "des3"'))
    wire.gp.select(STORE_AID)
    keys = StaticKeys.single(ISD_KEYS.enc, 0x30, KeyType.DES3)
    wire.gp.session.open_secure_channel(ChannelOptions(keys, SecurityLevel(level), i_param=int(i, 16)), aid=STORE_AID)
    assert wire.send(0xDA, _put(b"k", b"v")).sw == 0x9000
    assert wire.send(0xCA, b"k") == ResponseApdu(b"v")
    # Errors go through wrap too: SCP02 sends them without an R-MAC but chains it (E.4.5), so the next R-MAC
    # verifies on the host only if the card wrapped the error.
    assert wire.send(0xCA, b"x").sw == 0x6A88
    assert wire.send(0xCA, b"k") == ResponseApdu(b"v")
    if level & SecurityLevel.R_MAC:
        assert len(wire.exchanges[-1].response.data) == 1 + 8  # the value and the R-MAC the host verified
    init = wire.gp.session.init_response
    assert init is not None and init.protocol == 0x02


def test_the_direct_applet_keys_stay_out_of_reprs() -> None:
    wire = Wire(_profile())
    wire.open_app(DIRECT_AID, DIRECT_KEYS, 0x03)
    app = wire.card.state.application(DIRECT_AID)
    assert app is not None
    instance = wire.card.ctx.applet(DIRECT_AID)
    shown = " ".join(repr(x) for x in (wire.card.state, app, instance, instance and instance.environment))
    for key in (DIRECT_KEYS.enc, DIRECT_KEYS.mac, DIRECT_KEYS.dek):
        assert key.hex().upper() not in shown.upper() and repr(key)[2:-1] not in shown
