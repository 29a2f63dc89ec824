"""The SecureChannel service (org.globalplatform.SecureChannel) of a Security Domain, as an application uses it.

External vectors: pySim SCP03 handshakes and wrapped APDUs (real eUICCs) replayed through ``process_security``,
``unwrap`` and ``wrap``; GlobalPlatformPro key cryptograms for ``encrypt_data`` / ``decrypt_data`` (SCP01 static
DEK, SCP02 session DEK). Then the behaviour the GP API describes: no session, failed authentication, abort
(Current Security Level dropped, error kept until termination), reset, and the session's end on SELECT.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpchannel.card.builtin_applets import default_registry
from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.secure_channel_service import CurrentSecurityLevel, SecureChannelService
from gpchannel.card.state import MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import CardError
from gpchannel.scp.common import SecurityLevel
from gpchannel.scp.scp03_host import Scp03Host
from gpchannel.scp.symmetric import SymmetricHostChannel
from tests.card.harness import counter_random, host_class, send
from tests.vectors import VectorCase, cases, params

PYSIM = "applets/pysim.json"
GPPRO = "applets/globalplatformpro.json"
PYSIM_APP_AID = bytes.fromhex("A0000005591010FFFFFFFF8900000100")
"""The pySim challenges are computed over this AID (tests/vectors/applets/SOURCES.md): the application's here."""
APP_AID = bytes.fromhex("F06770636800010101")
ISD_AID = bytes.fromhex("A000000151000000")
DEFAULT_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


def _profile(
    *,
    scp: str = "03",
    i: str = "70",
    kvn: int = 0x30,
    keys: tuple[str, str, str] = (DEFAULT_KEY.hex(),) * 3,
    counter: int = 0,
    kdd: str = "00" * 10,
    app_aid: bytes = APP_AID,
) -> str:
    key_type = "aes" if scp == "03" else "des3"
    return f"""
[card]
kdd = "{kdd}"

[isd]
aid = "{ISD_AID.hex()}"
scp = "{scp}"
i = "{i}"
sequence_counter = {counter}

[[isd.keysets]]
kvn = {kvn}
type = "{key_type}"
enc = "{keys[0]}"
mac = "{keys[1]}"
dek = "{keys[2]}"

[[applications]]
aid = "{app_aid.hex()}"
kind = "secure-store"
"""


def _service(text: str, app_aid: bytes = APP_AID) -> tuple[SecureChannelService, CardContext]:
    ctx = CardContext(load_profile(text), counter_random(), default_registry())
    return SecureChannelService(ctx, ChannelContext(0), app_aid), ctx


def _sw(exc: pytest.ExceptionInfo[CardError]) -> int:
    return exc.value.sw


# -- pySim: real eUICC sessions replayed through the service ----------------------------------------------------


def _pysim_service(case: VectorCase) -> tuple[SecureChannelService, CardContext, bytes]:
    inputs: dict[str, Any] = case.inputs
    resp = case.hex_in("init_update_resp")
    text = _profile(
        kvn=inputs["kvn"],
        keys=(inputs["key_enc"], inputs["key_mac"], inputs["key_dek"]),
        counter=int.from_bytes(resp[-3:], "big") - 1,
        kdd=resp[:10].hex(),
        app_aid=PYSIM_APP_AID,
    )
    service, ctx = _service(text, PYSIM_APP_AID)
    return service, ctx, resp


@pytest.mark.parametrize("case", params(PYSIM, "scp03-handshake"))
def test_pysim_handshake_through_process_security(case: VectorCase) -> None:
    service, ctx, resp = _pysim_service(case)
    answer = service.process_security(CommandApdu.from_bytes(case.hex_out("init_update_cmd")))
    assert answer == ResponseApdu(resp)
    sd = ctx.state.isd.sd
    assert sd is not None and sd.keysets[0].sequence_counter == int.from_bytes(resp[-3:], "big")  # persisted
    assert service.get_security_level() == CurrentSecurityLevel.NO_SECURITY_LEVEL  # initiated, not open
    assert service.process_security(CommandApdu.from_bytes(case.hex_out("ext_auth_cmd"))) == ResponseApdu()
    level = int(case.inputs["security_level"], 16)
    assert service.get_security_level() == CurrentSecurityLevel.AUTHENTICATED | level


@pytest.mark.parametrize("case", params(PYSIM, "scp03-wrap"))
def test_pysim_unwrap_and_wrap(case: VectorCase) -> None:
    service, _, resp = _pysim_service(case)
    handshake = next(c for c in cases(PYSIM, "scp03-handshake") if c.hex_in("init_update_resp") == resp)
    service.process_security(CommandApdu.from_bytes(handshake.hex_out("init_update_cmd")))
    service.process_security(CommandApdu.from_bytes(handshake.hex_out("ext_auth_cmd")))
    outputs = [bytes.fromhex(o) for o in case.expected["outputs"]]
    last: CommandApdu | None = None
    for step, expected in zip(case.inputs["steps"], outputs, strict=True):
        if step["op"] == "wrap":
            last = CommandApdu.from_bytes(bytes.fromhex(step["apdu"]))
            assert service.unwrap(CommandApdu.from_bytes(expected)).to_bytes() == last.to_bytes()
        else:
            assert last is not None
            sw = int(step["sw"], 16)
            assert service.wrap(ResponseApdu(expected, sw)) == ResponseApdu(bytes.fromhex(step["rapdu_data"]), sw)


# -- GlobalPlatformPro: sensitive data under the DEK -------------------------------------------------------------


def _open(service: SecureChannelService, scp: str, level: int, keys: StaticKeys, i: int) -> SymmetricHostChannel:
    factory: Any = host_class(scp)
    host: SymmetricHostChannel = factory(
        keys, level=SecurityLevel(level), host_challenge=bytes(range(8)), i_param=i, kvn=keys.kvn, aid=APP_AID
    )
    host.receive_initialize_update(service.process_security(host.initialize_update()))
    host.receive_external_authenticate(service.process_security(host.external_authenticate()))
    assert host.is_open
    return host


@pytest.mark.parametrize(
    ("case", "scp", "i"),
    [(c, "01", "05") for c in cases(GPPRO, "key-encryption-scp01")]
    + [(c, "02", "15") for c in cases(GPPRO, "key-encryption-scp02")],
)
def test_encrypt_and_decrypt_data_gppro(case: VectorCase, scp: str, i: str) -> None:
    dek = case.hex_in("dek")
    counter = int(case.inputs.get("sequence_counter", "0000"), 16)
    service, _ = _service(_profile(scp=scp, i=i, keys=(dek.hex(),) * 3, counter=counter))
    keys = StaticKeys.single(dek, 0x30, KeyType.DES3)
    _open(service, scp, 0x01, keys, int(i, 16))
    key = case.hex_in("key_to_encrypt")
    assert service.encrypt_data(key) == case.hex_out("cryptogram")
    assert service.decrypt_data(case.hex_out("cryptogram")) == key


def test_scp03_sensitive_data_matches_the_host_key_encryption() -> None:
    service, _ = _service(_profile())
    host = _open(service, "03", 0x01, StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES), 0x70)
    secret = bytes(range(32))
    assert service.decrypt_data(host.encrypt_key(secret)) == secret
    assert service.encrypt_data(secret) == host.encrypt_key(secret)
    with pytest.raises(CardError) as exc:
        service.decrypt_data(bytes(15))
    assert _sw(exc) == 0x6700


# -- behaviour ---------------------------------------------------------------------------------------------------

MACED = CommandApdu(0x84, 0xCA, 0x00, 0x00, bytes(12))
PLAIN = CommandApdu(0x80, 0xCA, 0x00, 0x00, b"\x01")


def test_without_a_session_nothing_fails_and_nothing_changes() -> None:
    service, _ = _service(_profile())
    assert service.get_security_level() == CurrentSecurityLevel.NO_SECURITY_LEVEL
    assert service.unwrap(MACED) is MACED  # no session: "does not fail", the command stays as it is
    assert service.unwrap(PLAIN) is PLAIN
    assert service.wrap(ResponseApdu(b"\x01", 0x9000)) == ResponseApdu(b"\x01", 0x9000)
    service.reset_security()  # "shall not fail if no Secure Channel has been initiated"
    for call in (service.decrypt_data, service.encrypt_data):
        with pytest.raises(CardError) as exc:
            call(bytes(16))
        assert _sw(exc) == 0x6982


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        (CommandApdu(0x00, 0x50, 0, 0, bytes(8), 256), 0x6E00),  # not a GlobalPlatform class
        (CommandApdu(0x80, 0xCA, 0, 0, b"", 256), 0x6D00),  # not a security command
        (CommandApdu(0x84, 0x82, 0x01, 0, bytes(16)), 0x6985),  # EXTERNAL AUTHENTICATE first
        (CommandApdu(0x80, 0x50, 0x31, 0, bytes(8), 256), 0x6A88),  # no key set 31
    ],
)
def test_process_security_refusals(command: CommandApdu, sw: int) -> None:
    service, _ = _service(_profile())
    with pytest.raises(CardError) as exc:
        service.process_security(command)
    assert _sw(exc) == sw


def test_failed_authentication_leaves_no_session() -> None:
    service, _ = _service(_profile())
    host = Scp03Host(
        StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES), level=SecurityLevel.C_MAC, host_challenge=bytes(8)
    )
    service.process_security(host.initialize_update())
    bad = CommandApdu(0x84, 0x82, 0x01, 0x00, bytes(16))
    with pytest.raises(CardError) as exc:
        service.process_security(bad)
    assert _sw(exc) == 0x6982
    assert service.get_security_level() == CurrentSecurityLevel.NO_SECURITY_LEVEL
    assert service.unwrap(MACED) is MACED  # no session any more: nothing is checked, nothing fails


@pytest.mark.parametrize("level", [0x01, 0x03, 0x33])
def test_abort_keeps_the_error_until_reset(level: int) -> None:
    service, _ = _service(_profile())
    host = _open(service, "03", level, StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES), 0x70)
    assert service.get_security_level() == CurrentSecurityLevel.AUTHENTICATED | level
    wire = host.wrap(CommandApdu(0x80, 0xDA, 0, 0, b"\x01\x01AB"))
    tampered = wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,)))
    with pytest.raises(CardError) as exc:
        service.unwrap(tampered)
    assert _sw(exc) == 0x6982
    assert service.get_security_level() == CurrentSecurityLevel.NO_SECURITY_LEVEL  # aborted
    with pytest.raises(CardError) as exc:
        service.unwrap(host.wrap(CommandApdu(0x80, 0xCA, 0, 0, b"\x01")))  # still refused: the error persists
    assert _sw(exc) == 0x6982
    assert service.unwrap(PLAIN) is PLAIN  # without secure messaging: as is, at NO_SECURITY_LEVEL
    assert service.wrap(ResponseApdu(b"\x01")) == ResponseApdu(b"\x01")  # no R-MAC once aborted
    with pytest.raises(CardError):
        service.decrypt_data(bytes(16))
    service.reset_security()  # terminated: a new session may start
    _open(service, "03", level, StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES), 0x70)
    assert service.get_security_level() == CurrentSecurityLevel.AUTHENTICATED | level


def test_a_command_without_the_c_mac_a_level_requires_aborts() -> None:
    service, _ = _service(_profile())
    _open(service, "03", 0x01, StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES), 0x70)
    with pytest.raises(CardError) as exc:
        service.unwrap(PLAIN)
    assert _sw(exc) == 0x6982
    assert service.get_security_level() == CurrentSecurityLevel.NO_SECURITY_LEVEL


def test_reset_security_terminates_and_erases() -> None:
    service, _ = _service(_profile())
    host = _open(service, "03", 0x33, StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES), 0x70)
    service.reset_security()
    assert service.get_security_level() == CurrentSecurityLevel.NO_SECURITY_LEVEL
    wire = host.wrap(CommandApdu(0x80, 0xCA, 0, 0, b"\x01"))
    assert service.unwrap(wire) is wire  # no session: not unwrapped, and not refused by the service
    with pytest.raises(CardError):
        service.encrypt_data(bytes(16))


def test_a_command_after_initialize_update_abandons_the_initiation() -> None:
    service, _ = _service(_profile())
    host = Scp03Host(
        StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES),
        level=SecurityLevel.C_MAC,
        host_challenge=bytes(8),
        aid=APP_AID,
    )
    host.receive_initialize_update(service.process_security(host.initialize_update()))
    assert service.unwrap(PLAIN) is PLAIN
    with pytest.raises(CardError) as exc:
        service.process_security(host.external_authenticate())
    assert _sw(exc) == 0x6985


def test_the_session_ends_when_another_application_is_selected() -> None:
    state = load_profile(_profile())
    store = MemoryStore()
    store.commit(state)
    card = Card(state, store, random=counter_random())
    assert send(card, CommandApdu(0x00, 0xA4, 0x04, 0x00, APP_AID, 256)).sw == 0x9000
    host = Scp03Host(
        StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES),
        level=SecurityLevel.C_MAC,
        host_challenge=bytes(8),
        aid=APP_AID,
    )
    host.receive_initialize_update(send(card, host.initialize_update()))
    host.receive_external_authenticate(send(card, host.external_authenticate()))
    channel = card.channels[0]
    service = SecureChannelService(card.ctx, channel, APP_AID)
    assert service.get_security_level() == CurrentSecurityLevel.AUTHENTICATED | CurrentSecurityLevel.C_MAC
    assert send(card, CommandApdu(0x00, 0xA4, 0x04, 0x00, ISD_AID, 256)).sw == 0x9000
    assert service.get_security_level() == CurrentSecurityLevel.NO_SECURITY_LEVEL
    assert channel.session is None


def test_sessions_are_per_logical_channel() -> None:
    state = load_profile(_profile())
    store = MemoryStore()
    store.commit(state)
    card = Card(state, store, random=counter_random())
    assert send(card, "0070000001").data == b"\x01"
    keys = StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES)
    hosts = []
    for channel, level in ((0, SecurityLevel.C_MAC), (1, SecurityLevel(0x33))):
        assert send(card, CommandApdu(channel, 0xA4, 0x04, 0x00, APP_AID, 256)).sw == 0x9000
        host = Scp03Host(keys, level=level, host_challenge=bytes(8), aid=APP_AID, channel=channel)
        host.receive_initialize_update(send(card, host.initialize_update()))
        host.receive_external_authenticate(send(card, host.external_authenticate()))
        hosts.append(host)
    for host in (hosts[0], hosts[1], hosts[0]):
        put = CommandApdu(0x80 | host.channel, 0xDA, 0, 0, b"\x01k" + bytes((host.channel,)))
        assert host.unwrap(send(card, host.wrap(put))).sw == 0x9000
    levels = [SecureChannelService(card.ctx, card.channels[n], APP_AID).get_security_level() for n in (0, 1)]
    assert levels == [0x81, 0xB3]
    assert send(card, "0070800100").sw == 0x9000  # closing channel 1 ends its session only
    get = CommandApdu(0x80, 0xCA, 0, 0, b"k", 256)
    assert hosts[0].unwrap(send(card, hosts[0].wrap(get))).data == b"\x00"
