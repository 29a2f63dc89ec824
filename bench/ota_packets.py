"""SCP80 command packets built and parsed per second (the sending entity's ``secure_command`` + ``to_bytes``
and the receiving entity's ``unsecure_command`` with its counter check), for AES-CBC + AES-CMAC and for 2-key
3DES CBC + 3DES CBC-MAC, with a 100-byte remote APDU script.

Each figure is printed beside a baseline measured in the same process: the same cipher and MAC calls made
directly on :mod:`gpchannel.crypto.ciphers` (encrypt + MAC on the sender, decrypt + MAC on the receiver, over
inputs of the same sizes), so the ratio shows what the packet code itself costs.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.timing import Comparison, rate
from gpchannel.crypto import ciphers
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


def _baseline(cipher: CipherAlgorithm, kic_len: int, kid_len: int) -> Callable[[], object]:
    kic_key, kid_key = bytes(range(kic_len)), bytes(range(32, 32 + kid_len))
    block = cipher.block_size
    secured = bytes(-(6 + 8 + len(SCRIPT)) % block + 6 + 8 + len(SCRIPT))
    mac_input = bytes(2 + 8 + 6 + len(SCRIPT) + (len(secured) - 14 - len(SCRIPT)))
    if cipher is CipherAlgorithm.AES_CBC:

        def aes() -> object:
            ciphers.aes_cmac(kid_key, mac_input)
            wire = ciphers.aes_cbc_encrypt(kic_key, secured)
            ciphers.aes_cbc_decrypt(kic_key, wire)
            return ciphers.aes_cmac(kid_key, mac_input)

        return aes
    mac_padded = mac_input + bytes(-len(mac_input) % 8)

    def des3() -> object:
        ciphers.des3_cbc_mac(kid_key, mac_padded)
        wire = ciphers.des3_cbc_encrypt(kic_key, secured)
        ciphers.des3_cbc_decrypt(kic_key, wire)
        return ciphers.des3_cbc_mac(kid_key, mac_padded)

    return des3


def run(seconds: float = 1.0) -> list[Comparison]:
    out = []
    for name, (cipher, mac, kic_len, kid_len) in _SETUPS.items():
        out.append(
            Comparison(
                name=f"SCP80 command packet build+parse, {name}",
                rate=rate(_packet_round(cipher, mac, kic_len, kid_len), seconds),
                baseline_name="raw cipher+MAC calls",
                baseline=rate(_baseline(cipher, kic_len, kid_len), seconds),
                unit="packets/s",
            )
        )
    return out
