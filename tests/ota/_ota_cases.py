"""Helpers turning the vector files' SCP80 inputs into gpchannel arguments (test-only)."""

from __future__ import annotations

import re
from typing import Any

from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.ota.spi import (
    AlgorithmFamily,
    CipherAlgorithm,
    CounterMode,
    Integrity,
    Kic,
    Kid,
    PorMode,
    PorTransport,
    RcAlgorithm,
    Spi,
)
from tests.vectors import VectorCase

__all__ = ["gsm0348_args", "pysim_keyset"]

_CERT = {"NO_SECURITY": Integrity.NONE, "RC": Integrity.RC, "CC": Integrity.CC}
_COUNTER = {"COUNTER_NO_REPLAY_NO_CHECK": CounterMode.NO_CHECK, "COUNTER_REPLAY_OR_CHECK": CounterMode.HIGHER}
_POR_MODE = {"REPLY_ALWAYS": PorMode.ALWAYS}
_POR_TRANSPORT = {"SMS_DELIVER_REPORT": PorTransport.DELIVER_REPORT, "SMS_SUBMIT": PorTransport.SUBMIT}


def _spi(inputs: dict[str, Any]) -> Spi:
    c, r = inputs["command_spi"], inputs["response_spi"]
    return Spi(
        integrity=_CERT[c["CertificationMode"]],
        ciphered=c["Ciphered"] == "true",
        counter_mode=_COUNTER[c["SynchroCounterMode"]],
        por=_POR_MODE[r["PoRMode"]],
        por_integrity=_CERT[r["PoRCertificateMode"]],
        por_ciphered=r["Ciphered"] == "true",
        por_transport=_POR_TRANSPORT[r["PoRProtocol"]],
    )


def gsm0348_args(case: VectorCase, kic_byte: int | None = None, kid_byte: int | None = None) -> dict[str, Any]:
    """spi, kic, kid and keyset of a gsm0348 case. The KIc/KID bytes come from the case notes (command packets)
    or the given values; the implicit KIc codings bind the key set to 3DES-ECB (the library's behaviour, see
    the case notes), the implicit KID to the case's ``signature_algorithm``."""
    inputs = case.inputs
    m = re.search(r"SPI=(\w{4}) KIc=(\w\w) KID=(\w\w)", case.notes)
    if m is not None:
        kic_byte, kid_byte = int(m[2], 16), int(m[3], 16)
    assert kic_byte is not None and kid_byte is not None
    kic = Kic.from_bytes(bytes((kic_byte,)))
    kid = Kid.from_bytes(bytes((kid_byte,)))
    sig = inputs.get("signature_algorithm")
    keyset = Scp80KeySet(
        case.hex_in("kic_key"),
        case.hex_in("kid_key"),
        cipher=CipherAlgorithm.DES3_ECB if kic.family is AlgorithmFamily.IMPLICIT else None,
        rc=RcAlgorithm[sig] if sig in ("XOR4", "XOR8", "CRC16", "CRC32") else None,
        cmac_length=4 if sig == "AES_CMAC_32" else 8,
        allow_single_des=True,
    )
    spi = _spi(inputs)
    if m is not None:
        assert spi.to_bytes() == bytes.fromhex(m[1]), "SPI fields and notes disagree"
    return {"spi": spi, "kic": kic, "kid": kid, "keyset": keyset}


_PYSIM_CIPHER = {"aes_cbc": (2, 0), "triple_des_cbc2": (1, 1)}
_PYSIM_AUTH = {"aes_cmac": (2, 0), "triple_des_cbc2": (1, 1)}


def pysim_keyset(case: VectorCase) -> tuple[Spi, Kic, Kid, Scp80KeySet]:
    """SPI (from ``spi_bytes``), KIc, KID and key set of a pySim OTA case."""
    ks = case.inputs["keyset"]
    fam, mode = _PYSIM_CIPHER[ks["algo_crypt"]]
    kic = Kic(ks["kic_idx"], AlgorithmFamily(fam), mode)
    fam, mode = _PYSIM_AUTH[ks["algo_auth"]]
    kid = Kid(ks["kid_idx"], AlgorithmFamily(fam), mode)
    keyset = Scp80KeySet(bytes.fromhex(ks["kic"]), bytes.fromhex(ks["kid"]))
    return Spi.from_bytes(case.hex_in("spi_bytes")), kic, kid, keyset
