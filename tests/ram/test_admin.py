"""gpchannel.ram.admin: the admin protocol vocabulary (GP Amendment B 3.4, TS 102 226 Annex B, ota-notes B.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import AdminProtocolError, DecodeError
from gpchannel.ram.admin import (
    ADMIN_PROTOCOL,
    ContentFamily,
    ContentType,
    ScriptStatus,
    TargetedApplication,
    parse_protocol,
    parse_resume,
)


def test_protocol_value() -> None:
    assert ADMIN_PROTOCOL == "globalplatform-remote-admin/1.0"
    assert parse_protocol(" globalplatform-remote-admin/1.0 ") == ADMIN_PROTOCOL
    assert parse_protocol("GlobalPlatform-Remote-Admin/1.0") == ADMIN_PROTOCOL


@pytest.mark.parametrize("value", [None, "", "globalplatform-remote-admin/2.0", "globalplatform-remote-admin/1.1.1"])
def test_protocol_refused_with_400(value: str | None) -> None:
    with pytest.raises(AdminProtocolError) as info:
        parse_protocol(value)
    assert info.value.status == 400
    assert isinstance(info.value, DecodeError)


def test_protocol_other_supported_versions() -> None:
    assert parse_protocol("globalplatform-remote-admin/1.1.1", (ADMIN_PROTOCOL, "globalplatform-remote-admin/1.1.1"))


def test_content_type_values() -> None:
    assert ContentType.GP_COMMAND.value == "application/vnd.globalplatform.card-content-mgt;version=1.0"
    assert ContentType.GP_RESPONSE.value == "application/vnd.globalplatform.card-content-mgt-response;version=1.0"
    assert ContentType.ETSI_COMMAND.value == "application/vnd.etsi.scp.command-data;version=1.0"
    assert ContentType.ETSI_RESPONSE.value == "application/vnd.etsi.scp.response-data;version=1.0"
    assert ContentType.GP_COMMAND.response_type is ContentType.GP_RESPONSE
    assert ContentType.ETSI_COMMAND.response_type is ContentType.ETSI_RESPONSE
    assert ContentType.ETSI_RESPONSE.family is ContentFamily.ETSI
    assert [t.is_response for t in ContentType] == [False, True, False, True]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/vnd.globalplatform.card-content-mgt;version=1.0", ContentType.GP_COMMAND),
        ('Application/VND.GlobalPlatform.Card-Content-Mgt-Response; version="1.0"', ContentType.GP_RESPONSE),
        ("application/vnd.globalplatform.card-content-mgt-response", ContentType.GP_RESPONSE),
        ("application/vnd.etsi.scp.response-data ; version=1.0 ;", ContentType.ETSI_RESPONSE),
        ("application/vnd.etsi.scp.command-data;charset=x;version=1.0", ContentType.ETSI_COMMAND),
    ],
)
def test_content_type_parse(header: str, expected: ContentType) -> None:
    assert ContentType.parse(header) is expected


@pytest.mark.parametrize(
    "header",
    [
        "text/plain",
        "application/vnd.globalplatform.card-content-mgt;version=2.0",
        "application/vnd.globalplatform.card-content-mgt;version",
        "application/octet-stream;version=1.0",
        "",
    ],
)
def test_content_type_refused_with_415(header: str) -> None:
    with pytest.raises(AdminProtocolError) as info:
        ContentType.parse(header)
    assert info.value.status == 415


def test_script_status() -> None:
    assert [s.value for s in ScriptStatus] == ["ok", "unknown-application", "not-a-security-domain", "security-error"]
    assert ScriptStatus.parse(" Security-Error ") is ScriptStatus.SECURITY_ERROR
    with pytest.raises(AdminProtocolError) as info:
        ScriptStatus.parse("failed")
    assert info.value.status == 400


def test_resume() -> None:
    assert parse_resume(None) is False
    assert parse_resume("true") is True
    assert parse_resume("False") is False
    with pytest.raises(AdminProtocolError):
        parse_resume("yes")


def test_targeted_application_header() -> None:
    app = TargetedApplication(bytes.fromhex("A000000003000000"))
    assert app.to_header() == "//aid/A000000003/000000"
    assert app.rid == bytes.fromhex("A000000003")
    assert TargetedApplication.from_header("//aid/a000000003/000000") == app
    # njiwa writes the whole AID as one component
    assert TargetedApplication.from_header("//aid/A000000003000000") == app
    assert TargetedApplication(bytes(5)).to_header() == "//aid/0000000000/"
    assert TargetedApplication.from_header("//aid/0000000000/") == TargetedApplication(bytes(5))


@pytest.mark.parametrize(
    "header",
    [
        "A000000003000000",  # OPAL's bare form: not Amendment B
        "//aid/A0000000/03000000",  # RID not 5 bytes
        "//aid/A000000003/00/00",
        "//aid/A000000003/0G",
        "//aid/A000000003/000",
        "//aid/A0000000",  # 4 bytes
        "//aid/" + "00" * 17,
        "//aid/A0 00 00 00 03",
    ],
)
def test_targeted_application_refused(header: str) -> None:
    with pytest.raises(AdminProtocolError) as info:
        TargetedApplication.from_header(header)
    assert info.value.status == 400


def test_targeted_application_length() -> None:
    with pytest.raises(ValueError):
        TargetedApplication(bytes(4))
    with pytest.raises(ValueError):
        TargetedApplication(bytes(17))


@given(st.binary(min_size=5, max_size=16))
def test_targeted_application_round_trip(aid: bytes) -> None:
    app = TargetedApplication(aid)
    assert TargetedApplication.from_header(app.to_header()) == app


@given(st.text(max_size=80))
def test_content_type_parse_never_raises_other_errors(header: str) -> None:
    try:
        ContentType.parse(header)
    except AdminProtocolError as exc:
        assert exc.status == 415
