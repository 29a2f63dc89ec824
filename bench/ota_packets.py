"""SCP80 command packets built and parsed per second (the sending entity's ``secure_command`` + ``to_bytes``
and the receiving entity's ``unsecure_command`` with its counter check), for AES-CBC + AES-CMAC and for 2-key
3DES CBC + 3DES CBC-MAC, with a 100-byte remote APDU script.

Each figure is printed beside a baseline measured in the same process, batches taken in turn: the same cipher
and MAC calls made on ``cryptography`` directly (encrypt + MAC on the sender, decrypt + MAC on the receiver, over
inputs of the same sizes), so the ratio shows what the packet code itself costs. The aim: 0.75 or more.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from bench.scp import AIM
from bench.timing import Comparison, interleaved
from gpchannel.ota import (
    CipherAlgorithm,
    CounterMode,
    Kic,
    Kid,
    MacAlgorithm,
    Scp80KeySet,
    Spi,
    secure_command,
    unsecure_command,
)

__all__ = ["run"]

SCRIPT = bytes(range(100))
TAR = bytes.fromhex("b00011")
SPI = Spi(counter_mode=CounterMode.HIGHER)

_SETUPS = {
    "AES-CBC + AES-CMAC": (CipherAlgorithm.AES_CBC, MacAlgorithm.AES_CMAC, 16, 16),
    "3DES-2KEY CBC + CBC-MAC": (CipherAlgorithm.DES3_2KEY_CBC, MacAlgorithm.DES3_2KEY_CBC_MAC, 16, 16),
}


def _packet_round(cipher: CipherAlgorithm, mac: MacAlgorithm, kic_len: int, kid_len: int) -> Callable[[], object]:
    keyset = Scp80KeySet(bytes(range(kic_len)), bytes(range(32, 32 + kid_len)), cipher=cipher, mac=mac)
    kic, kid = Kic.for_cipher(cipher, 1), Kid.for_mac(mac, 1)

    def round_trip() -> object:
        raw = secure_command(SCRIPT, spi=SPI, kic=kic, kid=kid, tar=TAR, counter=2, keyset=keyset).to_bytes()
        return unsecure_command(raw, keyset, stored_counter=1)

    return round_trip


def _run_raw(algorithm: object, mode: modes.ECB | modes.CBC, encrypt: bool, data: bytes) -> bytes:
    cipher = Cipher(algorithm, mode)  # type: ignore[arg-type]
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _baseline(cipher: CipherAlgorithm, kic_len: int, kid_len: int) -> Callable[[], object]:
    """The cipher and MAC calls of one packet build + parse, on ``cryptography`` directly (a context per call)."""
    kic_key, kid_key = bytes(range(kic_len)), bytes(range(32, 32 + kid_len))
    block = cipher.block_size
    secured = bytes(-(6 + 8 + len(SCRIPT)) % block + 6 + 8 + len(SCRIPT))
    mac_input = bytes(2 + 8 + 6 + len(SCRIPT) + (len(secured) - 14 - len(SCRIPT)))
    if cipher is CipherAlgorithm.AES_CBC:

        def cmac() -> bytes:
            mac = CMAC(algorithms.AES(kid_key))
            mac.update(mac_input)
            return mac.finalize()

        def aes() -> object:
            cmac()
            wire = _run_raw(algorithms.AES(kic_key), modes.CBC(bytes(16)), True, secured)
            _run_raw(algorithms.AES(kic_key), modes.CBC(bytes(16)), False, wire)
            return cmac()

        return aes
    mac_padded = mac_input + bytes(-len(mac_input) % 8)
    kic3, kid3 = kic_key + kic_key[:8], kid_key + kid_key[:8]

    def des3() -> object:
        _run_raw(TripleDES(kid3), modes.CBC(bytes(8)), True, mac_padded)[-8:]
        wire = _run_raw(TripleDES(kic3), modes.CBC(bytes(8)), True, secured)
        _run_raw(TripleDES(kic3), modes.CBC(bytes(8)), False, wire)
        return _run_raw(TripleDES(kid3), modes.CBC(bytes(8)), True, mac_padded)[-8:]

    return des3


def run(seconds: float = 1.0) -> list[Comparison]:
    out = []
    for name, (cipher, mac, kic_len, kid_len) in _SETUPS.items():
        ours, raw, ratio = interleaved(
            _packet_round(cipher, mac, kic_len, kid_len), _baseline(cipher, kic_len, kid_len), seconds
        )
        out.append(
            Comparison(
                name=f"SCP80 command packet build+parse, {name}",
                rate=ours,
                baseline_name="raw cryptography calls",
                baseline=raw,
                unit="packets/s",
                aim=AIM,
                paired_ratio=ratio,
            )
        )
    return out


if __name__ == "__main__":
    for comparison in run():
        print(comparison.line())
