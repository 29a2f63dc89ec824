"""Small virtual cards for the I/O tests and the PC/SC benchmark (VirtualCard implementations)."""

from __future__ import annotations

import threading

__all__ = ["ATR_T0", "ATR_T1", "EchoCard"]

ATR_T0 = bytes.fromhex("3B021450")
"""TS 3B, T0 02 (no interface bytes: T=0 only, ISO 7816-3 8.2.3), 2 historical bytes."""

ATR_T1 = bytes.fromhex("3B80800101")
"""TS 3B, T0 80, TD1 80, TD2 01 (T=1), no historical bytes, TCK 01 (XOR of T0..TD2, ISO 7816-3 8.2.5)."""


class EchoCard:
    """Answers SELECT with 9000 and echoes the data of any other command; records what it saw.

    INS CA answers ``long_size`` bytes (0..n-1 mod 256) through 61xx and GET RESPONSE (ISO 7816-4 5.6, at most
    ``chunk`` bytes per answer); INS B0 wants Le = 8 exactly and answers 6C08 otherwise; INS EE raises.
    With a T=0 ATR, a command with data and no Le is answered 61xx, as a T=0 card does for case 4.
    """

    def __init__(self, atr: bytes = ATR_T1, long_size: int = 600, chunk: int = 256) -> None:
        self._atr = atr
        self.long_size = long_size
        self.chunk = chunk
        self.seen: list[bytes] = []
        self.controls: list[str] = []
        self._pending = b""
        self._lock = threading.Lock()

    def atr(self) -> bytes:
        self.controls.append("atr")
        return self._atr

    def power_on(self) -> None:
        self.controls.append("on")

    def power_off(self) -> None:
        self.controls.append("off")

    def reset(self) -> None:
        self.controls.append("reset")

    def _more(self, le: int) -> bytes:
        n = min(le, self.chunk, len(self._pending))
        out, self._pending = self._pending[:n], self._pending[n:]
        if self._pending:
            return out + bytes((0x61, min(len(self._pending), 256) & 0xFF))
        return out + b"\x90\x00"

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            self.seen.append(apdu)
            ins = apdu[1]
            data = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
            le = 0
            if len(apdu) == 5 or (len(apdu) > 5 and len(apdu) > 5 + apdu[4]):
                le = apdu[-1] or 256
            if ins == 0xEE:
                raise RuntimeError("the test card fails on purpose")
            if ins == 0xA4:
                return b"\x90\x00"
            if ins == 0xC0:
                return self._more(le) if self._pending else b"\x6f\x00"
            if ins == 0xCA:
                self._pending = bytes(i & 0xFF for i in range(self.long_size))
                if not self._pending:
                    return b"\x90\x00"
                return bytes((0x61, min(len(self._pending), 256) & 0xFF))
            if ins == 0xB0:
                return bytes(range(8)) + b"\x90\x00" if le == 8 else b"\x6c\x08"
            if data and not le and self._atr == ATR_T0:
                self._pending = data
                return bytes((0x61, len(data)))
            return data + b"\x90\x00"
