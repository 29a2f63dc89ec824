"""The whole matrix, protocol x level x attack, against the outcome each cell must have.

The expected outcomes are written from the specifications, not from the implementation:

* GP 2.3.1 10.2 / E.4.4 / Amendment D 6.2: with C-MAC every command carries a MAC over its header and data,
  chained on the previous MAC; a command that fails it is refused with 6982 and the session ends. So at every
  level from 01 a changed data or header byte, a replayed, reordered, dropped (the next MAC no longer chains)
  or injected command is refused with 6982. At 00 nothing protects a command once the session is open.
* C-DECRYPTION (03 and up) enciphers command data: the message is not readable in commands; only
  R-ENCRYPTION (33, SCP03 only: SCP02 has none) hides it in answers.
* R-MAC (13 and up): the host verifies every answer; an answer made up by the attacker (the fake 9000 of the
  drop and reorder attacks) fails it, and the host stops before the card sees anything out of order.
* Entity authentication (GP 2.3.1 7.3, 11.8, E.5.1 / Amendment D 7.1): the card checks the host cryptogram in
  EXTERNAL AUTHENTICATE, the host checks the card cryptogram (and, for a pseudo-random challenge, the
  challenge) in the INITIALIZE UPDATE answer, at *every* level, 00 included: impersonating either end fails.
* SCP80 (TS 102 225 5.1.1): a CC stops changed and made-up packets (PoR status 01); only a counter "higher"
  stops replays and reordering (status 02); ciphering hides the message; nothing stops a dropped packet at the
  card: each packet stands alone, and the counter accepts gaps.
"""

from __future__ import annotations

import pytest

from gpchannel.mitm.attacks import Attack, Service
from gpchannel.mitm.scenario import GP_LEVELS, Outcome, run_gp
from gpchannel.mitm.scp80 import SCP80_ATTACKS, SCP80_LEVELS, run_scp80

C_MAC, C_DEC, R_MAC, R_ENC = 0x01, 0x02, 0x10, 0x20
ENTITY, INTEGRITY, SECRECY = Service.ENTITY_AUTHENTICATION, Service.INTEGRITY, Service.CONFIDENTIALITY

# The levels each protocol must offer, independently of GP_LEVELS (which the test also checks).
LEVELS = {0x02: (0x00, 0x01, 0x03, 0x13), 0x03: (0x00, 0x01, 0x03, 0x13, 0x33)}
TOUCHED = {  # the command each attack touches, and the status word the card must give it from 01 up
    Attack.MODIFY_DATA: "message",
    Attack.MODIFY_HEADER: "read-back",
    Attack.REPLAY: "message (replayed)",
    Attack.INJECT: "attacker's DELETE",
}


def test_the_protocols_offer_the_levels() -> None:
    assert GP_LEVELS == LEVELS
    assert set(SCP80_LEVELS) == {0x00, 0x06, 0x12, 0x16}


GP_CELLS = [(scp, level, attack) for scp, levels in LEVELS.items() for level in levels for attack in Attack]


@pytest.mark.parametrize(
    ("scp", "level", "attack"), GP_CELLS, ids=[f"{s:02X}-{lv:02X}-{a.value}" for s, lv, a in GP_CELLS]
)
def test_gp_cell(scp: int, level: int, attack: Attack) -> None:
    check_gp_cell(run_gp(scp, level, attack), level, attack)


def check_gp_cell(o: Outcome, level: int, attack: Attack) -> None:
    """The outcome one SCP02/03 cell must have, whatever line (memory, PC/SC) the attacker sits on."""
    sws = o.card_sws
    if attack is Attack.READ:
        assert o.message_visible == {"command": not level & C_DEC, "answer": not level & R_ENC}
        assert o.stopped_by is (SECRECY if level & R_ENC else None)
        assert o.succeeded is not bool(level & R_ENC)
        assert o.host_error == ""  # reading changes nothing: the session works
        return
    if attack is Attack.IMPERSONATE_SERVER:
        assert sws["EXTERNAL AUTHENTICATE"] in (0x6300, 0x6982)
        assert sws["GET msg"] == 0x6982  # no session: the store answers nobody
        assert (o.stopped_by, o.succeeded) == (ENTITY, False)
        return
    if attack is Attack.IMPERSONATE_CARD:
        assert o.host_error == "AuthenticationError"
        assert (o.stopped_by, o.succeeded) == (ENTITY, False)
        assert all(e.sent is None for e in o.events if e.label != "SELECT")  # nothing else reached the card
        return
    if level == 0x00:  # the session is open, nothing protects a command
        assert (o.stopped_by, o.succeeded) == (None, True)
        assert 0x6982 not in sws.values()
        return
    assert (o.stopped_by, o.succeeded) == (INTEGRITY, False)
    if attack in TOUCHED:
        assert sws[TOUCHED[attack]] == 0x6982
        assert "session closed" in o.card
        if attack is not Attack.MODIFY_DATA:
            assert sws["read-back"] == 0x6982  # the card ended the session: the host's next command fails too
    elif level & R_MAC:  # drop, reorder: the host sees the fake 9000 has no R-MAC and stops
        assert o.host_error
        assert "read-back" not in sws and "message (late)" not in sws
    else:  # drop, reorder at 01 / 03: the read-back's MAC chains on a command the card never saw
        assert sws["read-back"] == 0x6982


def test_modify_at_00_really_changes_the_message() -> None:
    o = run_gp(0x03, 0x00, Attack.MODIFY_DATA, b"Hello")
    assert "read back 'Jello'" in o.host


def test_a_chosen_message_travels() -> None:
    o = run_gp(0x02, 0x01, Attack.READ, b"Pay 10 EUR")
    assert o.message_visible["command"] and "read back 'Pay 10 EUR'" in o.host


SCP80_CELLS = [(level, attack) for level in (0x00, 0x06, 0x12, 0x16) for attack in SCP80_ATTACKS]


@pytest.mark.parametrize(("level", "attack"), SCP80_CELLS, ids=[f"80-{lv:02X}-{a.value}" for lv, a in SCP80_CELLS])
def test_scp80_cell(level: int, attack: Attack) -> None:
    cc = level & 0x03 == 0x02
    ciphered = bool(level & 0x04)
    counter = (level >> 3) & 0x03 == 0x02
    o = run_scp80(level, attack)
    if attack is Attack.READ:
        assert o.message_visible == {"command": not ciphered, "answer": not ciphered}
        assert o.stopped_by is (SECRECY if ciphered else None)
        return
    if attack is Attack.DROP:
        assert (o.stopped_by, o.succeeded) == (None, True)
        assert "packet 1: no PoR" in o.host  # only the server's missing PoR tells
        return
    protected = counter if attack in (Attack.REPLAY, Attack.REORDER) else cc
    assert (o.stopped_by, o.succeeded) == ((INTEGRITY, False) if protected else (None, True))
    if protected and attack is Attack.MODIFY_DATA:
        assert o.card_sws["packet 1"] == 0x01  # RC/CC/DS failed
    if protected and attack is Attack.INJECT:
        assert o.card_sws["attacker's packet"] == 0x01
    if protected and attack is Attack.REPLAY:
        assert o.card_sws["packet 1 (replayed)"] == 0x02  # counter low
    if protected and attack is Attack.REORDER:
        assert o.card_sws["packet 1"] == 0x02
