"""ISO/IEC 9797-1:2011 padding method 2 (6.3.3): append 80, then 00 up to a multiple of the block size.

GlobalPlatform uses it for DES (8-byte blocks: GP 2.3.1, B.1.3) and AES (16-byte blocks: GP 2.3.1, B.2.3;
Amendment D v1.1.1, 4.1.4).
"""

from __future__ import annotations

from gpchannel.errors import DecodeError

__all__ = ["pad80", "unpad80"]


def _check_block_size(block_size: int) -> None:
    if not 1 <= block_size <= 255:
        raise ValueError(f"block_size must be 1..255, got {block_size}")


def pad80(data: bytes, block_size: int = 8) -> bytes:
    """Pad ``data`` with 80 00... to a multiple of ``block_size`` (always at least one byte is added)."""
    if not 1 <= block_size <= 255:  # _check_block_size, inline: on every protected command
        _check_block_size(block_size)
    n = len(data) + 1
    return data + b"\x80" + b"\x00" * (-n % block_size)


def unpad80(data: bytes, block_size: int = 8) -> bytes:
    """Remove ISO 9797-1 method 2 padding; raises :class:`DecodeError` when it is absent or malformed."""
    if not 1 <= block_size <= 255:
        _check_block_size(block_size)
    if not data or len(data) % block_size:
        raise DecodeError(f"padded data must be a non-empty multiple of {block_size} bytes, got {len(data)}")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= block_size:
        raise DecodeError("ISO 9797-1 method 2 padding (80 00..) not found", offset=len(stripped))
    return stripped[:-1]
