"""Secure messaging throughput, bytes in and bytes out: one exchange is the host's wrap of a 200-byte command
(to bytes), the card's unwrap of those bytes and wrap of a 32-byte response (to bytes), and the host's unwrap of
those bytes.

The baseline is the raw primitives the same exchange needs, called on ``cryptography`` directly (a cipher or
CMAC context per call, as a straightforward implementation would), measured in the same process with its batches
taken in turn with the contender's (bench/timing.py ``interleaved``); the ratio shows what the protocol code
costs above its primitives. The aim: 0.75 or more.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from bench.timing import Comparison, interleaved
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.crypto.padding import pad80
from gpchannel.scp.common import CardChannel, HostChannel, SecurityLevel
from gpchannel.scp.loopback import handshake

__all__ = ["AIM", "run"]

AIM = 0.75
AID = bytes.fromhex("A000000151000000")
KDD = bytes(range(10))
DATA = bytes(range(200))
COMMAND = CommandApdu(0x80, 0xE2, 0x90, 0x00, DATA)
RESPONSE = ResponseApdu(bytes(32), 0x9000)


def _exchange(host: HostChannel, card: CardChannel) -> Callable[[], object]:
    def one() -> object:
        wire = host.wrap(COMMAND).to_bytes()
        card.unwrap(CommandApdu.from_bytes(wire))
        answer = card.wrap(RESPONSE).to_bytes()
        return host.unwrap(ResponseApdu.from_bytes(answer))

    return one


def _scp03_pair() -> tuple[HostChannel, CardChannel]:
    from gpchannel.scp.scp03_card import Scp03Card
    from gpchannel.scp.scp03_host import Scp03Host

    keys = StaticKeys.single(bytes(range(16)), kvn=0x30)
    host = Scp03Host(keys, level=SecurityLevel(0x33), host_challenge=bytes(8))
    card = Scp03Card(keys, i_param=0x70, key_diversification_data=KDD, sequence_counter=0, random=bytes, aid=AID)
    handshake(host, card)
    return host, card


def _aes(key: bytes, mode: modes.ECB | modes.CBC, encrypt: bool, data: bytes) -> bytes:
    cipher = Cipher(algorithms.AES(key), mode)
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def _scp03_raw() -> Callable[[], object]:
    """The AES calls of one level-33 exchange on both sides (Amendment D 6.2.4-6.2.7): per side, the command's
    ICV, CBC and CMAC and the response's ICV, CBC and CMAC (the host encrypts and decrypts, the card the reverse)."""
    enc, mac, rmac = bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48))
    chain, header = bytes(16), bytes(5)
    padded, response_padded = pad80(DATA, 16), pad80(RESPONSE.data, 16)

    def side(encrypt_command: bool) -> object:
        icv = _aes(enc, modes.ECB(), True, bytes(16))
        ct = _aes(enc, modes.CBC(icv), encrypt_command, padded)
        _cmac(mac, chain + header + ct)
        ricv = _aes(enc, modes.ECB(), True, b"\x80" + bytes(15))
        rct = _aes(enc, modes.CBC(ricv), not encrypt_command, response_padded)
        return _cmac(rmac, chain + rct + b"\x90\x00")

    def one() -> object:
        side(True)
        return side(False)

    return one


def _scp02_pair() -> tuple[HostChannel, CardChannel]:
    from gpchannel.scp.scp02_card import Scp02Card
    from gpchannel.scp.scp02_host import Scp02Host

    keys = StaticKeys.single(bytes.fromhex("404142434445464748494A4B4C4D4E4F"), kvn=0x20, key_type=KeyType.DES3)
    host = Scp02Host(keys, level=SecurityLevel(0x03), host_challenge=bytes(8), i_param=0x55)
    card: CardChannel = Scp02Card(
        keys, i_param=0x55, key_diversification_data=KDD, sequence_counter=1, random=bytes, aid=AID
    )
    handshake(host, card)
    return host, card


def _des(key: bytes, mode: modes.ECB | modes.CBC, encrypt: bool, data: bytes) -> bytes:
    cipher = Cipher(TripleDES(key), mode)
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _scp02_raw() -> Callable[[], object]:
    """The DES calls of one i=55 level-03 command on both sides (GP 2.3.1 E.3.4, E.4.4-E.4.6): per side, the ICV
    encryption (single DES), the retail MAC (single DES CBC, then 3DES on the last block) and 3DES-CBC of the data
    (encrypted by the host, decrypted by the card). Level 03 has no R-MAC."""
    key = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    des3, des1 = key + key[:8], key[:8] * 3
    mac_input = pad80(bytes(5) + DATA, 8)
    padded = pad80(DATA, 8)

    def side(encrypt: bool) -> object:
        icv = _des(des1, modes.ECB(), True, bytes(8))
        chain = _des(des1, modes.CBC(icv), True, mac_input[:-8])[-8:]
        last = bytes(a ^ b for a, b in zip(chain, mac_input[-8:], strict=True))
        _des(des3, modes.ECB(), True, last)
        return _des(des3, modes.CBC(bytes(8)), encrypt, padded)

    def one() -> object:
        side(True)
        return side(False)

    return one


def run(seconds: float = 1.0) -> list[Comparison]:
    results: list[Comparison] = []
    cases: list[tuple[str, Callable[[], tuple[HostChannel, CardChannel]], Callable[[], Callable[[], object]]]] = [
        ("SCP03 i=70 level 33", _scp03_pair, _scp03_raw),
        ("SCP02 i=55 level 03", _scp02_pair, _scp02_raw),
    ]
    for name, make_pair, make_baseline in cases:
        host, card = make_pair()
        ours, raw, ratio = interleaved(_exchange(host, card), make_baseline(), seconds)
        results.append(
            Comparison(
                f"{name}: wrap+unwrap both sides, bytes in/out",
                ours,
                "raw cryptography calls",
                raw,
                unit="exchanges/s",
                aim=AIM,
                paired_ratio=ratio,
            )
        )
    return results


if __name__ == "__main__":
    for comparison in run():
        print(comparison.line())
