"""ISO/IEC 9797-1 padding method 2: append 80, then 00 up to a multiple of the block size."""

from __future__ import annotations

from gpchannel.errors import DecodeError

__all__ = ["pad80", "unpad80"]


def pad80(data: bytes, block_size: int = 8) -> bytes:
    """Pad ``data`` with 80 00... to a multiple of ``block_size`` (always at least one byte is added)."""
    n = len(data) + 1
    return data + b"\x80" + b"\x00" * (-n % block_size)


def unpad80(data: bytes, block_size: int = 8) -> bytes:
    """Remove ISO 9797-1 method 2 padding; raises :class:`DecodeError` when it is absent or malformed."""
    if not data or len(data) % block_size:
        raise DecodeError(f"padded data must be a non-empty multiple of {block_size} bytes, got {len(data)}")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= block_size:
        raise DecodeError("ISO 9797-1 method 2 padding (80 00..) not found", offset=len(stripped))
    return stripped[:-1]
