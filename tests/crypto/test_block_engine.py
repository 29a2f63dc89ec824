"""crypto/block_engine.py against fresh ``cryptography`` contexts (and its CMAC) for every call, in any order: the
kept contexts must give exactly the outputs of new ones, whatever ran before under the same key."""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.crypto.block_engine import engine

_OPS = st.sampled_from(["ecb_enc", "ecb_dec", "cbc_enc", "cbc_dec", "cmac"])


def _fresh(algorithm: object, op: str, data: bytes, iv: bytes) -> bytes:
    if op == "cmac":
        mac = CMAC(algorithm)  # type: ignore[arg-type]
        mac.update(data)
        return mac.finalize()
    mode = modes.ECB() if op.startswith("ecb") else modes.CBC(iv)
    cipher = Cipher(algorithm, mode)  # type: ignore[arg-type]
    ctx = cipher.encryptor() if op.endswith("enc") else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _kept(kind: str, key: bytes, op: str, data: bytes, iv: bytes) -> bytes:
    e = engine(kind, key)
    return {
        "ecb_enc": lambda: e.ecb_encrypt(data),
        "ecb_dec": lambda: e.ecb_decrypt(data),
        "cbc_enc": lambda: e.cbc_encrypt(data, iv),
        "cbc_dec": lambda: e.cbc_decrypt(data, iv),
        "cmac": lambda: e.cmac(data),
    }[op]()


@given(
    key=st.sampled_from([bytes(range(16)), bytes(range(32)), bytes(range(24))]),
    steps=st.lists(st.tuples(_OPS, st.integers(0, 5), st.binary(min_size=16, max_size=16), st.binary()), max_size=8),
)
def test_aes_matches_fresh_contexts(key: bytes, steps: list[tuple[str, int, bytes, bytes]]) -> None:
    for op, blocks, iv, raw in steps:
        data = raw if op == "cmac" else (raw * 80)[: 16 * blocks] if raw else bytes(16 * blocks)
        assert _kept("aes", key, op, data, iv) == _fresh(algorithms.AES(key), op, data, iv)


@given(
    key=st.binary(min_size=24, max_size=24),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["ecb_enc", "ecb_dec", "cbc_enc", "cbc_dec"]),
            st.integers(0, 5),
            st.binary(min_size=8, max_size=8),
        ),
        max_size=8,
    ),
)
def test_des3_matches_fresh_contexts(key: bytes, steps: list[tuple[str, int, bytes]]) -> None:
    for op, blocks, iv in steps:
        data = bytes(range(8 * blocks))
        assert _kept("des3", key, op, data, iv) == _fresh(TripleDES(key), op, data, iv)
