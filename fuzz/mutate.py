"""Mutations of byte strings: bit flips, byte changes, inserts, deletes, length-field tweaks, truncation,
splicing with another seed, and TLV-aware edits (a BER-TLV header's tag or length changed, a TLV duplicated or
dropped). Each takes its randomness from the ``random.Random`` it is given, and nothing else."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

__all__ = ["INTERESTING", "mutate"]

INTERESTING = (0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0xFE, 0xFF, 0x10, 0x20, 0x40)
"""Byte values that sit on length-coding and sign boundaries (BER 7F/80/81/82, one-byte wrap)."""

Mutation = Callable[[random.Random, bytearray, Sequence[bytes]], None]


def _pos(rng: random.Random, data: bytearray, extra: int = 0) -> int:
    return rng.randrange(len(data) + extra) if len(data) + extra > 0 else 0


def _bit_flip(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    if data:
        data[_pos(rng, data)] ^= 1 << rng.randrange(8)


def _byte_set(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    if data:
        data[_pos(rng, data)] = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256)


def _byte_add(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    if data:
        at = _pos(rng, data)
        data[at] = (data[at] + rng.choice((-2, -1, 1, 2))) & 0xFF


def _insert(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    at = _pos(rng, data, 1)
    count = rng.choice((1, 1, 2, 4, rng.randrange(1, 64)))
    if rng.random() < 0.5:
        data[at:at] = bytes(rng.randrange(256) for _ in range(count))
    else:
        data[at:at] = bytes(rng.choice(INTERESTING) for _ in range(count))


def _delete(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    if data:
        at = _pos(rng, data)
        del data[at : at + rng.choice((1, 1, 2, 4, rng.randrange(1, 32)))]


def _truncate(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    if data:
        del data[_pos(rng, data) :]


def _duplicate(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    if data:
        at = _pos(rng, data)
        chunk = data[at : at + rng.randrange(1, 33)]
        data[at:at] = chunk * rng.choice((1, 1, 2, 8))


def _splice(rng: random.Random, data: bytearray, pool: Sequence[bytes]) -> None:
    other = rng.choice(pool) if pool else b""
    if not other:
        return
    start = rng.randrange(len(other))
    piece = other[start : start + rng.randrange(1, len(other) - start + 1)]
    at = _pos(rng, data, 1)
    if rng.random() < 0.5:
        data[at:] = piece
    else:
        data[at:at] = piece


def _length_tweak(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    """Change a byte that reads as a length of what follows it (one or two bytes, big-endian)."""
    if len(data) < 2:
        return
    candidates = [i for i in range(len(data) - 1) if data[i] in (len(data) - i - 1, len(data) - i - 2)]
    at = rng.choice(candidates) if candidates and rng.random() < 0.7 else _pos(rng, data)
    data[at] = rng.choice((0x00, 0x7F, 0x80, 0x81, 0x82, 0xFF, (data[at] + 1) & 0xFF, (data[at] - 1) & 0xFF))


def _tlv_headers(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, header length, value length) of the BER-TLVs found walking ``data`` from several starts."""
    found: list[tuple[int, int, int]] = []
    for start in range(min(len(data), 8)):
        at = start
        while at + 2 <= len(data) and len(found) < 64:
            tag_len = 1
            if data[at] & 0x1F == 0x1F:
                while at + tag_len < len(data) and data[at + tag_len] & 0x80:
                    tag_len += 1
                tag_len += 1
            if at + tag_len >= len(data):
                break
            first = data[at + tag_len]
            if first < 0x80:
                length, size = first, 1
            elif first in (0x81, 0x82) and at + tag_len + first - 0x7F < len(data):
                size = first - 0x7F
                length = int.from_bytes(data[at + tag_len + 1 : at + tag_len + size], "big")
            else:
                break
            header = tag_len + size
            if at + header + length > len(data):
                break
            found.append((at, header, length))
            if data[at] & 0x20:  # constructed: also walk inside
                at += header
            else:
                at += header + length
    return found


def _tlv_edit(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> None:
    headers = _tlv_headers(bytes(data))
    if not headers:
        _length_tweak(rng, data, ())
        return
    at, header, length = rng.choice(headers)
    action = rng.randrange(6)
    if action == 0:  # the length byte off by a little or a lot
        data[at + header - 1] = rng.choice(
            ((data[at + header - 1] + 1) & 0xFF, (data[at + header - 1] - 1) & 0xFF, 0x80, 0x84, 0xFF)
        )
    elif action == 1:  # another tag
        data[at] = rng.choice((0x00, 0x1F, 0xFF, data[at] ^ 0x20, rng.randrange(256)))
    elif action == 2:  # duplicate the TLV
        data[at:at] = data[at : at + header + length]
    elif action == 3:  # drop the TLV
        del data[at : at + header + length]
    elif action == 4:  # long-form length where short would do (81 xx)
        if header >= 2 and data[at + header - 1] < 0x80:
            data[at + header - 1 : at + header] = bytes((0x81, data[at + header - 1]))
    else:  # empty the value
        del data[at + header : at + header + length]
        data[at + header - 1] = 0


MUTATIONS: tuple[Mutation, ...] = (
    _bit_flip,
    _bit_flip,
    _byte_set,
    _byte_add,
    _insert,
    _delete,
    _truncate,
    _duplicate,
    _splice,
    _length_tweak,
    _tlv_edit,
    _tlv_edit,
)


def mutate(rng: random.Random, seed: bytes, pool: Sequence[bytes], *, max_size: int = 4096) -> bytes:
    """One to eight stacked mutations of ``seed``; ``pool`` is what splicing draws from."""
    data = bytearray(seed)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        rng.choice(MUTATIONS)(rng, data, pool)
    return bytes(data[:max_size])
