"""The SCP11 key doctor on traces of our host and card: anchors and session keys that fit, and ones that do not."""

from __future__ import annotations

import datetime

import pytest

from gpchannel.scp.scp11 import Scp11Variant
from gpchannel.scp.scp11_pki import Scp11Pki, make_pki
from gpchannel.trace.scp11_doctor import scp11_doctor, scp11_doctor_text
from tests.scp.test_scp11 import NOW
from tests.trace.test_scp11_checker import record


@pytest.fixture(scope="module")
def pki() -> Scp11Pki:
    return make_pki(NOW)


@pytest.mark.parametrize("variant", list(Scp11Variant), ids=lambda v: v.label)
def test_the_right_anchors_and_keys_fit(pki: Scp11Pki, variant: Scp11Variant) -> None:
    exchanges, keys, _ = record(pki, variant)
    other = record(pki, variant)[1]
    (d,) = scp11_doctor(
        exchanges,
        session_keys=(other, keys),
        card_anchor=pki.card_ca_key.public_key(),
        oce_anchor=pki.oce_ca_key.public_key(),
        now=NOW,
    )
    assert d.ok and d.session_keys == 1 and d.variant == variant.label and d.kvn == 1
    assert d.card_chain.startswith("verifies")
    assert d.oce_chain.startswith("verifies") is variant.oce_authenticated
    assert "session key set 2" in scp11_doctor_text([d])


def test_wrong_anchors_expired_certificates_and_keys_are_named(pki: Scp11Pki) -> None:
    exchanges, _, _ = record(pki, Scp11Variant.A)
    other = make_pki(NOW)
    (d,) = scp11_doctor(
        exchanges,
        session_keys=(record(pki, Scp11Variant.A)[1],),
        card_anchor=other.card_ca_key.public_key(),
        oce_anchor=pki.oce_ca_key.public_key(),
        now=NOW + datetime.timedelta(days=40000),
    )
    assert not d.ok and d.session_keys is None
    assert "does not verify" in d.card_chain and "not valid" in d.oce_chain
    assert "none of the session key sets" in d.receipt


def test_without_anchors_or_keys_the_chains_are_listed(pki: Scp11Pki) -> None:
    exchanges, _, _ = record(pki, Scp11Variant.B)
    (d,) = scp11_doctor(exchanges, now=NOW)
    assert d.ok and "no anchor" in d.card_chain and d.oce_chain == "" and d.receipt == "no session keys given"
