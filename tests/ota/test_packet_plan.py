"""Packet plans: resolved once per SPI / KIc / KID / key set object, holding no key, following the key set by a
weak reference (a key set gone is never matched again), refusals never remembered; packets built from plans equal
those built after clearing every cache."""

from __future__ import annotations

import gc

import pytest

from gpchannel.errors import UnsupportedError
from gpchannel.ota import CipherAlgorithm, Kic, Kid, MacAlgorithm, Scp80KeySet, Spi, packet_plan, secure_command
from gpchannel.ota.packet_plan import command_plan, response_plan

SPI = Spi.from_bytes(bytes.fromhex("1619"))
KIC, KID = Kic.for_cipher(CipherAlgorithm.AES_CBC, 1), Kid.for_mac(MacAlgorithm.AES_CMAC, 1)
KIC_KEY, KID_KEY = bytes(range(16)), bytes(range(16, 32))


def _keyset() -> Scp80KeySet:
    return Scp80KeySet(KIC_KEY, KID_KEY, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)


def test_a_plan_is_resolved_once_and_holds_no_key() -> None:
    keyset = _keyset()
    plan = command_plan(SPI, KIC, KID, keyset)
    assert command_plan(SPI, KIC, KID, keyset) is plan
    assert plan.header == bytes.fromhex("1516191212")  # CHL 13 + 8, SPI, KIc and KID (AES, key version 1)
    assert (plan.check_len, plan.block) == (8, 16)
    assert response_plan(SPI, KIC, KID, keyset).header == bytes((18,))
    for value in (plan.check_alg, plan.check_len, plan.cipher, plan.block, plan.header):
        assert value not in (KIC_KEY, KID_KEY)
    assert not any(isinstance(entry[3], Scp80KeySet) for entry in packet_plan._PLANS.values())


def test_a_key_set_gone_is_not_matched_again() -> None:
    keyset = _keyset()
    command_plan(SPI, KIC, KID, keyset)
    refs = [entry[3] for entry in packet_plan._PLANS.values() if entry[3]() is keyset]
    assert refs
    del keyset
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_refusals_are_not_remembered() -> None:
    wrong = Scp80KeySet(bytes(8), KID_KEY, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
    for _ in range(2):
        with pytest.raises(UnsupportedError):
            command_plan(SPI, KIC, KID, wrong)


def test_packets_from_plans_equal_packets_from_cold_caches() -> None:
    keyset = _keyset()
    warm = [
        secure_command(bytes(n), spi=SPI, kic=KIC, kid=KID, tar=bytes(3), counter=n, keyset=keyset) for n in range(40)
    ]
    packet_plan._PLANS.clear()
    cold = secure_command(bytes(39), spi=SPI, kic=KIC, kid=KID, tar=bytes(3), counter=39, keyset=_keyset())
    assert cold.to_bytes() == warm[-1].to_bytes()
