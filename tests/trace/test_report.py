"""Reports: the text listing marks the failing exchange; JSON has plain types; no key ever appears."""

from __future__ import annotations

import json

from gpchannel.codec.apdu import CommandApdu
from gpchannel.trace import KeyOptions, decode_exchanges, trace_json, trace_text
from tests.trace.builders import AES_KEYS, DES_KEYS, as_exchanges, loopback_trace

KEY_TEXTS = [k.hex().upper() for keys in (AES_KEYS, DES_KEYS) for k in (keys.enc, keys.mac, keys.dek)]


def test_text_of_a_good_session() -> None:
    pairs, plain_commands, _, keys = loopback_trace(3, 0x33, 0x70)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    text = trace_text(report)
    assert "session 1: SCP03 i=70 KVN 30 level 33" in text
    assert "every check passed" in text and "1 session(s), no failure" in text
    for command in plain_commands:
        assert f"plain {command}" in text
    assert "[C-MAC ok, decrypted ok, R-MAC ok]" in text
    assert not any(k in text for k in KEY_TEXTS)


def test_text_and_json_of_a_tampered_session() -> None:
    pairs, _, _, keys = loopback_trace(2, 0x03)
    command, response = pairs[4]
    data = bytearray(command.data)
    data[0] ^= 0xFF
    pairs[4] = (CommandApdu(command.cla, command.ins, command.p1, command.p2, bytes(data), command.le), response)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    text = trace_text(report)
    assert "FAILED at exchange #4" in text
    assert "!!#4 (line 5) secured" in text
    assert "first failure: exchange #4 (line 5)" in text
    assert not any(k in text for k in KEY_TEXTS)
    document = trace_json(report)
    dumped = json.dumps(document)
    assert json.loads(dumped) == document
    assert document["ok"] is False and document["first_failure"] == 4
    assert document["sessions"][0]["failed_at"] == 4 and document["sessions"][0]["protocol"] == "SCP02"
    assert document["exchanges"][4]["failure"] in ("c-mac", "decryption")
    assert document["exchanges"][5]["role"] == "unchecked"
    assert document["sessions"][0]["key_check_values"] == [v.hex().upper() for v in DES_KEYS.kcvs()]
    assert not any(k in dumped for k in KEY_TEXTS)


def test_keys_never_in_reprs() -> None:
    options = KeyOptions(DES_KEYS)
    assert not any(k in repr(options).upper() for k in KEY_TEXTS)
    pairs, _, _, keys = loopback_trace(1, 0x03)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    assert not any(k in repr(report).upper() for k in KEY_TEXTS)
