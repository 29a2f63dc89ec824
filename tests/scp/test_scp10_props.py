"""Property tests for the SCP10 parsers and encoders: round trips, and parsers that return or raise DecodeError."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import AuthenticationError, DecodeError, SecurityError
from gpchannel.scp.scp10 import (
    Crt,
    KeyUsage,
    SessionKeyData,
    SessionKeys,
    pkcs1_type2_block,
    pkcs1_type2_open,
)
from gpchannel.scp.scp10_cert import CertificateBody, verify_certificate
from gpchannel.scp.scp10_sm import SecureMessaging
from tests.scp.test_scp10 import TODAY, pki

crts = st.builds(
    Crt,
    st.sampled_from([0xB4, 0xB8]),
    st.just(0x30),
    st.none() | st.sampled_from([0x80, 0x82, 0x83]),
    st.none() | st.binary(min_size=16, max_size=16) | st.binary(min_size=24, max_size=24),
    st.none() | st.binary(min_size=8, max_size=8),
)
levels = st.sampled_from([a | b | c | d for a in (0, 1) for b in (0, 2) for c in (0, 0x10) for d in (0, 0x20)])


@given(levels, st.lists(crts, min_size=1, max_size=4))
def test_session_key_data_round_trip(level: int, items: list[Crt]) -> None:
    data = SessionKeyData(level, tuple(items))
    assert SessionKeyData.from_bytes(data.to_bytes()) == data


@given(st.binary(max_size=80))
def test_session_key_data_parser_only_raises_decode_error(raw: bytes) -> None:
    try:
        SessionKeyData.from_bytes(raw)
    except DecodeError:
        pass


@given(st.binary(max_size=100), st.integers(min_value=128, max_value=256))
def test_pkcs1_type2_round_trip(data: bytes, size: int) -> None:
    if len(data) > size - 11:
        with pytest.raises(ValueError):
            pkcs1_type2_block(data, size)
        return
    assert pkcs1_type2_open(pkcs1_type2_block(data, size)) == data


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=400))
def test_certificate_parser_only_raises_decode_or_authentication_errors(raw: bytes) -> None:
    issuer = pki().tp_ex.public
    for self_descriptive in (True, False):
        try:
            verify_certificate(raw, issuer, self_descriptive=self_descriptive, now=TODAY)
        except (DecodeError, AuthenticationError):
            pass


@settings(max_examples=50, deadline=None)
@given(
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=8, max_size=8),
    st.dates(datetime.date(2000, 1, 1), datetime.date(2090, 12, 31)),
    st.integers(0, 3000),
)
def test_certificate_body_round_trips(issuer: bytes, subject: bytes, start: datetime.date, days: int) -> None:
    body = CertificateBody(issuer, subject, pki().oce.public, start, start + datetime.timedelta(days=days))
    assert CertificateBody.from_tlv_bytes(body.tlv_bytes()) == body
    assert CertificateBody.from_value_bytes(body.value_bytes()) == body


def _sm(level: int) -> SecureMessaging:
    keys = SessionKeys()
    for usage in KeyUsage:
        keys.add(usage, bytes(range(16)), 7)
    return SecureMessaging(level, keys)


@settings(max_examples=200)
@given(levels, st.binary(max_size=300), st.integers(0, 255), st.integers(0, 19))
def test_unprotect_command_only_raises_security_or_decode_errors(
    level: int, data: bytes, ins: int, channel: int
) -> None:
    cla = 0x8C | channel if channel < 4 else 0xE0 | (channel - 4)
    try:
        _sm(level).unprotect_command(CommandApdu(cla, ins, 0, 0, data))
    except (DecodeError, SecurityError):
        pass


@settings(max_examples=200)
@given(levels, st.binary(max_size=300), st.sampled_from([0x9000, 0x6100, 0x6A80]))
def test_unprotect_response_only_raises_security_or_decode_errors(level: int, data: bytes, sw: int) -> None:
    try:
        _sm(level).unprotect_response(ResponseApdu(data, sw))
    except (DecodeError, SecurityError):
        pass


@given(levels, st.binary(max_size=250), st.none() | st.integers(1, 256), st.integers(0, 19))
def test_secure_messaging_round_trip(level: int, data: bytes, le: int | None, channel: int) -> None:
    cla = 0x80 | channel if channel < 4 else 0xC0 | (channel - 4)
    command = CommandApdu(cla, 0xE2, 1, 2, data, le)
    host, card = _sm(level), _sm(level)
    plain = card.unprotect_command(host.protect_command(command))
    assert plain.data == command.data and plain.header() == command.header()
    response = ResponseApdu(data[::-1], 0x9000)
    assert host.unprotect_response(card.protect_response(response)) == response
