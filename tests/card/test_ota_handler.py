"""The card side of SCP80 in the emulator: ENVELOPE (SMS-PP download) -> reassembly -> security checks -> TAR ->
remote APDUs (RAM through the ISD, RFM through the file system) -> PoR. The server side here is the sans-I/O
core (gpchannel.ota), whose cryptography is checked against the gsm0348 / pySim vectors in tests/ota; the pySim
command packets below (tests/vectors/ota/pysim.json) also check that the card accepts what an independent
implementation built."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import LoadFile, MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import IntegrityError
from gpchannel.gp.install import InstallForInstall
from gpchannel.gp.registry_data import StatusScope
from gpchannel.host.commands import delete_command, get_status_command, install_for_install_command
from gpchannel.ota import (
    Address,
    CipherAlgorithm,
    CommandScript,
    CompactResponse,
    CounterMode,
    Integrity,
    Kic,
    Kid,
    MacAlgorithm,
    PorMode,
    PorTransport,
    Reassembler,
    Response,
    ResponseScript,
    ResponseStatus,
    Scp80KeySet,
    SmsDeliver,
    SmsPpDownload,
    SmsSubmit,
    Spi,
    encode_compact,
    secure_command,
    secured_message,
    split_packet,
    unsecure_response,
)
from gpchannel.ota.packet import CommandPacket
from tests.card.harness import counter_random, profile_text
from tests.vectors import VectorCase, cases

AES_KIC = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AES_KID = bytes.fromhex("101112131415161718191A1B1C1D1E1F")
KEYSET = Scp80KeySet(AES_KIC, AES_KID, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
KIC = Kic.for_cipher(CipherAlgorithm.AES_CBC, kvn=1)
KID = Kid.for_mac(MacAlgorithm.AES_CMAC, kvn=1)
RAM = bytes.fromhex("000000")
RFM = bytes.fromhex("B00001")
SPI = Spi(counter_mode=CounterMode.HIGHER)
SERVER = Address("12345678")
ISD = bytes.fromhex("A000000151000000")

OTA = f"""
[[ota.keysets]]
kvn = 1
kic = "{AES_KIC.hex()}"
kic_algorithm = "aes-cbc"
kid = "{AES_KID.hex()}"
kid_algorithm = "aes-cmac"
counter = 0

[[ota.keysets]]
kvn = 4
kic = "0102030405060708"
kic_algorithm = "des-cbc"
kid = "0807060504030201"
kid_algorithm = "des-cbc-mac"
"""


def make_card(extra: str = "") -> tuple[Card, MemoryStore]:
    state = load_profile(profile_text() + OTA + extra)
    store = MemoryStore()
    store.commit(state)
    return Card(state, store, random=counter_random()), store


def restart(store: MemoryStore) -> Card:
    return Card.from_store(store, lambda: pytest.fail("the store is empty"), random=counter_random())


def exchange(card: Card, command: CommandApdu) -> ResponseApdu:
    return ResponseApdu.from_bytes(card.process(command.to_bytes()))


@dataclass
class Sent:
    """What came back for one command packet: the ENVELOPE status words, the PoR user data (if any)."""

    sws: list[int]
    por_ud: bytes


def deliver(card: Card, packet: bytes, *, cla: int = 0x80, le: int | None = None, reference: int = 0) -> Sent:
    """The handset: one ENVELOPE per SM; the response fetched with GET RESPONSE / FETCH as a real ME does."""
    sws: list[int] = []
    por_ud = b""
    for ud in split_packet(packet, reference=reference):
        download = SmsPpDownload(SmsDeliver(SERVER, ud).to_bytes(), Address("4477"))
        apdu = download.to_apdu(cla)
        if le is not None:
            apdu = CommandApdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data, le)
        response = exchange(card, apdu)
        sws.append(response.sw)
        if response.sw >> 8 in (0x61, 0x9F):
            get = CommandApdu(0x00 if cla == 0x80 else 0xA0, 0xC0, 0, 0, le=response.sw & 0xFF or 256)
            fetched = exchange(card, get)
            assert fetched.sw == 0x9000
            por_ud = fetched.data
        elif response.sw >> 8 == 0x91:
            por_ud = _fetch_submits(card, cla, response.sw)
        else:
            por_ud = por_ud or response.data
    return Sent(sws, por_ud)


def _fetch_submits(card: Card, cla: int, sw: int) -> bytes:
    """FETCH each SEND SHORT MESSAGE (91 xx), answer it with TERMINAL RESPONSE; the SMS-SUBMITs' TP-UD,
    reassembled when the PoR took several SMs (then returned as ``02 71 00`` + the packet)."""
    reassembler = Reassembler()
    while sw >> 8 == 0x91:
        proactive = exchange(card, CommandApdu(cla, 0x12, 0, 0, le=sw & 0xFF)).data
        start = 3 if proactive[1] == 0x81 else 2
        assert proactive[0] == 0xD0 and proactive[start : start + 9] == bytes.fromhex("810301130082028183")
        tpdu_at = start + 9
        assert proactive[tpdu_at] == 0x8B
        tpdu_at += 1 if proactive[tpdu_at + 1] == 0x81 else 0
        submit = SmsSubmit.from_bytes(proactive[tpdu_at + 2 :])
        assert submit.destination == SERVER and (submit.pid, submit.dcs) == (0x7F, 0xF6)
        sw = exchange(card, CommandApdu(cla, 0x14, 0, 0, bytes.fromhex("810301130082028281830100"))).sw
        message = reassembler.feed(submit.user_data, "card")
        if message is not None:
            assert sw == 0x9000 and message.response
            return b"\x02\x71\x00" + message.packet
    raise AssertionError(f"the card stopped sending SMs with {sw:04X}")


def send(
    card: Card,
    apdus: list[CommandApdu] | bytes,
    counter: int,
    *,
    spi: Spi = SPI,
    tar: bytes = RFM,
    keyset: Scp80KeySet = KEYSET,
    kic: Kic = KIC,
    kid: Kid = KID,
) -> Response | None:
    data = apdus if isinstance(apdus, bytes) else encode_compact(apdus)
    packet = secure_command(data, spi=spi, kic=kic, kid=kid, tar=tar, counter=counter, keyset=keyset)
    sent = deliver(card, packet.to_bytes(), reference=counter & 0xFF)
    if not sent.por_ud:
        return None
    message = secured_message(sent.por_ud)
    assert message.response
    return unsecure_response(message.packet, spi=spi, kic=kic, kid=kid, keyset=keyset)


def apdu(text: str) -> CommandApdu:
    return CommandApdu.from_bytes(bytes.fromhex(text.replace(" ", "")))


SELECT_SPN = apdu("00A4080C04 7F20 6F46")
UPDATE_SPN = apdu("00D6000004 41424344")
READ_SPN = apdu("00B0000004")


def counter_of(card: Card, kvn: int = 1) -> int:
    keysets = card.state.ota["ota"]["keysets"]
    return int(next(k for k in keysets if k["kvn"] == kvn).get("counter", 0))


# --------------------------------------------------------------------------------------------- RFM and RAM


def test_rfm_update_then_read_binary_end_to_end() -> None:
    card, store = make_card()
    por = send(card, [SELECT_SPN, UPDATE_SPN], 1)
    assert por is not None
    assert (por.status, por.counter, por.authenticated) == (ResponseStatus.POR_OK, 1, True)
    assert CompactResponse.from_bytes(por.data) == CompactResponse(2, ResponseApdu(sw=0x9000))
    por = send(card, [SELECT_SPN, READ_SPN], 2)
    assert por is not None
    assert CompactResponse.from_bytes(por.data) == CompactResponse(2, ResponseApdu(b"ABCD", 0x9000))
    assert counter_of(card) == 2
    # Persisted with the state: a restarted card still has the file content and the counter.
    again = restart(store)
    assert counter_of(again) == 2
    por = send(again, [SELECT_SPN, READ_SPN], 3)
    assert por is not None and CompactResponse.from_bytes(por.data).last.data == b"ABCD"


def test_rfm_stops_at_the_first_error_and_reports_it() -> None:
    card, _ = make_card()
    por = send(card, [apdu("00A4000C02 6F3A"), UPDATE_SPN, READ_SPN], 1)
    assert por is not None and por.status is ResponseStatus.POR_OK
    assert CompactResponse.from_bytes(por.data) == CompactResponse(1, ResponseApdu(sw=0x6A82))


def test_rfm_select_with_fcp_then_get_response_in_the_script() -> None:
    card, _ = make_card()
    por = send(card, [apdu("00A40004 02 7F10"), apdu("00C0000000")], 1)
    assert por is not None
    response = CompactResponse.from_bytes(por.data)
    assert response.executed == 2 and response.last.sw == 0x9000
    assert response.last.data.startswith(b"\x62") and b"\x83\x02\x7f\x10" in response.last.data


def test_rfm_expanded_format() -> None:
    card, _ = make_card()
    script = CommandScript.of([SELECT_SPN, UPDATE_SPN, READ_SPN])
    por = send(card, script.to_bytes(), 1)
    assert por is not None
    response = ResponseScript.from_bytes(por.data)
    assert response.executed == 3
    assert [r.sw for r in response.responses] == [0x9000, 0x9000, 0x9000]
    assert response.responses[-1].data == b"ABCD"
    indefinite = CommandScript.of([SELECT_SPN, READ_SPN], definite=False)
    por = send(card, indefinite.to_bytes(), 2)
    assert por is not None
    response = ResponseScript.from_bytes(por.data)
    assert not response.definite and response.responses[-1].data == b"ABCD"
    por = send(card, b"\xaa\x03\x99\x01\x00", 3)  # unknown tag: a bad format TLV, nothing executed
    assert por is not None and ResponseScript.from_bytes(por.data).executed == 0


def test_ram_install_get_status_delete_through_the_isd() -> None:
    card, _ = make_card()
    load_file, module, instance = (
        bytes.fromhex(x) for x in ("F0010203040500", "F001020304050001", "F00102030405000101")
    )
    card.state.load_files.append(LoadFile(load_file, ISD, [module]))
    card.save()
    install = install_for_install_command(InstallForInstall(load_file, module, instance))
    por = send(card, [install], 1, tar=RAM)
    assert por is not None and por.status is ResponseStatus.POR_OK
    assert CompactResponse.from_bytes(por.data).last.sw == 0x9000
    assert card.state.application(instance) is not None
    status = get_status_command(StatusScope.APPLICATIONS)
    por = send(card, [status], 2, tar=RAM)
    assert por is not None
    last = CompactResponse.from_bytes(por.data).last
    assert last.sw == 0x9000 and instance in last.data
    por = send(card, [delete_command(instance)], 3, tar=RAM)
    assert por is not None and CompactResponse.from_bytes(por.data).last.sw == 0x9000
    assert card.state.application(instance) is None
    # PUT KEY needs a secure channel session's keys: refused, and nothing changes.
    por = send(card, [apdu("80D8018100")], 4, tar=RAM)
    assert por is not None and CompactResponse.from_bytes(por.data).last.sw == 0x6D00


def test_ram_failing_command_is_undone() -> None:
    card, _ = make_card()
    por = send(card, [delete_command(bytes.fromhex("F0FFFFFFFF01"))], 1, tar=RAM)
    assert por is not None and CompactResponse.from_bytes(por.data).last.sw == 0x6A88
    assert counter_of(card) == 1  # the counter moved: the packet itself was good


# --------------------------------------------------------------------------------------------- security checks


def test_replayed_and_old_counters() -> None:
    card, _ = make_card()
    assert send(card, [SELECT_SPN, UPDATE_SPN], 5) is not None
    changed = [SELECT_SPN, apdu("00D6000004 58585858")]
    for old in (5, 4, 1):
        por = send(card, changed, old)
        assert por is not None
        # The CC verified: the error PoR may be (and is) secured; nothing ran, the counter did not move.
        assert (por.status, por.authenticated, por.counter, por.data) == (ResponseStatus.CNTR_LOW, True, 0, b"")
    assert counter_of(card) == 5
    por = send(card, [SELECT_SPN, READ_SPN], 6)
    assert por is not None and CompactResponse.from_bytes(por.data).last.data == b"ABCD"
    # Counter mode "one higher": a jump is 03; PoR on error only: a good packet gets no PoR, no execution on 03.
    one = Spi(counter_mode=CounterMode.ONE_HIGHER, por=PorMode.ON_ERROR)
    por = send(card, changed, 9, spi=one)
    assert por is not None and por.status is ResponseStatus.CNTR_HIGH
    assert send(card, [SELECT_SPN, UPDATE_SPN], 7, spi=one) is None
    assert counter_of(card) == 7
    # No PoR at all: a replay is dropped silently, and still not executed.
    silent = Spi(counter_mode=CounterMode.HIGHER, por=PorMode.NONE)
    assert send(card, changed, 7, spi=silent) is None
    por = send(card, [SELECT_SPN, READ_SPN], 8)
    assert por is not None and CompactResponse.from_bytes(por.data).last.data == b"ABCD"


def test_counters_survive_a_restart() -> None:
    card, store = make_card()
    assert send(card, [SELECT_SPN], 10) is not None
    again = restart(store)
    por = send(again, [SELECT_SPN], 10)
    assert por is not None and por.status is ResponseStatus.CNTR_LOW
    por = send(again, [SELECT_SPN], 11)
    assert por is not None and por.status is ResponseStatus.POR_OK


def test_tampered_cc_gets_an_unsecured_01_and_changes_nothing() -> None:
    card, store = make_card()
    forged = Scp80KeySet(AES_KIC, bytes(16), cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
    por = send(card, [SELECT_SPN, UPDATE_SPN], 3, keyset=forged)
    assert por is not None
    assert (por.status, por.authenticated, por.counter, por.check, por.data) == (
        ResponseStatus.RC_CC_DS_FAILED,
        False,
        0,
        b"",
        b"",
    )
    # A bit flipped in the ciphered part of a genuine packet: 01 as well (the CC covers the deciphered text).
    packet = secure_command(
        encode_compact([SELECT_SPN, UPDATE_SPN]), spi=SPI, kic=KIC, kid=KID, tar=RFM, counter=3, keyset=KEYSET
    ).to_bytes()
    tampered = packet[:-1] + bytes((packet[-1] ^ 1,))
    sent = deliver(card, tampered)
    raw = secured_message(sent.por_ud).packet
    assert raw[2] == 0x0A  # RHL 10: no RC/CC/DS, unciphered
    por = unsecure_response(raw, spi=SPI, kic=KIC, kid=KID, keyset=KEYSET)
    assert por.status is ResponseStatus.RC_CC_DS_FAILED
    assert counter_of(card) == 0
    assert store.commits == 1  # nothing was committed


def test_unknown_tar() -> None:
    card, _ = make_card()
    por = send(card, [SELECT_SPN], 1, tar=bytes.fromhex("B00099"))
    assert por is not None and (por.status, por.authenticated) == (ResponseStatus.TAR_UNKNOWN, False)
    assert counter_of(card) == 0


def test_below_the_minimum_security_level() -> None:
    card, _ = make_card()
    # Default MSL 16: CC + ciphering + higher counter. A MACed, unciphered packet verifies but is refused.
    clear = Spi(counter_mode=CounterMode.HIGHER, ciphered=False)
    por = send(card, [SELECT_SPN, UPDATE_SPN], 1, spi=clear)
    assert por is not None and (por.status, por.authenticated) == (ResponseStatus.INSUFFICIENT_SECURITY_LEVEL, True)
    assert counter_of(card) == 0
    # No security at all (the Simjacker SPI): 0A, never a secured PoR.
    none = Spi(Integrity.NONE, False, CounterMode.NO_COUNTER, por_integrity=Integrity.NONE, por_ciphered=False)
    por = send(card, [SELECT_SPN, UPDATE_SPN], 0, spi=none)
    assert por is not None and por.status is ResponseStatus.INSUFFICIENT_SECURITY_LEVEL
    por = send(card, [SELECT_SPN, READ_SPN], 1)
    assert por is not None and CompactResponse.from_bytes(por.data).last.data == b"\xff" * 4  # nothing was written


def test_msl_from_the_profile_may_allow_an_unsecured_tar() -> None:
    card, _ = make_card('\n[[ota.tars]]\ntar = "B00001"\nmsl = "00"\n')
    none = Spi(Integrity.NONE, False, CounterMode.NO_COUNTER, por_integrity=Integrity.NONE, por_ciphered=False)
    por = send(card, [SELECT_SPN, UPDATE_SPN], 0, spi=none, kic=Kic.from_bytes(b"\x00"), kid=Kid.from_bytes(b"\x00"))
    assert por is not None and por.status is ResponseStatus.POR_OK
    assert CompactResponse.from_bytes(por.data) == CompactResponse(2, ResponseApdu(sw=0x9000))


def test_single_des_and_unknown_key_sets_are_refused() -> None:
    des = Scp80KeySet(
        bytes.fromhex("0102030405060708"),
        bytes.fromhex("0807060504030201"),
        cipher=CipherAlgorithm.DES_CBC,
        mac=MacAlgorithm.DES_CBC_MAC,
        allow_single_des=True,
    )
    des_kic, des_kid = Kic.for_cipher(CipherAlgorithm.DES_CBC, kvn=4), Kid.for_mac(MacAlgorithm.DES_CBC_MAC, kvn=4)
    card, _ = make_card()
    por = send(card, [SELECT_SPN], 1, keyset=des, kic=des_kic, kid=des_kid)
    assert por is not None and (por.status, por.authenticated) == (ResponseStatus.UNIDENTIFIED_SECURITY_ERROR, False)
    # Allowed for this TAR by the profile: accepted.
    allowed, _ = make_card('\n[[ota.tars]]\ntar = "B00001"\nallow_single_des = true\n')
    por = send(allowed, [SELECT_SPN], 1, keyset=des, kic=des_kic, kid=des_kid)
    assert por is not None and (por.status, por.authenticated) == (ResponseStatus.POR_OK, True)
    # A KVN with no key set: 06. A KID naming 3DES for the AES key set (a downgrade): 06.
    por = send(card, [SELECT_SPN], 1, kic=Kic.for_cipher(CipherAlgorithm.AES_CBC, kvn=9), kid=KID)
    assert por is not None and por.status is ResponseStatus.UNIDENTIFIED_SECURITY_ERROR
    downgraded = Scp80KeySet(AES_KIC, AES_KID, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.DES3_2KEY_CBC_MAC)
    por = send(card, [SELECT_SPN], 1, kid=Kid.for_mac(MacAlgorithm.DES3_2KEY_CBC_MAC, kvn=1), keyset=downgraded)
    assert por is not None and por.status is ResponseStatus.UNIDENTIFIED_SECURITY_ERROR
    assert counter_of(card) == 0


def test_truncated_and_oversized_packets() -> None:
    card, _ = make_card()
    packet = secure_command(
        encode_compact([SELECT_SPN]), spi=SPI, kic=KIC, kid=KID, tar=RFM, counter=1, keyset=KEYSET
    ).to_bytes()
    # A packet whose CPL says more than arrived: no TAR can be trusted, no PoR; the ENVELOPE is refused.
    assert deliver(card, packet[:-3]).sws == [0x6A80]
    assert deliver(card, packet[:8]).sws == [0x6A80]
    # One byte more in the ciphered part (CPL adjusted): not a whole number of blocks, status 05, unsecured.
    longer = (len(packet) - 1).to_bytes(2, "big") + packet[2:] + b"\x00"
    sent = deliver(card, longer)
    por = unsecure_response(secured_message(sent.por_ud).packet, spi=SPI, kic=KIC, kid=KID, keyset=KEYSET)
    assert (por.status, por.authenticated) == (ResponseStatus.CIPHERING_ERROR, False)
    # Not an OTA message at all (TP-PID 00): refused.
    (ud,) = split_packet(packet)
    plain = SmsPpDownload(SmsDeliver(SERVER, ud, pid=0x00).to_bytes()).to_apdu()
    assert exchange(card, plain).sw == 0x6A80
    assert exchange(card, CommandApdu(0x80, 0xC2, 0, 0, b"\xd1\x00")).sw == 0x6A80
    assert exchange(card, CommandApdu(0x80, 0xC2, 1, 0, b"")).sw == 0x6A86
    assert counter_of(card) == 0
    # A script too big for one SM travels concatenated; the card reassembles it.
    big = [SELECT_SPN] + [apdu("00D6000004 41424344")] * 30 + [READ_SPN]
    big_por = send(card, big, 1)
    assert big_por is not None
    assert CompactResponse.from_bytes(big_por.data) == CompactResponse(32, ResponseApdu(b"ABCD"))


def test_por_transports() -> None:
    card, _ = make_card()
    packet = secure_command(
        encode_compact([SELECT_SPN, READ_SPN]), spi=SPI, kic=KIC, kid=KID, tar=RFM, counter=1, keyset=KEYSET
    )
    sent = deliver(card, packet.to_bytes())
    assert sent.sws[0] >> 8 == 0x61  # UICC: 61 xx, then GET RESPONSE
    # GSM class: 9F xx, then A0 C0.
    packet = secure_command(encode_compact([SELECT_SPN]), spi=SPI, kic=KIC, kid=KID, tar=RFM, counter=2, keyset=KEYSET)
    sent = deliver(card, packet.to_bytes(), cla=0xA0)
    assert sent.sws[0] >> 8 == 0x9F and secured_message(sent.por_ud).response
    # Le present (T=1 style): the data with 9000.
    packet = secure_command(encode_compact([SELECT_SPN]), spi=SPI, kic=KIC, kid=KID, tar=RFM, counter=3, keyset=KEYSET)
    sent = deliver(card, packet.to_bytes(), le=256)
    assert sent.sws == [0x9000] and sent.por_ud
    # SPI2 asks for an SMS-SUBMIT: 91 xx, FETCH gives SEND SHORT MESSAGE, TERMINAL RESPONSE closes it.
    submit = Spi(counter_mode=CounterMode.HIGHER, por_transport=PorTransport.SUBMIT)
    por = send(card, [SELECT_SPN, READ_SPN], 4, spi=submit)
    assert por is not None and (por.status, por.authenticated) == (ResponseStatus.POR_OK, True)
    assert exchange(card, CommandApdu(0x80, 0x12, 0, 0, le=16)).sw == 0x6985  # nothing pending any more


def test_por_of_an_error_is_never_secured_with_the_failing_key() -> None:
    card, _ = make_card()
    forged = Scp80KeySet(AES_KIC, bytes(16), cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
    packet = secure_command(encode_compact([SELECT_SPN]), spi=SPI, kic=KIC, kid=KID, tar=RFM, counter=1, keyset=forged)
    sent = deliver(card, packet.to_bytes())
    raw = secured_message(sent.por_ud).packet
    # RPL, RHL 0A, TAR, counter 0, PCNTR 0, status 01: readable by anyone, no CC, no ciphering.
    assert raw == bytes.fromhex("000B0AB00001") + bytes(6) + b"\x01"
    with pytest.raises(IntegrityError):
        unsecure_response(raw[:-1] + b"\x00", spi=SPI, kic=KIC, kid=KID, keyset=KEYSET)


# --------------------------------------------------------------------------------------------- independent vectors


_PYSIM_KEYS = {"aes_cbc": "aes-cbc", "triple_des_cbc2": "3des-2key", "aes_cmac": "aes-cmac"}


@pytest.mark.parametrize(
    "case",
    [c for c in cases("ota/pysim.json", "ota-sms-cmd-encode") if c.expected["encoded_cmd"].startswith("00")],
    ids=lambda c: c.source,
)
def test_card_accepts_pysim_command_packets(case: VectorCase) -> None:
    """A command packet built by pySim (osmocom) for a real card: the emulator, given the same key set, TAR and
    an MSL that allows the vector's SPI, verifies, deciphers and runs it (SELECT MF), and answers a PoR OK.
    (The conformant packets only: those starting with a CPL.)"""
    ks = case.inputs["keyset"]
    kvn = ks["kic_idx"]
    profile = f"""
[[ota.keysets]]
kvn = {kvn}
kic = "{ks["kic"]}"
kic_algorithm = "{_PYSIM_KEYS[ks["algo_crypt"]]}"
kid = "{ks["kid"]}"
kid_algorithm = "{_PYSIM_KEYS[ks["algo_auth"]]}"

[[ota.tars]]
tar = "{case.inputs["tar"]}"
msl = "{case.inputs["spi_bytes"][:2]}"
"""
    state = load_profile(profile_text() + profile)
    store = MemoryStore()
    store.commit(state)
    card = Card(state, store, random=counter_random())
    packet = case.hex_out("encoded_cmd")
    header = CommandPacket.from_bytes(packet)
    sent = deliver(card, packet)
    keyset = Scp80KeySet(bytes.fromhex(ks["kic"]), bytes.fromhex(ks["kid"]))
    raw = secured_message(sent.por_ud).packet
    por = unsecure_response(raw, spi=header.spi, kic=header.kic, kid=header.kid, keyset=keyset)
    assert (por.status, por.tar) == (ResponseStatus.POR_OK, header.tar)
    assert por.authenticated is (header.spi.por_integrity is Integrity.CC)
    response = CompactResponse.from_bytes(por.data)
    assert response.executed == 1 and response.last.sw >> 8 in (0x61, 0x90)


# --------------------------------------------------------------------------------------------- application TARs

ECHO = bytes.fromhex("A0000000871002FF49FF0589")
APP_TAR = bytes.fromhex("C00001")
# EA { 80: priority 01, timers 00, menu text 10, 0 menu entries, channels 00, MSL (1) 12, TARs (3) C00001,
# services 00 } (ETSI TS 102 226 8.2.1.3.2.2)
TOOLKIT = bytes.fromhex("EA0E800C01001000000112 03C00001 00".replace(" ", ""))


def test_application_reached_by_the_tar_of_its_install_parameters() -> None:
    card, store = make_card()
    echo = card.state.application(ECHO)
    assert echo is not None
    echo.system_parameters = TOOLKIT[2:]  # the value of EA, as INSTALL keeps it
    card.save()
    por = send(card, [apdu("8010000003 414243")], 1, tar=APP_TAR)
    assert por is not None and por.status is ResponseStatus.POR_OK
    assert CompactResponse.from_bytes(por.data) == CompactResponse(1, ResponseApdu(b"ABC"))
    # Its own MSL (12: CC and a higher counter) lets an unciphered packet in, where the default MSL would not.
    por = send(card, [apdu("8010000001 44")], 2, tar=APP_TAR, spi=Spi(counter_mode=CounterMode.HIGHER, ciphered=False))
    assert por is not None and CompactResponse.from_bytes(por.data).last.data == b"D"
    # Counter mode "no counter" is below it: 0A.
    por = send(card, [apdu("8010000001 45")], 3, tar=APP_TAR, spi=Spi(counter_mode=CounterMode.NO_COUNTER))
    assert por is not None and por.status is ResponseStatus.INSUFFICIENT_SECURITY_LEVEL
    assert restart(store).state.application(ECHO).system_parameters == TOOLKIT[2:]  # type: ignore[union-attr]


def test_install_through_ram_keeps_the_toolkit_tar() -> None:
    from gpchannel.card.applets_examples import EXAMPLES_PACKAGE_AID

    card, _ = make_card()
    module, instance = EXAMPLES_PACKAGE_AID + b"\x01", EXAMPLES_PACKAGE_AID + b"\x01\x77"
    card.state.load_files.append(LoadFile(EXAMPLES_PACKAGE_AID, ISD, [module]))
    card.save()
    parameters = bytes.fromhex("C900") + TOOLKIT
    install = install_for_install_command(
        InstallForInstall(EXAMPLES_PACKAGE_AID, module, instance, parameters=parameters)
    )
    por = send(card, [install], 1, tar=RAM)
    assert por is not None and CompactResponse.from_bytes(por.data).last.sw == 0x9000
    app = card.state.application(instance)
    assert app is not None and app.system_parameters == TOOLKIT[2:]
    # The secure-store applet now answers its TAR itself: it wants a GP secure channel session, so 6982.
    por = send(card, [apdu("80DA000003 014142")], 2, tar=APP_TAR)
    assert por is not None and CompactResponse.from_bytes(por.data) == CompactResponse(1, ResponseApdu(sw=0x6982))


def test_long_por_by_deliver_report_and_by_several_sms_submits() -> None:
    card, _ = make_card()
    record = bytes(range(176))
    script = [apdu("00A4080C04 7F10 6F3C"), apdu("00DC0104B0" + record.hex()), apdu("00B2010400")]
    por = send(card, script, 1)
    assert por is not None and CompactResponse.from_bytes(por.data) == CompactResponse(3, ResponseApdu(record))
    submit = Spi(counter_mode=CounterMode.HIGHER, por_transport=PorTransport.SUBMIT)
    por = send(card, [script[0], script[2]], 2, spi=submit)
    assert por is not None and por.authenticated
    assert CompactResponse.from_bytes(por.data) == CompactResponse(2, ResponseApdu(record))
    assert exchange(card, CommandApdu(0x80, 0x14, 0, 0, b"\x81\x03\x01\x13\x00")).sw == 0x6985


@pytest.mark.parametrize("cla", [0x80, 0xA0])
@pytest.mark.parametrize("transport", list(PorTransport))
def test_effects_persist_whatever_the_por_path(cla: int, transport: PorTransport) -> None:
    """91xx (SEND SHORT MESSAGE pending) and 9Fxx (GSM) are normal endings: the counter and the file written
    are committed with them, as with 61xx."""
    card, store = make_card()
    spi = Spi(counter_mode=CounterMode.HIGHER, por_transport=transport)
    packet = secure_command(
        encode_compact([SELECT_SPN, UPDATE_SPN]), spi=spi, kic=KIC, kid=KID, tar=RFM, counter=1, keyset=KEYSET
    )
    sent = deliver(card, packet.to_bytes(), cla=cla)
    expected_sw1 = 0x91 if transport is PorTransport.SUBMIT else {0x80: 0x61, 0xA0: 0x9F}[cla]
    assert sent.por_ud and sent.sws[0] >> 8 == expected_sw1
    again = restart(store)
    assert counter_of(again) == 1
    por = send(again, [SELECT_SPN, READ_SPN], 2)
    assert por is not None and CompactResponse.from_bytes(por.data).last.data == b"ABCD"


def test_an_undone_remote_apdu_leaves_no_stale_applet_behind() -> None:
    """The echo applet is selected on the basic channel; an OTA script through its TAR fails (6F00) and is
    undone. The applet selected afterwards works on the live state: its command count is persisted."""
    card, store = make_card()
    echo = card.state.application(ECHO)
    assert echo is not None
    echo.system_parameters = TOOLKIT[2:]
    card.save()
    select = CommandApdu(0x00, 0xA4, 0x04, 0x00, ECHO, le=256)
    assert exchange(card, select).sw == 0x9000
    por = send(card, [apdu("8010000001 41"), apdu("806F000000")], 1, tar=APP_TAR)
    assert por is not None and CompactResponse.from_bytes(por.data) == CompactResponse(2, ResponseApdu(sw=0x6F00))
    assert exchange(card, CommandApdu(0x80, 0x10, 0, 0, b"Z")).data == b"Z"
    again = restart(store).state.application(ECHO)
    assert again is not None and again.data["count"] == 2  # one through OTA, one through the channel


# --------------------------------------------------------------------------------------------- fuzz

_CARD_AND_STORE = make_card()


@given(st.binary(max_size=150), st.booleans())
def test_any_sms_gets_a_status_and_changes_nothing(body: bytes, as_command: bool) -> None:
    """Whatever the TP-UD (a command-packet UDH before random bytes, or random bytes): the ENVELOPE gets 9000,
    61xx (an unsecured error PoR) or 6A80; no counter moves and nothing is committed."""
    card, store = _CARD_AND_STORE
    commits = store.commits
    ud = (b"\x02\x70\x00" + body) if as_command else body
    try:
        deliver_tpdu = SmsDeliver(SERVER, ud, udhi=as_command).to_bytes()
    except ValueError:
        return
    response = exchange(card, SmsPpDownload(deliver_tpdu).to_apdu())
    assert response.sw in (0x9000, 0x6A80) or response.sw >> 8 == 0x61
    if response.sw >> 8 == 0x61:
        por_ud = exchange(card, CommandApdu(0x00, 0xC0, 0, 0, le=response.sw & 0xFF)).data
        raw = secured_message(por_ud).packet
        assert raw[2] == 0x0A and raw[11] != 0  # RHL 10 (no CC), an error status
    assert counter_of(card) == 0 and store.commits == commits
    card.ota.reassembler = Reassembler()  # random concatenation segments must not pile up between examples


def test_ram_load_spans_several_packets_then_install() -> None:
    from gpchannel.gp.cap import CapFile
    from gpchannel.gp.install import InstallForLoad
    from gpchannel.host.commands import install_for_load_command, load_commands
    from tests.gp.test_cap import build_cap, components

    card, _ = make_card()
    cap = CapFile.from_bytes(build_cap(components()))
    loads = load_commands(cap.load_file(), 100)
    assert len(loads) >= 2
    first = [install_for_load_command(InstallForLoad(cap.package_aid)), loads[0]]
    por = send(card, first, 1, tar=RAM)
    assert por is not None
    response = CompactResponse.from_bytes(por.data)
    assert (response.executed, response.last.sw) == (2, 0x9000)
    for n, block in enumerate(loads[1:], start=2):
        por = send(card, [block], n, tar=RAM)
        assert por is not None and CompactResponse.from_bytes(por.data).last.sw == 0x9000
    loaded = card.state.load_file(cap.package_aid)
    assert loaded is not None and cap.applet_aids[0] in loaded.modules
    instance = cap.applet_aids[0] + b"\x01"
    install = install_for_install_command(InstallForInstall(cap.package_aid, cap.applet_aids[0], instance))
    por = send(card, [install], len(loads) + 1, tar=RAM)
    assert por is not None and CompactResponse.from_bytes(por.data).last.sw == 0x9000
    assert card.state.application(instance) is not None
    # A LOAD block with no INSTALL [for load] before it is refused.
    fresh, _ = make_card()
    por = send(fresh, [loads[0]], 1, tar=RAM)
    assert por is not None and CompactResponse.from_bytes(por.data).last.sw in (0x6985, 0x6A86)
