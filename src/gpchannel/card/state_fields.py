"""Typed reading of the card state's JSON form (card/state.py): every error names the field."""

from __future__ import annotations

from typing import Any

from gpchannel.errors import DecodeError

__all__ = ["Fields", "hex_text"]


def hex_text(value: bytes) -> str:
    return value.hex().upper()


class Fields:
    """Typed access to one JSON object, with errors that name the field."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict):
            raise DecodeError(f"{where}: expected an object, got {type(raw).__name__}")
        self.raw: dict[str, Any] = raw
        self.where = where

    def _get(self, key: str, default: object) -> object:
        if key not in self.raw:
            if default is _REQUIRED:
                raise DecodeError(f"{self.where}.{key}: missing")
            return default
        return self.raw[key]

    def hex(self, key: str, default: object = None, sizes: tuple[int, ...] | None = None) -> bytes:
        value = self._get(key, _REQUIRED if default is None else default)
        if isinstance(value, bytes):
            return value
        if not isinstance(value, str):
            raise DecodeError(f"{self.where}.{key}: expected a hex string")
        try:
            out = bytes.fromhex(value)
        except ValueError:
            raise DecodeError(f"{self.where}.{key}: {value!r} is not hex") from None
        if sizes is not None and len(out) not in sizes:
            raise DecodeError(f"{self.where}.{key}: {len(out)} bytes, expected {sizes}")
        return out

    def num(self, key: str, default: object = None, lo: int = 0, hi: int = 0xFFFFFFFF) -> int:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise DecodeError(f"{self.where}.{key}: expected an integer {lo}..{hi}, got {value!r}")
        return value

    def text(self, key: str, default: object = None) -> str:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise DecodeError(f"{self.where}.{key}: expected a string")
        return value

    def items(self, key: str) -> list[Any]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise DecodeError(f"{self.where}.{key}: expected a list")
        return value

    def obj(self, key: str) -> dict[str, Any]:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise DecodeError(f"{self.where}.{key}: expected an object")
        return value


_REQUIRED = object()
