"""SCP80 secured packets against gsm0348 and pySim vectors (tests/vectors/ota/SOURCES.md), plus properties."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gpchannel.errors import (
    DecodeError,
    GPChannelError,
    IntegrityError,
    ReplayError,
    SecurityError,
    UnsupportedError,
)
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.ota.packet import SMS_RESPONSE_UDH, CommandPacket, PacketLayout, ResponsePacket
from gpchannel.ota.scp80 import (
    MAX_COUNTER,
    Response,
    ResponseStatus,
    check_counter,
    counter_after,
    error_response,
    may_secure_por,
    por_status,
    por_wanted,
    secure_command,
    secure_response,
    unsecure_command,
    unsecure_response,
)
from gpchannel.ota.spi import (
    AlgorithmFamily,
    CipherAlgorithm,
    CounterMode,
    Integrity,
    Kic,
    Kid,
    MacAlgorithm,
    PorMode,
    PorTransport,
    RcAlgorithm,
    Spi,
)
from tests.ota._ota_cases import gsm0348_args, pysim_keyset
from tests.vectors import VectorCase, params

GSM = "ota/gsm0348.json"
PYSIM = "ota/pysim.json"

# --------------------------------------------------------------------------------------------- vectors: gsm0348


@pytest.mark.parametrize("case", params(GSM, "scp80_command_packet"))
def test_gsm0348_command_packet(case: VectorCase) -> None:
    args = gsm0348_args(case)
    data, tar, counter = case.hex_in("data"), case.hex_in("tar"), int(case.inputs["counter"], 16)
    packet = secure_command(data, tar=tar, counter=counter, **args)
    expected = case.hex_out("packet_hex")
    assert packet.to_bytes() == expected
    assert CommandPacket.from_bytes(expected) == packet
    cmd = unsecure_command(expected, args["keyset"], stored_counter=None)
    assert (cmd.data, cmd.counter, cmd.tar) == (data, counter, tar)


_MODE_BYTES = {"DES_CBC": 0x01, "TRIPLE_DES_CBC_2_KEYS": 0x05}
_STATUS = {"POR_OK": ResponseStatus.POR_OK}


@pytest.mark.parametrize("case", params(GSM, "scp80_response_packet_decode"))
def test_gsm0348_response_packet(case: VectorCase) -> None:
    args = gsm0348_args(case, _MODE_BYTES[case.inputs["kic_mode"]], _MODE_BYTES[case.inputs["kid_mode"]])
    raw = case.hex_in("response_packet_hex")
    por = unsecure_response(raw, **args)
    assert por.tar == case.hex_out("tar")
    assert por.counter == int(case.expected["counter"], 16)
    assert por.pcntr == int(case.expected["padding_counter"])
    assert por.status is _STATUS[case.expected["status"]]
    assert por.data == case.hex_out("data")
    assert por.authenticated is (args["spi"].por_integrity is Integrity.CC)
    # The sending side reproduces it byte for byte (the ciphered, CC'd one included).
    rebuilt = secure_response(por.data, status=por.status, tar=por.tar, counter=por.counter, **args)
    assert rebuilt.to_bytes() == raw


# --------------------------------------------------------------------------------------------- vectors: pySim


@pytest.mark.parametrize("case", params(PYSIM, "ota-sms-cmd-encode"))
def test_pysim_command_encode(case: VectorCase) -> None:
    spi, kic, kid, keyset = pysim_keyset(case)
    apdu, tar = case.hex_in("apdu"), case.hex_in("tar")
    packet = secure_command(apdu, spi=spi, kic=kic, kid=kid, tar=tar, counter=0, keyset=keyset).to_bytes()
    expected = case.hex_out("encoded_cmd")
    if "QUIRK" in case.notes:
        # pySim leaves out the 2-byte CPL of unciphered packets; the CC still covers it (see the notes).
        assert packet[2:] == expected
        assert int.from_bytes(packet[:2], "big") == len(expected)
    else:
        assert packet == expected
    cmd = unsecure_command(packet, keyset, stored_counter=None)
    assert (cmd.data, cmd.tar, cmd.spi) == (apdu, tar, spi)


@pytest.mark.parametrize("case", params(PYSIM, "ota-sms-por-decode"))
def test_pysim_por_decode(case: VectorCase) -> None:
    spi, kic, kid, keyset = pysim_keyset(case)
    raw = case.hex_in("encoded_resp")
    assert raw.startswith(SMS_RESPONSE_UDH)
    por = unsecure_response(raw[3:], spi=spi, kic=kic, kid=kid, keyset=keyset)
    assert por.status is ResponseStatus.POR_OK
    # Compact remote APDU response: executed commands, last SW, last data (TS 102 226 5.1.2).
    expected = (
        bytes((case.expected["number_of_commands"],))
        + bytes.fromhex(case.expected["last_status_word"])
        + bytes.fromhex(case.expected["last_response_data"])
    )
    assert por.data == expected
    rebuilt = secure_response(
        por.data, status=por.status, tar=por.tar, counter=por.counter, spi=spi, kic=kic, kid=kid, keyset=keyset
    )
    assert SMS_RESPONSE_UDH + rebuilt.to_bytes() == raw


@pytest.mark.parametrize("case", params(PYSIM, "ota-sms-por-decode-error"))
def test_pysim_por_bad_cc(case: VectorCase) -> None:
    spi, kic, kid, keyset = pysim_keyset(case)
    with pytest.raises(IntegrityError):
        unsecure_response(case.hex_in("encoded_resp")[3:], spi=spi, kic=kic, kid=kid, keyset=keyset)


@pytest.mark.parametrize("case", params(PYSIM, "ota-sms-cmd-encode+por-decode"))
def test_pysim_real_card_session(case: VectorCase) -> None:
    spi, kic, kid, keyset = pysim_keyset(case)
    script, tar = case.hex_in("apdu_script"), case.hex_in("tar")
    packet = secure_command(script, spi=spi, kic=kic, kid=kid, tar=tar, counter=0, keyset=keyset)
    assert b"\x02\x70\x00" + packet.to_bytes() == case.hex_out("sms_user_data_cmd")
    por = unsecure_response(case.hex_in("encoded_resp")[3:], spi=spi, kic=kic, kid=kid, keyset=keyset)
    assert por.status is ResponseStatus.POR_OK
    assert por.data[0] == case.expected["number_of_commands"]
    assert por.data[1:3] == bytes.fromhex(case.expected["last_status_word"])
    assert por.data[3:] == bytes.fromhex(case.expected["last_response_data"])


# --------------------------------------------------------------------------------------------- properties

_CIPHER_KEYS = {
    CipherAlgorithm.DES_CBC: 8,
    CipherAlgorithm.DES3_2KEY_CBC: 16,
    CipherAlgorithm.DES3_3KEY_CBC: 24,
    CipherAlgorithm.DES_ECB: 8,
    CipherAlgorithm.AES_CBC: 16,
}
_MAC_KEYS = {
    MacAlgorithm.DES_CBC_MAC: 8,
    MacAlgorithm.DES3_2KEY_CBC_MAC: 16,
    MacAlgorithm.DES3_3KEY_CBC_MAC: 24,
    MacAlgorithm.AES_CMAC: 32,
}


def _key(draw: st.DrawFn, size: int) -> bytes:
    return draw(st.binary(min_size=size, max_size=size))


@st.composite
def setups(draw: st.DrawFn) -> tuple[Spi, Kic, Kid, Scp80KeySet]:
    """Every cipher (the implicit 3DES-ECB included) with every CC or RC (the implicit XOR4/XOR8 included)."""
    spi = Spi(
        integrity=draw(st.sampled_from([Integrity.NONE, Integrity.RC, Integrity.CC])),
        ciphered=draw(st.booleans()),
        counter_mode=draw(st.sampled_from(CounterMode)),
        por=draw(st.sampled_from(PorMode)),
        por_integrity=draw(st.sampled_from([Integrity.NONE, Integrity.RC, Integrity.CC])),
        por_ciphered=draw(st.booleans()),
        por_transport=draw(st.sampled_from(PorTransport)),
    )
    if Integrity.RC in (spi.integrity, spi.por_integrity) and Integrity.CC in (spi.integrity, spi.por_integrity):
        spi = dataclasses.replace(spi, por_integrity=spi.integrity)  # one KID serves both directions
    kvn = draw(st.integers(0, 15))
    cipher = draw(st.sampled_from([*sorted(_CIPHER_KEYS, key=lambda c: c.value), CipherAlgorithm.DES3_ECB]))
    implicit_cipher = cipher is CipherAlgorithm.DES3_ECB
    kic = (
        Kic(kvn, AlgorithmFamily.IMPLICIT, draw(st.integers(0, 3))) if implicit_cipher else Kic.for_cipher(cipher, kvn)
    )
    if cipher is CipherAlgorithm.AES_CBC:
        kic_key = _key(draw, draw(st.sampled_from([16, 24, 32])))
    else:
        kic_key = _key(draw, draw(st.sampled_from([16, 24])) if implicit_cipher else _CIPHER_KEYS[cipher])
    mac = draw(st.sampled_from(sorted(_MAC_KEYS, key=lambda m: m.value)))
    rc = draw(st.sampled_from(sorted(RcAlgorithm, key=lambda r: r.value)))
    implicit_rc = rc in (RcAlgorithm.XOR4, RcAlgorithm.XOR8)
    if Integrity.RC in (spi.integrity, spi.por_integrity):
        kid = Kid(kvn, AlgorithmFamily.IMPLICIT, 0) if implicit_rc else Kid.for_rc(rc, kvn)
    else:
        kid = Kid.for_mac(mac, kvn)
    kid_len = draw(st.sampled_from([16, 24, 32])) if mac is MacAlgorithm.AES_CMAC else _MAC_KEYS[mac]
    keyset = Scp80KeySet(
        kic_key=kic_key,
        kid_key=_key(draw, kid_len),
        cipher=CipherAlgorithm.DES3_ECB if implicit_cipher else None,
        rc=rc if implicit_rc else None,
        cmac_length=draw(st.sampled_from([4, 8])),
        allow_single_des=True,
    )
    return spi, kic, kid, keyset


transports = st.sampled_from(PacketLayout)


@given(setups(), st.binary(max_size=300), st.integers(0, MAX_COUNTER), st.binary(min_size=3, max_size=3), transports)
def test_command_round_trip(
    setup: tuple[Spi, Kic, Kid, Scp80KeySet], data: bytes, counter: int, tar: bytes, transport: PacketLayout
) -> None:
    spi, kic, kid, keyset = setup
    packet = secure_command(
        data, spi=spi, kic=kic, kid=kid, tar=tar, counter=counter, keyset=keyset, transport=transport
    )
    raw = packet.to_bytes()
    assert CommandPacket.from_bytes(raw, transport) == packet
    cmd = unsecure_command(raw, keyset, stored_counter=None, transport=transport)
    assert (cmd.data, cmd.counter, cmd.tar, cmd.spi, cmd.kic, cmd.kid) == (data, counter, tar, spi, kic, kid)
    if spi.ciphered:
        assert len(packet.secured) % (16 if kic.cipher is CipherAlgorithm.AES_CBC else 8) == 0
    assert len(cmd.check) == packet.check_length == (0 if spi.integrity is Integrity.NONE else len(cmd.check))
    assert packet.check_length in ((0,) if spi.integrity is Integrity.NONE else (2, 4, 8))


@given(
    setups(),
    st.binary(max_size=200),
    st.integers(0, MAX_COUNTER),
    st.sampled_from(ResponseStatus),
    transports,
)
def test_response_round_trip(
    setup: tuple[Spi, Kic, Kid, Scp80KeySet], data: bytes, counter: int, status: ResponseStatus, transport: PacketLayout
) -> None:
    spi, kic, kid, keyset = setup
    por = secure_response(
        data,
        status=status,
        tar=b"\xb0\x00\x10",
        counter=counter,
        spi=spi,
        kic=kic,
        kid=kid,
        keyset=keyset,
        transport=transport,
    )
    raw = por.to_bytes()
    assert ResponsePacket.from_bytes(raw, transport) == por
    back = unsecure_response(raw, spi=spi, kic=kic, kid=kid, keyset=keyset, transport=transport)
    assert (back.data, back.counter, back.status) == (data, counter, status)
    assert back.authenticated is (spi.por_integrity is Integrity.CC)


@given(setups(), st.binary(max_size=60), st.data())
def test_tampered_command_is_refused(
    setup: tuple[Spi, Kic, Kid, Scp80KeySet], data: bytes, draw: st.DataObject
) -> None:
    spi, kic, kid, keyset = setup
    assume(spi.integrity is not Integrity.NONE)
    raw = secure_command(data, spi=spi, kic=kic, kid=kid, tar=b"\x00\x00\x00", counter=5, keyset=keyset).to_bytes()
    # Any change after the header (CNTR, PCNTR, RC/CC, data, padding; ciphered or not) fails the RC/CC.
    index = draw.draw(st.integers(10, len(raw) - 1))
    flip = draw.draw(st.integers(1, 255))
    tampered = raw[:index] + bytes((raw[index] ^ flip,)) + raw[index + 1 :]
    with pytest.raises(IntegrityError):
        unsecure_command(tampered, keyset, stored_counter=None)


@given(setups(), st.binary(max_size=60), st.data())
def test_tampered_header_is_refused(setup: tuple[Spi, Kic, Kid, Scp80KeySet], data: bytes, draw: st.DataObject) -> None:
    spi, kic, kid, keyset = setup
    assume(spi.integrity is Integrity.CC)
    raw = secure_command(data, spi=spi, kic=kic, kid=kid, tar=b"\x00\x00\x00", counter=5, keyset=keyset).to_bytes()
    index = draw.draw(st.integers(0, 9))
    flip = draw.draw(st.integers(1, 255))
    tampered = raw[:index] + bytes((raw[index] ^ flip,)) + raw[index + 1 :]
    with pytest.raises((DecodeError, SecurityError, UnsupportedError)):
        unsecure_command(tampered, keyset, stored_counter=None)


@given(setups(), st.binary(max_size=40), st.data())
def test_tampered_response_is_refused(
    setup: tuple[Spi, Kic, Kid, Scp80KeySet], data: bytes, draw: st.DataObject
) -> None:
    spi, kic, kid, keyset = setup
    assume(spi.por_integrity is not Integrity.NONE)
    raw = secure_response(
        data, status=ResponseStatus.POR_OK, tar=b"\x00\x00\x00", counter=1, spi=spi, kic=kic, kid=kid, keyset=keyset
    ).to_bytes()
    index = draw.draw(st.integers(2, len(raw) - 1))
    tampered = raw[:index] + bytes((raw[index] ^ draw.draw(st.integers(1, 255)),)) + raw[index + 1 :]
    with pytest.raises((IntegrityError, DecodeError)):
        unsecure_response(tampered, spi=spi, kic=kic, kid=kid, keyset=keyset)


_FUZZ_KEYSET = Scp80KeySet(bytes(16), bytes(16))


@given(st.binary(max_size=80))
def test_fuzz_unsecure_raises_only_gpchannel_errors(raw: bytes) -> None:
    for call in (
        lambda: unsecure_command(raw, _FUZZ_KEYSET, stored_counter=3),
        lambda: unsecure_response(
            raw,
            spi=Spi(),
            kic=Kic.for_cipher(CipherAlgorithm.AES_CBC),
            kid=Kid.for_mac(MacAlgorithm.AES_CMAC),
            keyset=_FUZZ_KEYSET,
        ),
    ):
        try:
            call()
        except GPChannelError:
            pass


def _sample_packet(transport: PacketLayout = PacketLayout.SMS) -> tuple[bytes, Scp80KeySet]:
    keyset = Scp80KeySet(bytes(range(16)), bytes(range(16, 32)))
    packet = secure_command(
        b"\x80\xca\x00\x66\x00" * 3,
        spi=Spi(),
        kic=Kic.for_cipher(CipherAlgorithm.AES_CBC),
        kid=Kid.for_mac(MacAlgorithm.AES_CMAC),
        tar=b"\x00\x00\x00",
        counter=7,
        keyset=keyset,
        transport=transport,
    )
    return packet.to_bytes(), keyset


def test_ciphertext_not_whole_blocks_is_a_ciphering_error() -> None:
    raw, keyset = _sample_packet()
    short = (int.from_bytes(raw[:2], "big") - 1).to_bytes(2, "big") + raw[2:-1]
    with pytest.raises(DecodeError) as info:
        unsecure_command(short, keyset, stored_counter=None)
    assert por_status(info.value) is ResponseStatus.CIPHERING_ERROR


# --------------------------------------------------------------------------------------------- counters

_M = CounterMode


@pytest.mark.parametrize(
    ("mode", "received", "stored", "status"),
    [
        (_M.NO_COUNTER, 0, 9, None),
        (_M.NO_CHECK, 3, 9, None),
        (_M.HIGHER, 10, 9, None),
        (_M.HIGHER, 1000, 9, None),
        (_M.HIGHER, 9, 9, ResponseStatus.CNTR_LOW),
        (_M.HIGHER, 2, 9, ResponseStatus.CNTR_LOW),
        (_M.ONE_HIGHER, 10, 9, None),
        (_M.ONE_HIGHER, 9, 9, ResponseStatus.CNTR_LOW),
        (_M.ONE_HIGHER, 11, 9, ResponseStatus.CNTR_HIGH),
        (_M.HIGHER, MAX_COUNTER, MAX_COUNTER - 1, None),
        (_M.HIGHER, MAX_COUNTER, MAX_COUNTER, ResponseStatus.CNTR_BLOCKED),
        (_M.ONE_HIGHER, 0, MAX_COUNTER, ResponseStatus.CNTR_BLOCKED),
        (_M.NO_CHECK, 0, MAX_COUNTER, None),
    ],
)
def test_counter_policy(mode: CounterMode, received: int, stored: int, status: ResponseStatus | None) -> None:
    if status is None:
        check_counter(mode, received, stored)
        return
    with pytest.raises(ReplayError) as info:
        check_counter(mode, received, stored)
    assert info.value.status == status
    assert por_status(info.value) is status


def test_counter_after() -> None:
    assert counter_after(_M.HIGHER, 10, 9) == 10
    assert counter_after(_M.ONE_HIGHER, 10, 9) == 10
    assert counter_after(_M.NO_CHECK, 10, 9) == 9
    assert counter_after(_M.NO_COUNTER, 0, 9) == 9
    with pytest.raises(ValueError, match="5 bytes"):
        check_counter(_M.HIGHER, MAX_COUNTER + 1, 0)


@pytest.mark.parametrize("mode", list(CounterMode))
def test_replayed_packet_per_mode(mode: CounterMode) -> None:
    keyset = Scp80KeySet(bytes(range(16)), bytes(range(16, 32)))
    spi = Spi(counter_mode=mode)
    kic, kid = Kic.for_cipher(CipherAlgorithm.AES_CBC), Kid.for_mac(MacAlgorithm.AES_CMAC)

    def build(counter: int) -> bytes:
        return secure_command(
            b"\x00\xa4", spi=spi, kic=kic, kid=kid, tar=b"\xb0\x00\x10", counter=counter, keyset=keyset
        ).to_bytes()

    raw = build(5)
    first = unsecure_command(raw, keyset, stored_counter=4)
    stored = counter_after(mode, first.counter, 4)
    if mode in (CounterMode.HIGHER, CounterMode.ONE_HIGHER):
        with pytest.raises(ReplayError) as info:
            unsecure_command(raw, keyset, stored_counter=stored)
        assert info.value.status == ResponseStatus.CNTR_LOW
        skipped = build(7)
        if mode is CounterMode.ONE_HIGHER:
            with pytest.raises(ReplayError, match="more than one"):
                unsecure_command(skipped, keyset, stored_counter=stored)
        else:
            assert unsecure_command(skipped, keyset, stored_counter=stored).counter == 7
    else:
        assert unsecure_command(raw, keyset, stored_counter=stored).counter == 5  # no replay protection


# --------------------------------------------------------------------------------------------- key binding, PoR rules


def test_algorithm_downgrade_refused() -> None:
    keyset = Scp80KeySet(bytes(16), bytes(16), cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
    sender = Scp80KeySet(bytes(16), bytes(16))
    raw = secure_command(
        b"\x00",
        spi=Spi(),
        kic=Kic.for_cipher(CipherAlgorithm.DES3_2KEY_CBC),
        kid=Kid.for_mac(MacAlgorithm.DES3_2KEY_CBC_MAC),
        tar=b"\x00\x00\x00",
        counter=1,
        keyset=sender,
    ).to_bytes()
    with pytest.raises(UnsupportedError) as info:
        unsecure_command(raw, keyset, stored_counter=0)
    assert por_status(info.value) is ResponseStatus.UNIDENTIFIED_SECURITY_ERROR


def test_chl_inconsistent_with_spi() -> None:
    raw, keyset = _sample_packet()
    packet = CommandPacket.from_bytes(raw)
    lying = CommandPacket(
        Spi(integrity=Integrity.RC),
        packet.kic,
        Kid.for_rc(RcAlgorithm.CRC16),
        packet.tar,
        packet.check_length,
        packet.secured,
    )
    with pytest.raises(SecurityError, match="CHL"):
        unsecure_command(lying, keyset, stored_counter=None)


def test_error_por_for_a_bad_cc_is_unsecured() -> None:
    raw, keyset = _sample_packet()
    tampered = raw[:-1] + bytes((raw[-1] ^ 1,))
    packet = CommandPacket.from_bytes(tampered)
    with pytest.raises(IntegrityError) as info:
        unsecure_command(packet, keyset, stored_counter=0)
    status = por_status(info.value)
    assert status is ResponseStatus.RC_CC_DS_FAILED
    assert not may_secure_por(status)
    assert por_wanted(packet.spi, status)
    por = error_response(packet, status)
    assert por.to_bytes() == bytes.fromhex("000b0a00000000000000000001")

    # The server accepts it as an unauthenticated error report...
    def read(raw: bytes) -> Response:
        return unsecure_response(raw, spi=packet.spi, kic=packet.kic, kid=packet.kid, keyset=keyset)

    back = read(por.to_bytes())
    assert (back.status, back.authenticated, back.counter) == (ResponseStatus.RC_CC_DS_FAILED, False, 0)
    # ...but never an unsecured "PoR OK" where SPI2 asked for a CC.
    forged = error_response(packet, ResponseStatus.POR_OK)
    with pytest.raises(IntegrityError, match="unsecured"):
        read(forged.to_bytes())


def test_por_rules() -> None:
    assert may_secure_por(ResponseStatus.POR_OK)
    assert may_secure_por(ResponseStatus.CNTR_LOW)
    for status in (
        ResponseStatus.RC_CC_DS_FAILED,
        ResponseStatus.CIPHERING_ERROR,
        ResponseStatus.UNIDENTIFIED_SECURITY_ERROR,
        ResponseStatus.TAR_UNKNOWN,
    ):
        assert not may_secure_por(status)
    assert not por_wanted(Spi(por=PorMode.NONE), ResponseStatus.RC_CC_DS_FAILED)
    assert not por_wanted(Spi(por=PorMode.ON_ERROR), ResponseStatus.POR_OK)
    assert por_wanted(Spi(por=PorMode.ON_ERROR), ResponseStatus.CNTR_LOW)
    assert not por_wanted(Spi(por=PorMode.RESERVED), ResponseStatus.CNTR_LOW)
    assert por_status(ValueError()) is ResponseStatus.UNIDENTIFIED_SECURITY_ERROR


def test_rfu_status_rejected() -> None:
    keyset = Scp80KeySet(bytes(16), bytes(16))
    spi = Spi(por_integrity=Integrity.NONE, por_ciphered=False)
    kic, kid = Kic.for_cipher(CipherAlgorithm.AES_CBC), Kid.for_mac(MacAlgorithm.AES_CMAC)
    raw = bytes.fromhex("000b0a0000000000000001000d")
    with pytest.raises(DecodeError, match="RFU"):
        unsecure_response(raw, spi=spi, kic=kic, kid=kid, keyset=keyset)
