"""Traces for the inspector's tests: from the vector files (GPShell, pySim) and from our own host/card pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.scp.common import CardChannel, SecurityLevel
from gpchannel.scp.loopback import exchange, handshake
from gpchannel.scp.scp01_card import Scp01Card
from gpchannel.scp.scp01_host import Scp01Host
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp02_host import Scp02Host
from gpchannel.scp.scp03_card import Scp03Card
from gpchannel.scp.scp03_host import Scp03Host
from gpchannel.scp.symmetric import SymmetricHostChannel
from gpchannel.trace import KeyOptions, TraceExchange
from tests.vectors import VectorCase

Pair = tuple[CommandApdu, ResponseApdu | None]

KDD = bytes.fromhex("00010203040506070809")
AID = bytes.fromhex("A000000151000000")
HOST_CHALLENGE = bytes.fromhex("0102030405060708")
DES_KEYS = StaticKeys(
    bytes.fromhex("404142434445464748494A4B4C4D4E4F"),
    bytes.fromhex("505152535455565758595A5B5C5D5E5F"),
    bytes.fromhex("606162636465666768696A6B6C6D6E6F"),
    0x20,
    KeyType.DES3,
)
AES_KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x30, KeyType.AES)

# Commands the application sees: cases 1 to 4, with one-block and multi-block data.
COMMANDS = (
    CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256),
    CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256),
    CommandApdu(0x80, 0xE6, 0x0C, 0x00, bytes(range(0xA0, 0xC8)), le=256),
    CommandApdu(0x80, 0xF0, 0x80, 0x07),
    CommandApdu(0x80, 0xE4, 0x00, 0x80, bytes.fromhex("4F07A0000001510000")),
)
RESPONSES = (
    ResponseApdu(bytes.fromhex("E30D4F07A00000015153509F700101")),
    ResponseApdu(bytes(range(0xC0, 0xF2))),
    ResponseApdu(b"\x00"),
    ResponseApdu(b"", 0x6A88),
    ResponseApdu(b"\x00"),
)


def counter_random(n: int) -> bytes:
    return bytes((0xA5 + k) & 0xFF for k in range(n))


def make_pair(protocol: int, level: int, i: int | None = None) -> tuple[SymmetricHostChannel, CardChannel, StaticKeys]:
    """A host and a card of ``protocol`` (1, 2, 3) sharing the test keys, ready for the handshake."""
    sl = SecurityLevel(level)
    if protocol == 1:
        i1 = i or 0x15
        host: SymmetricHostChannel = Scp01Host(DES_KEYS, level=sl, host_challenge=HOST_CHALLENGE, i_param=i1)
        card: CardChannel = Scp01Card(
            DES_KEYS, i_param=i1, key_diversification_data=KDD, sequence_counter=0, random=counter_random, aid=AID
        )
        return host, card, DES_KEYS
    if protocol == 2:
        i2 = i or 0x55
        host = Scp02Host(DES_KEYS, level=sl, host_challenge=HOST_CHALLENGE, i_param=i2)
        card = Scp02Card(
            DES_KEYS, i_param=i2, key_diversification_data=KDD, sequence_counter=5, random=counter_random, aid=AID
        )
        return host, card, DES_KEYS
    i3 = 0x70 if i is None else i
    challenge = HOST_CHALLENGE * (2 if i3 & 0x01 else 1)
    host = Scp03Host(AES_KEYS, level=sl, host_challenge=challenge, i_param=i3)
    card = Scp03Card(
        AES_KEYS, i_param=i3, key_diversification_data=KDD, sequence_counter=7, random=counter_random, aid=AID
    )
    return host, card, AES_KEYS


def loopback_trace(
    protocol: int, level: int, i: int | None = None, commands: tuple[CommandApdu, ...] = COMMANDS
) -> tuple[list[Pair], list[CommandApdu], list[ResponseApdu], StaticKeys]:
    """A whole session between our host and card: wire pairs, and the plain commands and responses."""
    host, card, keys = make_pair(protocol, level, i)
    pairs: list[Pair] = list(handshake(host, card))
    plain_commands, plain_responses = [], []
    for n, command in enumerate(commands):
        answer = RESPONSES[n % len(RESPONSES)]
        step = exchange(host, card, command, _answer(answer))
        pairs.append((step.wire_command, step.wire_response))
        plain_commands.append(command)
        plain_responses.append(step.response)
    return pairs, plain_commands, plain_responses, keys


def _answer(response: ResponseApdu) -> Callable[[CommandApdu], ResponseApdu]:
    return lambda _command: response


def as_exchanges(pairs: Sequence[Pair]) -> list[TraceExchange]:
    return [TraceExchange(n, n + 1, command, response) for n, (command, response) in enumerate(pairs)]


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def gpshell_trace(case: VectorCase) -> tuple[list[Pair], KeyOptions]:
    """The APDU sequence a GPShell trace case records, and the keys it was made with."""
    i, e = case.inputs, case.expected
    if "initialize_update_cmd" in i:
        iu = CommandApdu.from_bytes(case.hex_in("initialize_update_cmd"))
    else:  # GPShell sends KVN 00, key index 00 in these tests (the command the card mock answers)
        iu = CommandApdu(0x80, 0x50, 0x00, 0x00, case.hex_in("host_challenge"), le=256)
    pairs: list[Pair] = [
        (iu, ResponseApdu.from_bytes(case.hex_in("initialize_update_resp"))),
        (CommandApdu.from_bytes(case.hex_out("external_authenticate")), ResponseApdu()),
    ]
    responses = e.get("responses") or e.get("protected_responses") or []
    for n, wire in enumerate(e.get("wrapped_cmds", [])):
        response = ResponseApdu.from_bytes(_h(responses[n])) if n < len(responses) else None
        pairs.append((CommandApdu.from_bytes(_h(wire)), response))
    if "master_key" in i:
        options = KeyOptions.single(case.hex_in("master_key"), Diversification[i["derivation"]])
    else:
        aes = "key_enc" in i
        names = ("key_enc", "key_mac", "key_dek") if aes else ("enc", "mac", "dek")
        enc, mac, dek = (case.hex_in(n) for n in names)
        keys = StaticKeys(enc, mac, dek, 0, KeyType.AES if aes else KeyType.DES3)
        options = KeyOptions(keys)
    return pairs, options


def pysim_keys(case: VectorCase) -> StaticKeys:
    i = case.inputs
    key_type = KeyType.AES if case.kind.startswith("scp03") else KeyType.DES3
    return StaticKeys(case.hex_in("key_enc"), case.hex_in("key_mac"), case.hex_in("key_dek"), i["kvn"], key_type)


def pysim_trace(handshake_case: VectorCase, wrap_case: VectorCase | None) -> tuple[list[Pair], list[str], list[str]]:
    """pySim's handshake then wrap steps as a trace; also the expected plain commands and plain responses (hex).

    pySim's INITIALIZE UPDATE responses have no status word and its tests never see the EXTERNAL AUTHENTICATE
    answer: 9000 is written for both. A wrap not followed by an unwrap step has no response in the trace.
    """
    e = handshake_case.expected
    iu_cmd = e.get("init_update_cmd")
    ea_cmd = e.get("ext_auth_cmd")
    assert isinstance(iu_cmd, str) and isinstance(ea_cmd, str)
    pairs: list[Pair] = [
        (CommandApdu.from_bytes(_h(iu_cmd)), ResponseApdu(handshake_case.hex_in("init_update_resp"))),
        (CommandApdu.from_bytes(_h(ea_cmd)), ResponseApdu()),
    ]
    plain_commands: list[str] = []
    plain_responses: list[str] = []
    if wrap_case is not None:
        outputs = list(wrap_case.expected["outputs"])
        for step, output in zip(wrap_case.inputs["steps"], outputs, strict=True):
            if step["op"] == "wrap":
                pairs.append((CommandApdu.from_bytes(_h(output)), None))
                plain_commands.append(step["apdu"].upper())
            else:
                command, _ = pairs[-1]
                pairs[-1] = (command, ResponseApdu(_h(step["rapdu_data"]), int(step["sw"], 16)))
                plain_responses.append(output.upper() + step["sw"].upper())
    return pairs, plain_commands, plain_responses
