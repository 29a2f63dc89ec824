"""Replay GPShell's recorded SCP01/SCP02/SCP03 traces through the emulated card, byte for byte.

Each case gives the keys, the host challenge, the card's INITIALIZE UPDATE response, the host's EXTERNAL
AUTHENTICATE and wrapped commands, and sometimes the card's responses. The emulator is set up as the recorded
card was (KDD, KVN, sequence counter, registry content: written below per case); its INITIALIZE UPDATE answer
must equal the recorded one (for SCP03 i=70/10 that checks the pseudo-random card challenge and the counter;
for SCP01 and SCP02 i=15 the recorded random challenge is injected), it must accept the recorded EXTERNAL
AUTHENTICATE and every wrapped command, and answer them as recorded where the trace says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from gpchannel.card.dispatcher import Card
from gpchannel.card.state import Application, CardState, KeySet, LoadFile, MemoryStore, SdConfig
from gpchannel.crypto.keys import KeyType
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.gp.privileges import Privileges
from gpchannel.scp.registry import PROTOCOLS
from tests.vectors import VectorCase, params

GP_ISD = bytes.fromhex("A000000151000000")


@dataclass
class Setup:
    """The recorded card: what the trace does not say but its answers imply."""

    isd_aid: bytes = GP_ISD
    lifecycle: CardLifeCycle = CardLifeCycle.SECURED
    isd_privileges: bytes = bytes.fromhex("9EFE80")
    load_files: list[str] = field(default_factory=list)
    applications: list[tuple[str, int, str]] = field(default_factory=list)


SETUPS = {
    # P1=20/40/80 in the GP 2.1.1 format: six load files, one application (privileges 02), the ISD of an OP 2.0.1
    # card (A0000000030000, INITIALIZED, privileges byte 00).
    "scp01Test.c (get_status)": Setup(
        bytes.fromhex("A0000000030000"),
        CardLifeCycle.INITIALIZED,
        bytes(3),
        [
            "A0000000620001",
            "A0000000620101",
            "A0000000620102",
            "A0000000620201",
            "A0000000030000",
            "D0D1D2D3D4D501",
        ],
        [("D0D1D2D3D4D50101", 0x07, "02")],
    ),
    "scp02Test.c (get_status_mac_only)": Setup(
        load_files=["A0000000035350", "A000000004", "325041592E", "F000071180", "A00000042120", "D0D1D2D3D4D501"]
    ),
    "scp02Test.c (install_mac_enc)": Setup(load_files=["D0D1D2D3D4D501"]),  # the instance 0101 is absent: 6A88
    "scp03Test.c (delete_application)": Setup(load_files=["A00100015141434C"]),
    "scp03Test.c (mutual_auth)": Setup(),
    "scp03Test.c (get_status)": Setup(),
    "scp03Test.c (get_status_enc_mac)": Setup(),
    "scp03Test.c (get_status_aes_192)": Setup(load_files=["A0000001515350"]),
}


def _setup(case: VectorCase) -> Setup:
    for name, setup in SETUPS.items():
        if case.source.endswith(name):
            return setup
    raise AssertionError(f"no setup for {case.source}")


def _card(case: VectorCase, setup: Setup) -> tuple[Card, bytes]:
    iu = bytes.fromhex(case.inputs["initialize_update_resp"])[:-2]
    kdd, kvn, scp = iu[:10], iu[10], iu[11]
    assert PROTOCOLS.explicit(scp) is not None, f"SCP{scp:02X} is not in the protocol registry"
    key_type = KeyType.AES if scp == 3 else KeyType.DES3
    if "key_enc" in case.inputs:
        enc, mac, dek = (case.hex_in(n) for n in ("key_enc", "key_mac", "key_dek"))
    elif "enc" in case.inputs:
        enc, mac, dek = (case.hex_in(n) for n in ("enc", "mac", "dek"))
    else:
        pytest.skip("a diversified-key trace (master key only)")
    challenge = b""
    if scp == 1:
        i_param, counter, challenge = int(case.inputs["mode"].split("i=")[1][:2], 16), 0, iu[12:20]
    elif scp == 2:
        i_param, counter, challenge = int(case.inputs["i"], 16), int.from_bytes(iu[12:14], "big"), iu[14:20]
    else:
        i_param = iu[12]
        counter = int.from_bytes(iu[-3:], "big") - 1  # SCP03 increments before INITIALIZE UPDATE (6.2.2.1)
    keyset = KeySet(kvn, key_type, enc, mac, dek, counter)
    isd = Application(
        setup.isd_aid,
        int(setup.lifecycle),
        Privileges.from_bytes(setup.isd_privileges),
        setup.isd_aid,
        sd=SdConfig(scp, i_param, [keyset]),
    )
    state = CardState(setup.lifecycle, setup.isd_aid, b"\x3b\x00", bytes(42), key_diversification_data=kdd)
    state.applications.append(isd)
    for aid, lifecycle, privileges in setup.applications:
        state.applications.append(
            Application(bytes.fromhex(aid), lifecycle, Privileges.from_bytes(bytes.fromhex(privileges)), isd.aid)
        )
    state.load_files = [LoadFile(bytes.fromhex(aid), isd.aid) for aid in setup.load_files]

    def random(n: int) -> bytes:
        assert challenge, "this protocol derives its card challenge; it must not draw randomness"
        assert n == len(challenge)
        return challenge

    source: Callable[[int], bytes] = random
    store = MemoryStore()
    store.commit(state)
    return Card(state, store, random=source), iu


@pytest.mark.parametrize("case", params("card/gpshell-traces.json"))
def test_trace_replays_through_the_card(case: VectorCase) -> None:
    card, recorded_iu = _card(case, _setup(case))
    host_challenge = case.hex_in("host_challenge")
    iu_command = case.inputs.get("initialize_update_cmd") or ("8050000008" + host_challenge.hex() + "00")
    answer = card.process(bytes.fromhex(iu_command))
    assert answer == recorded_iu + b"\x90\x00"
    assert card.process(case.hex_out("external_authenticate")) == b"\x90\x00"
    responses = case.expected.get("responses", [])
    for n, wrapped in enumerate(case.expected.get("wrapped_cmds", [])):
        answer = card.process(bytes.fromhex(wrapped))
        assert answer[-2:] != b"\x69\x82", f"command {n} was refused by secure messaging"
        if n < len(responses):
            assert answer.hex().upper() == responses[n].upper()
    committed = card.store.load()
    assert committed == card.state
