"""Generate tests/vectors/scp02/selfmade.json: SCP02 traces that no external source covers.

Implicit initiation (i=1A, 0B), R-MAC from EXTERNAL AUTHENTICATE (i=55, level 13, with C-DECRYPTION and the
pseudo-random card challenge) and BEGIN / END R-MAC SESSION (explicit i=15 on logical channel 5; implicit i=0B on
channel 1).

This is an independent re-implementation written straight from GP Card Specification 2.2.1 Appendix E (2.3.1 E.3.2
for the first R-MAC ICV of a BEGIN R-MAC SESSION in explicit mode) and B.1.2.2, using only the ``cryptography``
primitives (TripleDES / single DES, ECB and CBC); it shares no code with gpchannel. The retail MAC is written as
single-DES CBC over every block followed by DES-decrypt (K2) / DES-encrypt (K1) of the final value, a different
formulation from gpchannel's. Run from the repository root::

    .venv/bin/python tests/vectors/scp02/make_selfmade.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

OUT = Path(__file__).parent / "selfmade.json"
SOURCE = "gpchannel: tests/vectors/scp02/make_selfmade.py (independent generator from GP 2.2.1 Appendix E)"


def _ecb(key24: bytes, data: bytes, decrypt: bool = False) -> bytes:
    c = Cipher(TripleDES(key24), modes.ECB())
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


def _tdes_cbc(key16: bytes, data: bytes, decrypt: bool = False) -> bytes:
    c = Cipher(TripleDES(key16 + key16[:8]), modes.CBC(bytes(8)))
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


def _des(key8: bytes, block: bytes, decrypt: bool = False) -> bytes:
    return _ecb(key8 * 3, block, decrypt)


def _pad(data: bytes) -> bytes:
    out = data + b"\x80"
    while len(out) % 8:
        out += b"\x00"
    return out


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def retail(key: bytes, data: bytes, icv: bytes = bytes(8)) -> bytes:
    """B.1.2.2: single DES CBC with K1 over all blocks, then D(K2) and E(K1) on the result."""
    h = icv
    padded = _pad(data)
    for i in range(0, len(padded), 8):
        h = _des(key[:8], _xor(h, padded[i : i + 8]))
    return _des(key[:8], _des(key[8:16], h, decrypt=True))


def full_mac(key: bytes, data: bytes) -> bytes:
    """B.1.2.1: 3DES CBC MAC, ICV zero."""
    return _tdes_cbc(key, _pad(data))[-8:]


def session_key(static: bytes, constant: str, seq: int) -> bytes:
    return _tdes_cbc(static, bytes.fromhex(constant) + seq.to_bytes(2, "big") + bytes(12))


class Side:
    """One session's state, spelled out (keys, ICVs) as the spec describes it."""

    def __init__(self, case: dict[str, Any]) -> None:
        self.i = int(case["i"], 16)
        enc, mac, dek = (bytes.fromhex(case[k]) for k in ("enc", "mac", "dek"))
        if not self.i & 0x01:  # one base key
            mac = dek = enc
        self.enc, self.mac, self.dek = enc, mac, dek
        self.aid = bytes.fromhex(case["aid"])
        self.seq = int(case["sequence_counter"], 16)
        self.channel = case.get("channel", 0)
        self.cmac_key = session_key(mac, "0101", self.seq)
        self.enc_s = session_key(enc, "0182", self.seq)
        self.rmac_s = session_key(mac, "0102", self.seq)
        self.icv = bytes(8)
        self.first = True
        self.rmac_key: bytes | None = None
        self.ricv = b""
        self.r_every = False
        self.level = 0
        self.ea_mac = b""

    def cla(self, base: int, sm: bool) -> int:
        ch: int = self.channel
        if ch <= 3:
            return base | (0x04 if sm else 0) | ch
        return base | 0x40 | (0x20 if sm else 0) | (ch - 4)

    def cmac(self, cla0: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
        icv = self.icv
        if not self.first and self.i & 0x10:
            icv = _des(self.cmac_key[:8], icv)
        if self.i & 0x02:  # unmodified APDU
            block = bytes((cla0, ins, p1, p2)) + (bytes((len(data),)) + data if data else b"")
        else:
            block = bytes((cla0 | 0x04, ins, p1, p2, len(data) + 8)) + data
        m = retail(self.cmac_key, block, icv)
        self.icv, self.first = m, False
        return m

    def wire(self, cla0: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        """The wrapped command on the wire at the current level (C-MAC always with implicit initiation)."""
        tail = b"" if le is None else bytes((le & 0xFF,))
        if not self.level & 0x01:
            body = bytes((len(data),)) + data if data else b""
            return bytes((self.cla(cla0 & 0x80, False), ins, p1, p2)) + body + tail
        m = self.cmac(cla0, ins, p1, p2, data)
        if self.level & 0x02 and data:
            data = _tdes_cbc(self.enc_s, _pad(data))
        field = data + m
        return bytes((self.cla(cla0 & 0x80, True), ins, p1, p2, len(field))) + field + tail

    def rmac(self, cla0: int, ins: int, p1: int, p2: int, data: bytes, rdata: bytes, sw: bytes) -> bytes:
        assert self.rmac_key is not None
        ok = sw == b"\x90\x00" or sw[0] in (0x61, 0x62, 0x63)
        block = bytes((cla0, ins, p1, p2, len(data))) + data
        block += (bytes((len(rdata),)) + rdata if ok else b"\x00") + sw
        self.ricv = retail(self.rmac_key, block, self.ricv)
        return self.ricv


def _h(b: bytes) -> str:
    return b.hex().upper()


def _cmd(text: str) -> tuple[int, int, int, int, bytes, int | None]:
    raw = bytes.fromhex(text)
    cla, ins, p1, p2 = raw[:4]
    rest = raw[4:]
    if not rest:
        return cla, ins, p1, p2, b"", None
    if len(rest) == 1:
        return cla, ins, p1, p2, b"", rest[0] or 256
    lc = rest[0]
    data = rest[1 : 1 + lc]
    le = (rest[1 + lc] or 256) if len(rest) == lc + 2 else None
    return cla, ins, p1, p2, data, le


def run(case: dict[str, Any]) -> dict[str, Any]:
    s = Side(case)
    expected: dict[str, Any] = {}
    explicit = bool(s.i & 0x04)
    if explicit:
        hc = bytes.fromhex(case["host_challenge"])
        enc_s = s.enc_s
        if s.i & 0x40:
            cc = retail(s.cmac_key, s.aid)[:6]
        else:
            cc = bytes.fromhex(case["card_challenge"])
        seq2 = s.seq.to_bytes(2, "big")
        card_crypto = full_mac(enc_s, hc + seq2 + cc)
        kdd = bytes.fromhex(case["kdd"])
        expected["initialize_update_resp"] = _h(kdd + bytes((case["kvn"], 2)) + seq2 + cc + card_crypto) + "9000"
        host_crypto = full_mac(enc_s, seq2 + cc + hc)
        level = int(case["level"], 16)
        ea_mac = s.cmac(0x80, 0x82, level, 0, host_crypto)
        s.ea_mac = ea_mac
        expected["external_authenticate"] = _h(bytes((s.cla(0x80, True), 0x82, level, 0, 16)) + host_crypto + ea_mac)
        s.level = level
        if level & 0x10:
            s.rmac_key, s.ricv, s.r_every = s.rmac_s, ea_mac, True
        s.seq += 1  # the card counts the verified EXTERNAL AUTHENTICATE (E.1.2)
        dek_seq = s.seq - 1
        s_seq_keys = s.seq - 1
    else:
        s.level = 0x01
        dek_seq = s.seq + 1
        s_seq_keys = s.seq
        s.icv = retail(s.cmac_key, s.aid)  # E.3.3, not encrypted (first ICV)
    opened = explicit
    steps_out = []
    for step in case["steps"]:
        if step["op"] == "wrap":
            cla, ins, p1, p2, data, le = _cmd(step["apdu"])
            cla0 = cla & 0x80
            wire = s.wire(cla0, ins, p1, p2, data, le)
            if not opened:
                s.seq += 1  # implicit: the first verified C-MAC opens the session and counts
                opened = True
            resp = bytes.fromhex(step["response"])
            rdata, sw = resp[:-2], resp[-2:]
            ok = sw == b"\x90\x00" or sw[0] in (0x61, 0x62, 0x63)
            wire_resp = resp if ok else sw
            if s.rmac_key is not None:
                r = s.rmac(cla0, ins, p1, p2, data, rdata, sw)
                if s.r_every and ok:
                    wire_resp = rdata + r + sw
            steps_out.append({"wire_cmd": _h(wire), "wire_resp": _h(wire_resp)})
        elif step["op"] == "begin_rmac":
            payload = bytes.fromhex(step["data"])
            p1 = 0x10 if step["every_response"] else 0x00
            data = bytes((len(payload),)) + payload
            wire = s.wire(0x80, 0x7A, p1, 0x01, data, None)
            s.rmac_key = session_key(s.mac, "0102", s.seq)  # the counter current at R-MAC start (E.4.1)
            # First R-MAC ICV: the EXTERNAL AUTHENTICATE C-MAC (2.3.1 E.3.2), else the R-MAC over the AID (E.3.3)
            s.ricv = s.ea_mac if explicit else retail(s.rmac_key, s.aid)
            s.rmac(0x80, 0x7A, p1, 0x01, data, b"", b"\x90\x00")  # the BEGIN pair is covered (E.4.5)
            s.r_every = p1 == 0x10
            steps_out.append({"wire_cmd": _h(wire), "wire_resp": "9000"})
        else:
            p2 = 0x03 if step["end"] else 0x01
            wire = s.wire(0x80, 0x78, 0x00, p2, b"", 256)
            steps_out.append({"wire_cmd": _h(wire), "wire_resp": _h(s.ricv) + "9000"})
            if step["end"]:
                s.rmac_key, s.r_every = None, False
    expected["steps"] = steps_out
    expected["final_sequence_counter"] = f"{s.seq:04X}"
    dek_s = session_key(s.dek, "0181", dek_seq)
    key = bytes.fromhex(case["key_to_encrypt"])
    expected["key_cryptogram"] = _h(_ecb(dek_s + dek_s[:8], key) if explicit else _tdes_cbc(dek_s, key))
    expected["session_key_sequence_counter"] = f"{s_seq_keys:04X}"
    return expected


KEYS3 = {
    "enc": "404142434445464748494A4B4C4D4E4F",
    "mac": "505152535455565758595A5B5C5D5E5F",
    "dek": "606162636465666768696A6B6C6D6E6F",
}
ISD = "A000000151000000"

CASES: list[dict[str, Any]] = [
    {
        "name": "implicit i=1A, one base key, ICV encryption, unmodified APDU",
        "i": "1A",
        **{k: KEYS3["enc"] for k in ("enc", "mac", "dek")},
        "aid": ISD,
        "sequence_counter": "0041",
        "key_to_encrypt": "000102030405060708090A0B0C0D0E0F",
        "steps": [
            {"op": "wrap", "apdu": "80F22002024F0000", "response": "E3054F03A000009000"},
            {"op": "wrap", "apdu": "80CA006600", "response": "66039F01029000"},
            {"op": "wrap", "apdu": "80F28002024F00", "response": "6A88"},
            {"op": "wrap", "apdu": "80F28002", "response": "9000"},
        ],
    },
    {
        "name": "implicit i=0B, three keys, logical channel 1, BEGIN R-MAC SESSION P1=00 then END (P2=03)",
        "i": "0B",
        **KEYS3,
        "aid": "A0000000030000",
        "channel": 1,
        "sequence_counter": "00FF",
        "key_to_encrypt": "0F0E0D0C0B0A09080706050403020100",
        "steps": [
            {"op": "wrap", "apdu": "81CA9F7F00", "response": "9F7F2A4090517C9000"},
            {"op": "begin_rmac", "data": "0102030405060708", "every_response": False},
            {"op": "wrap", "apdu": "81F24000024F0000", "response": "AABB9000"},
            {"op": "wrap", "apdu": "81E60C0003010203", "response": "6985"},
            {"op": "end_rmac", "end": True},
            {"op": "wrap", "apdu": "81CA006600", "response": "66009000"},
        ],
    },
    {
        "name": "explicit i=55 (pseudo-random challenge), level 13: C-DECRYPTION, C-MAC and R-MAC",
        "i": "55",
        **KEYS3,
        "aid": ISD,
        "kvn": 0x21,
        "kdd": "00010203040506070809",
        "level": "13",
        "host_challenge": "0011223344556677",
        "sequence_counter": "002A",
        "key_to_encrypt": "8899AABBCCDDEEFF0011223344556677",
        "steps": [
            {"op": "wrap", "apdu": "80E602001507A00000015100000008A00000015100000000000000", "response": "009000"},
            {"op": "wrap", "apdu": "80F24000024F0000", "response": "08A000000003000000019E9000"},
            {"op": "wrap", "apdu": "80E40080094F07D0D1D2D3D4D501", "response": "6A88"},
            {"op": "wrap", "apdu": "80CA006600", "response": "6310"},
        ],
    },
    {
        "name": "explicit i=15, level 01, logical channel 5, BEGIN R-MAC SESSION P1=10, END P2=01 then P2=03",
        "i": "15",
        **KEYS3,
        "aid": ISD,
        "channel": 5,
        "kvn": 0x01,
        "kdd": "99887766554433221100",
        "level": "01",
        "host_challenge": "F0E1D2C3B4A59687",
        "card_challenge": "0A0B0C0D0E0F",
        "sequence_counter": "1234",
        "key_to_encrypt": "404142434445464748494A4B4C4D4E4F",
        "steps": [
            {"op": "wrap", "apdu": "C1F24000024F0000", "response": "E3054F03A000009000"},
            {"op": "begin_rmac", "data": "", "every_response": True},
            {"op": "wrap", "apdu": "C1CA006600", "response": "6600019000"},
            {"op": "wrap", "apdu": "C1E40080024F00", "response": "6A88"},
            {"op": "end_rmac", "end": False},
            {"op": "wrap", "apdu": "C1F28002024F0000", "response": "61109000"},
            {"op": "end_rmac", "end": True},
            {"op": "wrap", "apdu": "C1F22002", "response": "9000"},
        ],
    },
]


def main() -> None:
    out = []
    for case in CASES:
        inputs = {k: v for k, v in case.items() if k != "name"}
        out.append(
            {
                "source": SOURCE,
                "kind": "scp02-selfmade-trace",
                "inputs": inputs,
                "expected": run(case),
                "notes": case["name"],
            }
        )
    OUT.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
