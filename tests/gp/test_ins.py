"""The Security Domain command table (GP 2.3.1 Table 11-1, Table 11-2, 5.1.1.4, 5.1.1.5)."""

from __future__ import annotations

from gpchannel.gp.ins import Ins, Trait, redacts, sd_command


def _with(trait: Trait) -> set[int]:
    return {int(ins) for ins in Ins if trait in ins.traits}


def test_table_11_2_commands_need_an_authenticated_session() -> None:
    assert _with(Trait.AUTHENTICATED) == {0xE4, 0xF2, 0xE6, 0xE8, 0xD8, 0xF0, 0xE2, 0x7A, 0x78, 0xF1}


def test_card_content_changes_are_those_refused_when_card_locked() -> None:
    assert _with(Trait.CHANGES_CONTENT) == {0xE4, 0xE6, 0xE8, 0xD8, 0xE2, 0xF1}  # F1: SCP11 GENERATE KEY


def test_get_data_alone_is_interindustry_and_read_only_with_get_status() -> None:
    assert _with(Trait.INTERINDUSTRY) == {0xCA, 0xCB}
    assert _with(Trait.READ_ONLY) == {0xCA, 0xCB, 0xF2}
    assert {Ins.GET_DATA.title, Ins.GET_DATA_ODD.title} == {"GET DATA"}


def test_channel_commands_are_the_symmetric_initiation_and_r_mac_session() -> None:
    assert _with(Trait.CHANNEL) == {0x50, 0x82, 0x7A, 0x78}


def test_one_rule_hides_put_key_and_store_data_in_every_trace() -> None:
    assert _with(Trait.REDACTED) == {0xD8, 0xE2}
    assert redacts(0xD8) and redacts(0xE2)
    assert not redacts(0xCA) and not redacts(0x00)


def test_lookup_by_instruction_byte() -> None:
    assert sd_command(0xE6) is Ins.INSTALL
    assert sd_command(0xA4) is None  # SELECT is the card's own (ISO/IEC 7816-4), not a row
    assert f"{Ins.PUT_KEY:02X}" == "D8" and int(Ins.PUT_KEY) == 0xD8
