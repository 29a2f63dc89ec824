"""The SCP02 checker of recorded sessions (GP 2.2.1, Appendix E; explicit initiation): see
:mod:`gpchannel.trace.verifiers` for what a checker does. Built on :mod:`gpchannel.scp.scp02`'s functions."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import DecodeError
from gpchannel.scp import scp02
from gpchannel.scp.common import InitializeUpdateResponse, ScpProtocol, SecurityLevel
from gpchannel.trace.verifiers import Checker, Failure, Mismatch, ea_parts, plain_cla, secured, security_level

__all__ = ["Scp02Checker"]

_ZERO8 = bytes(8)


# -- SCP02 (GP 2.2.1, Appendix E), explicit initiation ---------------------------------------------------------


@dataclass(slots=True)
class _Scp02State:
    i: int
    keys: StaticKeys = field(repr=False)
    session: scp02.Scp02SessionKeys = field(repr=False)
    c_chain: scp02.CommandMacChain = field(repr=False)
    r_chain: scp02.ResponseMacChain | None = field(default=None, repr=False)
    ea_mac: bytes = field(default=_ZERO8, repr=False)
    previous_icv: bytes = field(default=_ZERO8, repr=False)
    previous_first: bool = True
    last: CommandApdu | None = None
    begin_every_response: bool = True
    end_closes: bool = True


class Scp02Checker(Checker):
    """SCP02 explicit initiation: cryptograms E.4.2, C-MAC E.4.4, C-DEC E.4.6, R-MAC E.4.5 and E.5.3/E.5.4.

    The i parameter is not on the wire: without one given, the candidates are three keys or one (b1) and ICV
    encryption or not (b5), each kept while it verifies; b7 (pseudo-random challenge) changes no check.
    """

    protocol = ScpProtocol.SCP02

    def __init__(self, keys: StaticKeys, host_challenge: bytes, parsed: InitializeUpdateResponse, i: int | None):
        scp02.check_keys(keys)
        if i is not None:
            scp02.check_i_param(i)
            if not scp02.is_explicit(i):
                raise Mismatch(Failure.UNSUPPORTED, f"SCP02 i={i:02X} is implicit initiation; the trace has none")
        assert parsed.sequence_counter is not None
        self.parsed = parsed
        self.host_challenge = host_challenge
        self.counter = int.from_bytes(parsed.sequence_counter, "big")
        self.states: list[_Scp02State] = []
        for candidate in [i] if i is not None else [0x55, 0x45, 0x54, 0x44]:
            session = scp02.derive_session_keys(keys, candidate, self.counter)
            chain = scp02.CommandMacChain(session.c_mac, encrypt=bool(candidate & scp02.I_ICV_ENCRYPTION))
            self.states.append(_Scp02State(candidate, keys, session, chain))

    @property
    def i_param(self) -> int | None:
        return self.states[0].i

    def _keep(self, states: list[_Scp02State], failure: Failure, explanation: str) -> None:
        if not states:
            raise Mismatch(failure, explanation)
        self.states = states

    def check_card_cryptogram(self) -> None:
        cc = self.parsed.card_challenge
        self._keep(
            [
                s
                for s in self.states
                if constant_time_equal(
                    scp02.card_cryptogram(s.session.enc, self.host_challenge, self.counter, cc),
                    self.parsed.card_cryptogram,
                )
            ],
            Failure.CARD_CRYPTOGRAM,
            "the card cryptogram does not verify (E.4.2.1)",
        )

    def external_authenticate(self, command: CommandApdu) -> None:
        cryptogram, mac = ea_parts(command, 8)
        cc = self.parsed.card_challenge
        good = [
            s
            for s in self.states
            if constant_time_equal(
                scp02.host_cryptogram(s.session.enc, self.host_challenge, self.counter, cc), cryptogram
            )
        ]
        self._keep(good, Failure.HOST_CRYPTOGRAM, "the host cryptogram does not verify (E.4.2.2)")
        plain = command.with_changes(cla=plain_cla(command.cla), data=cryptogram)
        good = [
            s for s in self.states if constant_time_equal(s.c_chain.compute(scp02.command_mac_input(plain, s.i)), mac)
        ]
        self._keep(good, Failure.C_MAC, "the C-MAC of EXTERNAL AUTHENTICATE (zero ICV) does not verify (E.4.4)")
        self.level = security_level(command, scp02.LEVELS)
        for s in self.states:
            s.c_chain.advance(mac)
            s.ea_mac = mac
            if SecurityLevel.R_MAC in self.level:
                s.r_chain = scp02.ResponseMacChain(s.session.r_mac, mac)
        self.counter += 1  # the card increments its counter once the session opens (E.1.2.1)

    def command(self, command: CommandApdu) -> CommandApdu:
        if not secured(command, self.level):
            for s in self.states:
                s.last = command
            return command
        if len(command.data) < 8:
            raise Mismatch(Failure.C_MAC, f"a secured command with {len(command.data)} data bytes has no C-MAC")
        data, mac = command.data[:-8], command.data[-8:]
        good: list[tuple[_Scp02State, CommandApdu]] = []
        decrypt_error = None
        for s in self.states:
            clear = data
            if SecurityLevel.C_DECRYPTION in self.level and data:
                try:
                    clear = scp02.decrypt_command_data(s.session.enc, data)
                except DecodeError as exc:
                    decrypt_error = str(exc)
                    continue
            plain = command.with_changes(cla=plain_cla(command.cla), data=clear)
            if constant_time_equal(s.c_chain.compute(scp02.command_mac_input(plain, s.i)), mac):
                good.append((s, plain))
        if not good:
            if decrypt_error is not None:
                raise Mismatch(Failure.DECRYPTION, f"the command data does not decrypt (E.4.6): {decrypt_error}")
            self._diagnose_chain(command, data, mac)
            raise Mismatch(Failure.C_MAC, "the C-MAC does not verify (E.4.4)")
        self.states = [s for s, _ in good]
        for s, plain in good:
            s.previous_icv, s.previous_first = s.c_chain.icv, s.c_chain.first
            s.c_chain.advance(mac)
            s.last = plain
            if plain.ins == scp02.INS_BEGIN_R_MAC_SESSION:
                s.begin_every_response = plain.p1 == 0x10
            elif plain.ins == scp02.INS_END_R_MAC_SESSION:
                s.end_closes = plain.p2 == 0x03
        return good[0][1]

    def _diagnose_chain(self, command: CommandApdu, data: bytes, mac: bytes) -> None:
        for s in self.states:
            plain = command.with_changes(cla=plain_cla(command.cla), data=data)
            mac_input = scp02.command_mac_input(plain, s.i)
            encrypt = bool(s.i & scp02.I_ICV_ENCRYPTION)
            key = s.c_chain.key
            alternatives = (
                (scp02.CommandMacChain(key), "a zero ICV"),
                (
                    scp02.CommandMacChain(key, s.previous_icv, encrypt, s.previous_first),
                    "the C-MAC before the previous",
                ),
                (scp02.CommandMacChain(key, s.c_chain.icv, not encrypt, False), "the other ICV encryption"),
            )
            for chain, what in alternatives:
                if constant_time_equal(chain.compute(mac_input), mac):
                    raise Mismatch(
                        Failure.WRONG_CHAINING,
                        f"the C-MAC verifies only with {what}: the host chained wrong; the ICV is the previous "
                        f"C-MAC{', DES-encrypted' if s.i & scp02.I_ICV_ENCRYPTION else ''} (E.3.4, i={s.i:02X})",
                    )

    def response(self, response: ResponseApdu) -> ResponseApdu:
        out: ResponseApdu | None = None
        error: Mismatch | None = None
        good = []
        for s in self.states:
            try:
                plain = self._response(s, response)
            except Mismatch as exc:
                error = exc
                continue
            good.append(s)
            out = out or plain
        if out is None:
            assert error is not None
            raise error
        self.states = good
        return out

    def _response(self, s: _Scp02State, response: ResponseApdu) -> ResponseApdu:
        command = s.last
        if command is None:
            return response
        if command.ins == scp02.INS_BEGIN_R_MAC_SESSION and s.r_chain is None:
            if response.sw == 0x9000:
                key = scp02.r_mac_key(s.keys, s.i, self.counter)
                chain = scp02.ResponseMacChain(key, s.ea_mac, s.begin_every_response)
                chain.advance(chain.compute(command, response))
                s.r_chain = chain
            return response
        if command.ins == scp02.INS_END_R_MAC_SESSION and s.r_chain is not None:
            if response.sw == 0x9000:
                if not constant_time_equal(response.data, s.r_chain.icv):
                    raise Mismatch(Failure.R_MAC, "the R-MAC returned by END R-MAC SESSION does not verify (E.5.4)")
                if s.end_closes:
                    s.r_chain = None
            return response
        if s.r_chain is None:
            return response
        body = response.data
        if not s.r_chain.every_response:
            s.r_chain.advance(s.r_chain.compute(command, response))
            return response
        if response.is_success or response.sw1 == 0x61:
            if len(body) < 8:
                raise Mismatch(Failure.R_MAC, f"the response has {len(body)} data bytes; the R-MAC alone is 8")
            body, rmac = body[:-8], body[-8:]
            expected = s.r_chain.compute(command, ResponseApdu(body, response.sw))
            if not constant_time_equal(expected, rmac):
                raise Mismatch(Failure.R_MAC, "the R-MAC does not verify (E.4.5)")
            s.r_chain.advance(expected)
            return ResponseApdu(body, response.sw)
        expected = s.r_chain.compute(command, ResponseApdu(b"", response.sw))
        if body and not (len(body) == 8 and constant_time_equal(expected, body)):
            raise Mismatch(Failure.R_MAC, f"status {response.sw:04X} came with data that no R-MAC protects (E.4.5)")
        s.r_chain.advance(expected)
        return ResponseApdu(b"", response.sw)
