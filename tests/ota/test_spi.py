"""SPI, KIc and KID codings (ETSI TS 102 225 5.1.1-5.1.3; ota-notes A.3/A.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
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
    meets_minimum_security,
)

spis = st.builds(
    Spi,
    st.sampled_from(Integrity),
    st.booleans(),
    st.sampled_from(CounterMode),
    st.sampled_from(PorMode),
    st.sampled_from(Integrity),
    st.booleans(),
    st.sampled_from(PorTransport),
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # ota-notes A.3 examples (pySim / SJA5 and gsm0348 vectors).
        (
            "1639",
            Spi(Integrity.CC, True, CounterMode.HIGHER, PorMode.ALWAYS, Integrity.CC, True, PorTransport.SUBMIT),
        ),
        (
            "0619",
            Spi(
                Integrity.CC,
                True,
                CounterMode.NO_COUNTER,
                PorMode.ALWAYS,
                Integrity.CC,
                True,
                PorTransport.DELIVER_REPORT,
            ),
        ),
        (
            "0001",
            Spi(
                Integrity.NONE,
                False,
                CounterMode.NO_COUNTER,
                PorMode.ALWAYS,
                Integrity.NONE,
                False,
                PorTransport.DELIVER_REPORT,
            ),
        ),
        (
            "1E2E",
            Spi(Integrity.CC, True, CounterMode.ONE_HIGHER, PorMode.ON_ERROR, Integrity.DS, False, PorTransport.SUBMIT),
        ),
        (
            "0D03",
            Spi(
                Integrity.RC,
                True,
                CounterMode.NO_CHECK,
                PorMode.RESERVED,
                Integrity.NONE,
                False,
                PorTransport.DELIVER_REPORT,
            ),
        ),
    ],
)
def test_spi_examples(raw: str, expected: Spi) -> None:
    assert Spi.from_bytes(bytes.fromhex(raw)) == expected
    assert expected.to_bytes() == bytes.fromhex(raw)


@given(spis)
def test_spi_round_trip(spi: Spi) -> None:
    assert Spi.from_bytes(spi.to_bytes()) == spi


@given(st.binary(max_size=4))
def test_spi_decode_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        spi = Spi.from_bytes(raw)
    except DecodeError as exc:
        assert exc.offset is not None
    else:
        assert spi.to_bytes() == raw


@pytest.mark.parametrize(("raw", "offset"), [("2001", 0), ("8001", 0), ("0041", 1), ("0081", 1)])
def test_spi_reserved_bits_rejected(raw: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        Spi.from_bytes(bytes.fromhex(raw))
    assert info.value.offset == offset


@pytest.mark.parametrize(
    ("byte", "kvn", "cipher"),
    [
        (0x01, 0, CipherAlgorithm.DES_CBC),
        (0x05, 0, CipherAlgorithm.DES3_2KEY_CBC),
        (0x09, 0, CipherAlgorithm.DES3_3KEY_CBC),
        (0x0D, 0, CipherAlgorithm.DES_ECB),
        (0x12, 1, CipherAlgorithm.AES_CBC),
        (0x22, 2, CipherAlgorithm.AES_CBC),
        (0x35, 3, CipherAlgorithm.DES3_2KEY_CBC),
        (0x75, 7, CipherAlgorithm.DES3_2KEY_CBC),
        (0x15, 1, CipherAlgorithm.DES3_2KEY_CBC),
    ],
)
def test_kic_codings(byte: int, kvn: int, cipher: CipherAlgorithm) -> None:
    kic = Kic.from_bytes(bytes((byte,)))
    assert (kic.kvn, kic.cipher) == (kvn, cipher)
    assert Kic.for_cipher(cipher, kvn).value == byte


@pytest.mark.parametrize("byte", [0x00, 0x04, 0x08, 0x03, 0x06, 0x0A, 0x0E, 0xF7])
def test_kic_without_named_algorithm(byte: int) -> None:
    kic = Kic.from_bytes(bytes((byte,)))
    assert kic.cipher is None
    assert kic.to_bytes() == bytes((byte,))


def test_kic_3des_ecb_has_no_coding() -> None:
    with pytest.raises(ValueError, match="no KIc coding"):
        Kic.for_cipher(CipherAlgorithm.DES3_ECB)


@pytest.mark.parametrize(
    ("byte", "mac", "rc"),
    [
        (0x01, MacAlgorithm.DES_CBC_MAC, RcAlgorithm.CRC16),
        (0x05, MacAlgorithm.DES3_2KEY_CBC_MAC, RcAlgorithm.CRC32),
        (0x09, MacAlgorithm.DES3_3KEY_CBC_MAC, None),
        (0x0D, None, None),
        (0x12, MacAlgorithm.AES_CMAC, None),
        (0x00, None, None),
        (0x03, None, None),
    ],
)
def test_kid_codings(byte: int, mac: MacAlgorithm | None, rc: RcAlgorithm | None) -> None:
    kid = Kid.from_bytes(bytes((byte,)))
    assert (kid.mac, kid.rc) == (mac, rc)
    if mac is not None:
        assert Kid.for_mac(mac, kid.kvn).value == byte
    if rc is not None:
        assert Kid.for_rc(rc, kid.kvn).value == byte


def test_kid_proprietary_rc_has_no_coding() -> None:
    with pytest.raises(ValueError, match="no KID coding"):
        Kid.for_rc(RcAlgorithm.XOR4)


@given(st.binary(max_size=3))
def test_key_bytes_decode_returns_or_raises_decode_error(raw: bytes) -> None:
    for cls in (Kic, Kid):
        try:
            value = cls.from_bytes(raw)
        except DecodeError:
            assert len(raw) != 1
        else:
            assert value.to_bytes() == raw
            assert value.family is AlgorithmFamily(raw[0] & 3)


def test_kvn_range() -> None:
    with pytest.raises(ValueError, match="kvn"):
        Kic(16, AlgorithmFamily.AES, 0)


@pytest.mark.parametrize(
    ("spi1", "msl", "ok"),
    [
        (0x16, 0x16, True),  # CC + ciphered + counter higher: the recommended minimum
        (0x1E, 0x16, True),  # counter "one higher" is at least "higher"
        (0x12, 0x16, False),  # not ciphered
        (0x0E, 0x16, False),  # counter available but unchecked
        (0x15, 0x16, False),  # RC only
        (0x17, 0x16, True),  # DS
        (0x00, 0x00, True),  # MSL 00 accepts anything (an unprotected TAR: ota-notes E.3)
        (0x00, 0x01, False),
    ],
)
def test_minimum_security_level(spi1: int, msl: int, ok: bool) -> None:
    assert meets_minimum_security(Spi.from_bytes(bytes((spi1, 0x01))), msl) is ok


def test_minimum_security_level_range() -> None:
    with pytest.raises(ValueError, match="MSL"):
        meets_minimum_security(Spi(), 0x20)
