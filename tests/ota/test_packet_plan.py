"""Packet plans: resolved once per SPI / KIc / KID and key set shape (algorithms, CMAC length, key lengths), holding
no key and keeping no key set alive, shared by key sets that differ only by their key values, never by key sets of
another shape; refusals never remembered; packets built from plans equal those built after clearing every cache."""

from __future__ import annotations

import gc
import weakref

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
    assert not any(isinstance(part, Scp80KeySet) for entry in packet_plan._PLANS.values() for part in entry)
    assert all(KIC_KEY not in slot and KID_KEY not in slot for slot in packet_plan._PLANS)


def test_a_plan_keeps_no_key_set_alive() -> None:
    keyset = _keyset()
    command_plan(SPI, KIC, KID, keyset)
    ref = weakref.ref(keyset)
    del keyset
    gc.collect()
    assert ref() is None


def test_key_sets_of_one_shape_share_a_plan_and_others_do_not() -> None:
    plan = command_plan(SPI, KIC, KID, _keyset())
    other_keys = Scp80KeySet(bytes(16), bytes(16), cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
    assert command_plan(SPI, KIC, KID, other_keys) is plan
    short_mac = Scp80KeySet(KIC_KEY, KID_KEY, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC, cmac_length=4)
    assert command_plan(SPI, KIC, KID, short_mac).check_len == 4
    longer = Scp80KeySet(bytes(32), KID_KEY, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
    assert command_plan(SPI, KIC, KID, longer) is not plan
    with pytest.raises(UnsupportedError):
        command_plan(SPI, KIC, KID, Scp80KeySet(bytes(5), KID_KEY, cipher=CipherAlgorithm.AES_CBC))


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
