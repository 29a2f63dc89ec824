"""gpchannel.ram against the public vectors of tests/vectors/ram (see SOURCES.md there)."""

from __future__ import annotations

import pytest

from gpchannel.codec.tlv import tlv
from gpchannel.errors import AdminProtocolError
from gpchannel.ram.admin import ContentType, TargetedApplication
from gpchannel.ram.client import AdminClientConnection, ScriptDelivery, SessionEnd
from gpchannel.ram.server import AdminServerConnection
from gpchannel.ram.trigger import TimerCoding, TriggerParameters
from tests.vectors import VectorCase, params

PYSIM = "ram/pysim.json"
NJIWA = "ram/njiwa.json"
HTTP = "ram/http.json"


@pytest.mark.parametrize("case", params(PYSIM, "scp81-tlv"))
def test_pysim_trigger_objects(case: VectorCase) -> None:
    encoded = case.hex_in("encoded")
    tag = encoded[0]
    if tag == 0x85:
        raw = tlv(0x81, tlv(0x83, encoded))
        decoded = case.expected["decoded"]
        expected = TriggerParameters(
            psk_identity=bytes.fromhex(decoded["psk_id"]),
            kvn=decoded["kvn"],
            key_id=decoded["kid"],
            sha_type=decoded["sha_type"],
        )
    else:
        raw = tlv(0x81, tlv(0x83, tlv(0x89, encoded)))
        field = {0x8A: "host", 0x8C: "uri"}[tag]
        expected = TriggerParameters(**{field: case.expected["decoded"]})
    assert TriggerParameters.from_bytes(raw) == expected
    assert expected.to_bytes() == raw


@pytest.mark.parametrize("case", params(NJIWA, "trigger"))
def test_njiwa_triggers(case: VectorCase) -> None:
    raw = case.hex_in("encoded")
    params_ = TriggerParameters.from_bytes(raw)
    assert params_.to_bytes() == raw
    if case.expected.get("defaults"):
        assert params_.defaults
        return
    exp = case.expected
    assert params_.psk_identity == exp["psk_identity"].encode()
    assert (params_.kvn, params_.key_id, params_.sha_type) == (exp["kvn"], exp["key_id"], exp["sha_type"])
    assert params_.retry is not None
    retry = exp["retry"]
    assert (params_.retry.counter, params_.retry.delay_seconds, params_.retry.failure_report) == (
        retry["counter"],
        retry["delay_seconds"],
        retry["failure_report"],
    )
    assert params_.retry.timer_coding is TimerCoding(retry["timer_coding"])
    assert (params_.agent_id, params_.uri, params_.host) == (exp["agent_id"], exp["uri"], exp["host"])
    assert params_.connection == bytes.fromhex(exp["connection"])


@pytest.mark.parametrize("case", params(HTTP, "card-request"))
def test_card_requests(case: VectorCase) -> None:
    conn = AdminServerConnection()
    conn.receive_data(case.inputs["http"].encode("latin-1"))
    for expected in case.expected["requests"]:
        req = conn.next_request()
        assert req is not None
        assert (req.uri, req.agent_from, req.first, req.host) == (
            expected["uri"],
            expected["agent_from"],
            expected["first"],
            expected["host"],
        )
        conn.send_end()
    if "then_error" in case.expected:
        with pytest.raises(AdminProtocolError) as info:
            conn.next_request()
        assert info.value.status == case.expected["then_error"]
    else:
        assert conn.next_request() is None


@pytest.mark.parametrize("case", params(HTTP, "server-response"))
def test_server_responses(case: VectorCase) -> None:
    card = AdminClientConnection(host="ras", agent_from="card")
    card.first_post("/ras")
    card.receive_data(case.inputs["http"].encode("latin-1") + case.hex_in("body"))
    exp = case.expected
    if "error" in exp:
        with pytest.raises(AdminProtocolError) as info:
            card.next_event()
        assert info.value.status == exp["error"]
    elif exp.get("end"):
        assert card.next_event() == SessionEnd()
    else:
        app = exp["targeted_application"]
        assert card.next_event() == ScriptDelivery(
            bytes.fromhex(exp["script"]),
            ContentType[exp["content_type"]],
            exp["next_uri"],
            None if app is None else TargetedApplication(bytes.fromhex(app)),
        )


@pytest.mark.parametrize("case", params(HTTP, "content-type"))
def test_content_types(case: VectorCase) -> None:
    assert ContentType.parse(case.inputs["header"]) is ContentType[case.expected["content_type"]]


@pytest.mark.parametrize("case", params(HTTP, "targeted-application"))
def test_targeted_application(case: VectorCase) -> None:
    assert TargetedApplication.from_header(case.inputs["header"]).aid == case.hex_out("aid")
