"""The key doctor on recorded INITIALIZE UPDATE exchanges (GPShell, pySim) and on diversified emulated cards."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification, diversify
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import DecodeError
from gpchannel.scp.common import CardChannel, ScpProtocol, initialize_update_command
from gpchannel.scp.scp01_card import Scp01Card
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp03_card import Scp03Card
from gpchannel.trace import doctor, doctor_json, doctor_text
from tests.trace.builders import AID, KDD, counter_random, gpshell_trace, pysim_keys
from tests.vectors import VectorCase, cases, params

GPSHELL = "trace/gpshell.json"
PYSIM = "trace/pysim.json"


@pytest.mark.parametrize("case", params(GPSHELL))
def test_gpshell_initialize_update(case: VectorCase) -> None:
    pairs, _ = gpshell_trace(case)
    (iu, response), _ea = pairs[0], pairs[1]
    assert response is not None
    if "master_key" in case.inputs:
        key = case.hex_in("master_key")
        expected = Diversification[case.inputs["derivation"]]
    else:
        key = case.hex_in("enc") if "enc" in case.inputs else case.hex_in("key_enc")
        expected = Diversification.NONE
    if "key_enc" in case.inputs and case.inputs["key_enc"] != case.inputs["key_mac"]:
        key_set = StaticKeys(case.hex_in("key_enc"), case.hex_in("key_mac"), case.hex_in("key_dek"), 0, KeyType.AES)
        report = doctor(iu, response, key_set)
    else:
        report = doctor(iu, response, key)
    assert report.match is not None, report.explanation
    assert report.match.diversification is expected
    assert [a.diversification for a in report.attempts if a.matches] == [expected]
    assert report.protocol is ScpProtocol(int(case.kind[3:5]))


def test_gpshell_visa2_explanation_names_the_scheme() -> None:
    case = cases(GPSHELL, "scp01-trace")[0]
    pairs, _ = gpshell_trace(case)
    iu, response = pairs[0]
    assert response is not None
    report = doctor(iu, response, case.hex_in("master_key"))
    assert "master key with VISA2" in report.explanation
    text = doctor_text(report)
    assert "MATCH master key / visa2" in text
    assert case.inputs["master_key"].upper() not in text.upper()
    assert case.inputs["master_key"].upper() not in json.dumps(doctor_json(report)).upper()


@pytest.mark.parametrize("case", params(PYSIM, "scp02-mutual-auth", "scp03-handshake"))
def test_pysim_static_key_sets(case: VectorCase) -> None:
    iu = CommandApdu.from_bytes(bytes.fromhex(case.expected["init_update_cmd"]))
    report = doctor(iu, ResponseApdu(case.hex_in("init_update_resp")), pysim_keys(case))
    assert report.match is not None and report.match.diversification is Diversification.NONE
    assert report.kvn == case.hex_in("init_update_resp")[10]
    if case.kind.startswith("scp02"):
        assert report.match.i_param is not None and report.match.i_param & 0x01  # three distinct keys
        assert "three keys" in report.explanation


def test_pysim_wrong_card_cryptogram_matches_nothing() -> None:
    (case,) = cases(PYSIM, "scp02-mutual-auth-fail")
    iu = CommandApdu.from_bytes(bytes.fromhex(case.expected["init_update_cmd"]))
    report = doctor(iu, ResponseApdu(case.hex_in("init_update_resp")), pysim_keys(case))
    assert report.match is None
    assert "no combination reproduces the card cryptogram" in report.explanation
    assert len(report.attempts) == 4 and not any(a.matches for a in report.attempts)


def _card(protocol: int, keys: StaticKeys) -> CardChannel:
    if protocol == 1:
        return Scp01Card(
            keys, i_param=0x05, key_diversification_data=KDD, sequence_counter=0, random=counter_random, aid=AID
        )
    if protocol == 2:
        return Scp02Card(
            keys, i_param=0x55, key_diversification_data=KDD, sequence_counter=3, random=counter_random, aid=AID
        )
    return Scp03Card(
        keys, i_param=0x70, key_diversification_data=KDD, sequence_counter=9, random=counter_random, aid=AID
    )


MASTER_DES = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
MASTER_AES = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")


@pytest.mark.parametrize(
    ("protocol", "scheme", "master"),
    [
        (1, Diversification.VISA2, MASTER_DES),
        (1, Diversification.EMV, MASTER_DES),
        (2, Diversification.EMV, MASTER_DES),
        (2, Diversification.VISA2, MASTER_DES),
        (3, Diversification.KDF3, MASTER_AES),
        (3, Diversification.KDF3, MASTER_AES[:16]),
        (3, Diversification.NONE, MASTER_AES[:16]),
        (2, Diversification.NONE, MASTER_DES),
    ],
)
def test_diversified_card(protocol: int, scheme: Diversification, master: bytes) -> None:
    """A card whose keys are the master key diversified with its KDD: the doctor finds the scheme."""
    key_type = KeyType.AES if scheme is Diversification.KDF3 or protocol == 3 else KeyType.DES3
    card_keys = diversify(StaticKeys.single(master, 0x30, key_type), scheme, KDD)
    card = _card(protocol, card_keys)
    iu = initialize_update_command(bytes(range(8)), 0x30)
    response = card.initialize_update(iu)
    report = doctor(iu, response, master)
    assert report.match is not None, report.explanation
    assert report.match.diversification is scheme
    assert report.key_diversification_data == KDD and report.kvn == 0x30
    assert report.match.key_check_values == card_keys.kcvs()
    wrong = doctor(iu, response, bytes(len(master)))
    assert wrong.match is None


def test_refused_initialize_update() -> None:
    iu = initialize_update_command(bytes(8), 0x42)
    report = doctor(iu, ResponseApdu(b"", 0x6A88), MASTER_DES)
    assert report.match is None and not report.attempts and "6A88" in report.explanation
    assert "KVN" in report.explanation


def test_not_an_initialize_update() -> None:
    with pytest.raises(DecodeError):
        doctor(CommandApdu(0x80, 0xCA, 0, 0x66, le=256), ResponseApdu(bytes(28)), MASTER_DES)
    with pytest.raises(DecodeError):
        doctor(initialize_update_command(bytes(8)), ResponseApdu(bytes(5)), MASTER_DES)


_LAYOUTS = st.one_of(
    st.binary(max_size=40),
    st.builds(
        lambda head, scp, tail: head + bytes((scp,)) + tail,
        st.binary(min_size=11, max_size=11),
        st.sampled_from([1, 2, 3]),
        st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=17, max_size=36)),
    ),
)


@given(data=_LAYOUTS, key=st.sampled_from([bytes(16), bytes(24), bytes(32)]))
def test_any_response_gives_a_report_or_a_decode_error(data: bytes, key: bytes) -> None:
    try:
        report = doctor(initialize_update_command(bytes(8)), ResponseApdu(data), key)
    except DecodeError:
        return
    assert report.protocol in (ScpProtocol.SCP01, ScpProtocol.SCP02, ScpProtocol.SCP03)
    assert len(report.attempts) == 4
