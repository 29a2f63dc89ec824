"""The SCP11 primitives against independent vectors: ECDH P-256 (NIST CAVP KAS ECC CDH) and the ANSI X9.63 KDF
with SHA-256 (NIST CAVP ansx963_2001); sources in tests/vectors/scp11/SOURCES.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.scp.scp11 import ecdh, encode_point, public_key_from_point, x963_kdf

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "scp11"


def load(name: str) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())["vectors"]
    return vectors


@pytest.mark.parametrize("vector", load("kas_ecc_cdh_p256.json"), ids=lambda v: f"count{v['count']}")
def test_ecdh_p256(vector: dict[str, Any]) -> None:
    curve = ec.SECP256R1()
    peer = public_key_from_point(curve, bytes.fromhex("04" + vector["QCAVSx"] + vector["QCAVSy"]))
    private = ec.derive_private_key(int(vector["dIUT"], 16), curve)
    if "QIUTx" in vector:
        assert encode_point(private.public_key()).hex() == "04" + vector["QIUTx"] + vector["QIUTy"]
    assert ecdh(private, peer).hex() == vector["ZIUT"]


@pytest.mark.parametrize("vector", load("ansx963_2001_sha256.json"), ids=lambda v: v["Z"][:8])
def test_x963_kdf_sha256(vector: dict[str, Any]) -> None:
    expected = bytes.fromhex(vector["key_data"])
    out = x963_kdf(bytes.fromhex(vector["Z"]), bytes.fromhex(vector["SharedInfo"]), len(expected), 16)
    assert out == expected


def test_a_point_off_the_curve_is_refused() -> None:
    from gpchannel.errors import DecodeError

    bad = "04" + "51192d2813e79561e6a1d6f53c8bc1a433a199c835e141b05a74a97b0faeb922"
    bad += "1af98cc45e98a7e041b01cf35f462b7562281351c8ebf3ffa02e33a0722a1328"
    with pytest.raises(DecodeError):
        public_key_from_point(ec.SECP256R1(), bytes.fromhex(bad))
