"""The PSK-TLS engine, two engines talking in memory (server and client are separate OpenSSL SSL objects with
separate contexts; the independent peer, openssl s_client / s_server, is in test_tls_stream.py)."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpchannel.errors import TlsError, UnsupportedError
from gpchannel.io import tls_openssl
from gpchannel.io.tls_policy import PskTlsPolicy, TlsVersion
from gpchannel.io.tls_psk import PskClientContext, PskServerContext, PskTlsConnection

PSK = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
OTHER_PSK = bytes.fromhex("F0E0D0C0B0A090807060504030201000")
IDENTITY = b"8944500102030405060F"
KEYS = {IDENTITY: PSK}

ALERT = 0x15
APPLICATION_DATA = 0x17


def records(wire: bytes) -> list[tuple[int, int, bytes]]:
    """Split TLS records: (content type, version, fragment) (RFC 5246 6.2.1)."""
    out: list[tuple[int, int, bytes]] = []
    while wire:
        assert len(wire) >= 5, "partial record header"
        length = int.from_bytes(wire[3:5], "big")
        assert len(wire) >= 5 + length, "partial record"
        out.append((wire[0], int.from_bytes(wire[1:3], "big"), wire[5 : 5 + length]))
        wire = wire[5 + length :]
    return out


def pump(client: PskTlsConnection, server: PskTlsConnection) -> None:
    """Move bytes both ways until neither side has anything to send."""
    for _ in range(50):
        a = client.data_to_send()
        if a:
            server.receive(a)
        b = server.data_to_send()
        if b:
            client.receive(b)
        if not a and not b:
            return
    raise AssertionError("the engines did not settle")


DEFAULT = PskTlsPolicy()
SERVER_CONTEXT = PskServerContext(KEYS.get)


def pair(
    client_policy: PskTlsPolicy = DEFAULT,
    server_policy: PskTlsPolicy = DEFAULT,
    *,
    identity: bytes = IDENTITY,
    psk: bytes = PSK,
    keys: dict[bytes, bytes] = KEYS,
) -> tuple[PskTlsConnection, PskTlsConnection]:
    server = PskServerContext(keys.get, server_policy).connection()
    client = PskClientContext(identity, psk, client_policy).connection()
    client.start()
    return client, server


def failed_handshake(client: PskTlsConnection, server: PskTlsConnection) -> tuple[TlsError, TlsError]:
    """Run a handshake that must fail: the side that detects it raises and sends its alert, the other side
    raises on receiving that alert. Returns (error of the detecting side, error of the other side)."""
    a = client.data_to_send()
    sides = [(server, client), (client, server)]
    turn = 0
    for _ in range(20):
        receiver, sender = sides[turn % 2]
        try:
            receiver.receive(a)
        except TlsError as first:
            alert = receiver.data_to_send()
            assert records(alert)[-1][0] == ALERT, "the failing side must have an alert to send"
            with pytest.raises(TlsError) as second:
                sender.receive(alert)
            return first, second.value
        a = receiver.data_to_send()
        turn += 1
    raise AssertionError("the handshake did not fail")


@pytest.mark.parametrize("cipher", ["PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256"])
def test_handshake_and_data_both_ways(cipher: str) -> None:
    client, server = pair(PskTlsPolicy(ciphers=(cipher,)))
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    assert server.identity == IDENTITY
    assert server.cipher_name == client.cipher_name == cipher
    assert server.version == client.version == "TLSv1.2"
    client.write(b"POST /admin HTTP/1.1\r\n")
    pump(client, server)
    assert server.read() == b"POST /admin HTTP/1.1\r\n"
    assert server.read() == b""
    big = bytes(range(256)) * 200  # more than one record
    server.write(big)
    wire = server.data_to_send()
    assert all(kind == APPLICATION_DATA and version == 0x0303 for kind, version, _ in records(wire))
    assert len(records(wire)) == 4  # 51200 bytes in records of at most 16384 (RFC 5246 6.2.1)
    assert big[:64] not in wire
    client.receive(wire)
    assert client.read() == big


def test_server_preference_wins_over_the_client_order() -> None:
    client, server = pair(PskTlsPolicy(ciphers=("PSK-AES128-GCM-SHA256", "PSK-AES128-CBC-SHA256")))
    pump(client, server)
    assert server.cipher_name == "PSK-AES128-CBC-SHA256"  # first in the server's list (ota-notes B.1)


def test_writes_before_the_handshake_are_queued() -> None:
    client, server = pair()
    client.write(b"early")
    pump(client, server)
    assert server.read() == b"early"


def test_close_notify_then_half_close() -> None:
    client, server = pair()
    pump(client, server)
    client.write(b"last request")
    client.close()
    wire = client.data_to_send()
    assert records(wire)[-1][0] == ALERT
    server.receive(wire)
    assert server.read() == b"last request"
    assert server.peer_closed
    assert server.alert_received == "close_notify"
    server.write(b"response after the peer's close_notify")  # TLS 1.2 7.2.1 lets the other side finish
    server.close()
    client.receive(server.data_to_send())
    assert client.read() == b"response after the peer's close_notify"
    assert client.peer_closed
    with pytest.raises(TlsError):
        client.write(b"after close")
    client.receive(b"")  # TCP EOF after both close_notify: clean


def test_tcp_eof_without_close_notify_is_truncation() -> None:
    client, server = pair()
    pump(client, server)
    with pytest.raises(TlsError, match="truncation"):
        server.receive(b"")


def test_truncated_record_then_eof() -> None:
    client, server = pair()
    pump(client, server)
    client.write(b"0123456789" * 10)
    wire = client.data_to_send()
    server.receive(wire[:-7])
    assert server.read() == b""  # nothing until the record is whole
    with pytest.raises(TlsError, match="truncation"):
        server.receive(b"")


def test_tcp_eof_during_the_handshake() -> None:
    client, server = pair()
    server.receive(client.data_to_send())
    with pytest.raises(TlsError, match="during the handshake"):
        server.receive(b"")


@pytest.mark.parametrize("cipher", ["PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256"])
@pytest.mark.parametrize("where", [5, -1])  # first fragment byte (IV / nonce), last byte (MAC / tag)
def test_garbled_record_is_bad_record_mac(cipher: str, where: int) -> None:
    client, server = pair(PskTlsPolicy(ciphers=(cipher,)))
    pump(client, server)
    client.write(b"0123456789" * 10)
    wire = bytearray(client.data_to_send())
    wire[where] ^= 0x01
    with pytest.raises(TlsError) as info:
        server.receive(bytes(wire))
    assert info.value.alert == "bad_record_mac"
    assert records(server.data_to_send())[-1][0] == ALERT
    assert server.read() == b""
    with pytest.raises(TlsError):  # a failed connection stays failed
        server.receive(b"\x17\x03\x03\x00\x00")


def test_oversized_record_is_refused() -> None:
    client, server = pair()
    pump(client, server)
    with pytest.raises(TlsError) as info:
        server.receive(b"\x17\x03\x03\xff\xff" + bytes(0xFFFF))  # above 2^14 + 2048 (RFC 5246 6.2.3)
    assert info.value.alert == "record_overflow"


@pytest.mark.parametrize("cipher", ["PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256"])
def test_wrong_psk_fails_with_bad_record_mac(cipher: str) -> None:
    client, server = pair(PskTlsPolicy(ciphers=(cipher,)), psk=OTHER_PSK)
    detecting, other = failed_handshake(client, server)
    # The server cannot decrypt the client's Finished: bad_record_mac (RFC 5246 7.2.2), not decrypt_error, since
    # the record protection (MAC / AEAD tag) fails before the Finished verify_data is even compared.
    assert detecting.alert == other.alert == "bad_record_mac"
    assert server.alert_sent == "bad_record_mac"
    assert client.alert_received == "bad_record_mac"
    assert not server.handshake_complete


def test_unknown_identity_fails_with_unknown_psk_identity() -> None:
    looked_up: list[bytes] = []

    def lookup(identity: bytes) -> bytes | None:
        looked_up.append(identity)
        return None

    server = PskServerContext(lookup).connection()
    client = PskClientContext(b"nobody", PSK).connection()
    client.start()
    detecting, other = failed_handshake(client, server)
    assert looked_up == [b"nobody"]
    assert detecting.alert == other.alert == "unknown_psk_identity"  # RFC 4279 2
    assert server.identity == b"nobody"
    assert "nobody" in str(detecting)


def test_a_server_knows_the_alerts_of_its_failed_handshake_without_the_info_callback() -> None:
    """A server context has no info callback during handshakes (tls_openssl.INFO_CALLBACK): the alert it sends is
    read from its records in the clear, the alert it receives from OpenSSL's error queue, and the same callback
    reports the alerts after the handshake."""
    client, server = pair()
    server.receive(client.data_to_send())  # the ClientHello
    handshake_failure = bytes((ALERT, 3, 3, 0, 2, 2, 40))
    with pytest.raises(TlsError) as info:
        server.receive(handshake_failure)
    assert info.value.alert == "handshake_failure" and server.alert_received == "handshake_failure"
    assert server.alert_sent is None
    assert server.data_to_send()[:1] == b"\x16"  # the ServerHello flight is still there to send, nothing lost

    server = SERVER_CONTEXT.connection()
    with pytest.raises(TlsError) as info:
        server.receive(b"\x16\x03\x03\x00\x04\x63\x00\x00\x00")  # a handshake message that is no ClientHello
    wire = server.data_to_send()
    assert records(wire)[-1][0] == ALERT
    assert (info.value.alert, server.alert_sent) == (tls_openssl.plaintext_alert(wire)[0],) * 2  # type: ignore[index]


def test_plaintext_alert_stops_at_change_cipher_spec() -> None:
    alert = bytes((ALERT, 3, 3, 0, 2, 1, 0))
    assert tls_openssl.plaintext_alert(b"\x16\x03\x03\x00\x01\x0e" + alert) == ("close_notify", False)
    assert tls_openssl.plaintext_alert(b"\x14\x03\x03\x00\x01\x01" + alert) is None  # encrypted after CCS
    assert tls_openssl.plaintext_alert(alert[:6]) is None
    assert tls_openssl.plaintext_alert(bytes((ALERT, 3, 3, 0, 2, 2, 115))) == ("unknown_psk_identity", True)


def test_a_prefetched_psk_serves_its_identity_only() -> None:
    server = PskServerContext(KEYS.get).connection()
    server.use_prefetched(b"another-card", PSK)  # read differently than OpenSSL reads it: no PSK is handed out
    client = PskClientContext(IDENTITY, PSK).connection()
    client.start()
    detecting, other = failed_handshake(client, server)
    assert detecting.alert == other.alert == "internal_error"
    client, server = pair()
    server.use_prefetched(IDENTITY, PSK)
    pump(client, server)
    assert server.handshake_complete and server.identity == IDENTITY


def test_lookup_failure_is_internal_error_with_the_cause() -> None:
    def lookup(identity: bytes) -> bytes | None:
        raise RuntimeError("database unavailable")

    server = PskServerContext(lookup).connection()
    client = PskClientContext(IDENTITY, PSK).connection()
    client.start()
    detecting, other = failed_handshake(client, server)
    assert detecting.alert == other.alert == "internal_error"
    assert isinstance(detecting.__cause__, RuntimeError)


def test_null_suite_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match="allow_null"):
        PskTlsPolicy(ciphers=("PSK-NULL-SHA256",))
    null_only = PskTlsPolicy(ciphers=("PSK-NULL-SHA256",), allow_null=True)
    client, server = pair(null_only)  # default server policy
    detecting, other = failed_handshake(client, server)
    assert detecting.alert == other.alert == "handshake_failure"
    # With allow_null on both sides it works, and the data is visible on the wire (proof it really is NULL).
    client, server = pair(null_only, PskTlsPolicy.legacy(allow_null=True))
    pump(client, server)
    assert server.cipher_name == "PSK-NULL-SHA256"
    client.write(b"plaintext on the wire")
    assert b"plaintext on the wire" in client.data_to_send()


def test_null_listed_first_by_the_card_is_not_chosen_when_allowed() -> None:
    card = PskTlsPolicy(ciphers=("PSK-NULL-SHA256", "PSK-AES128-CBC-SHA256"), allow_null=True)
    client, server = pair(card, PskTlsPolicy.legacy(allow_null=True))
    pump(client, server)
    assert server.cipher_name == "PSK-AES128-CBC-SHA256"


def test_legacy_policy() -> None:
    legacy = PskTlsPolicy.legacy()
    assert legacy.min_version is TlsVersion.TLS1_0
    assert "PSK-AES128-CBC-SHA" in legacy.ciphers
    assert not any("NULL" in c for c in legacy.ciphers)
    old_card = PskTlsPolicy(
        ciphers=("PSK-AES128-CBC-SHA",), min_version=TlsVersion.TLS1_0, max_version=TlsVersion.TLS1_0
    )
    client, server = pair(old_card, legacy)
    pump(client, server)
    assert server.version == "TLSv1"
    assert server.cipher_name == "PSK-AES128-CBC-SHA"
    client.write(b"x")
    records_ = records(client.data_to_send())
    assert {version for _, version, _ in records_} == {0x0301}
    assert len(records_) == 1  # no empty record first (OpenSSL's TLS 1.0 CBC default; cards mishandle it)
    server.write(b"y")
    assert len(records(server.data_to_send())) == 1
    server.receive(b"".join(bytes([k]) + v.to_bytes(2, "big") + len(f).to_bytes(2, "big") + f for k, v, f in records_))
    assert server.read() == b"x"
    # TLS 1.1 card with the same suite.
    tls11 = PskTlsPolicy(ciphers=("PSK-AES128-CBC-SHA",), min_version=TlsVersion.TLS1_1, max_version=TlsVersion.TLS1_1)
    client, server = pair(tls11, legacy)
    pump(client, server)
    assert server.version == "TLSv1.1"
    # The default server refuses TLS 1.0.
    client, server = pair(old_card)
    detecting, _ = failed_handshake(client, server)
    assert detecting.alert == "protocol_version"


def test_max_record_plaintext_splits_records() -> None:
    small = PskTlsPolicy(max_record_plaintext=256)
    client, server = pair(PskTlsPolicy(), small)
    pump(client, server)
    server.write(bytes(1000))
    wire = server.data_to_send()
    assert len(records(wire)) == 4  # 256 + 256 + 256 + 232
    client.receive(wire)
    assert client.read() == bytes(1000)


def test_policy_and_context_validation() -> None:
    with pytest.raises(ValueError):
        PskTlsPolicy(ciphers=())
    with pytest.raises(ValueError):
        PskTlsPolicy(ciphers=("PSK-AES128-CBC-SHA256:ALL",))
    with pytest.raises(ValueError):
        PskTlsPolicy(ciphers=("AES128-SHA256",))  # not a PSK suite
    with pytest.raises(ValueError):
        PskTlsPolicy(min_version=TlsVersion.TLS1_2, max_version=TlsVersion.TLS1_1)
    with pytest.raises(UnsupportedError, match="PSK-3DES-EDE-CBC-SHA"):
        PskServerContext(KEYS.get, PskTlsPolicy(ciphers=("PSK-3DES-EDE-CBC-SHA",), min_version=TlsVersion.TLS1_0))
    with pytest.raises(UnsupportedError):
        PskServerContext(KEYS.get, PskTlsPolicy(ciphers=("PSK-NO-SUCH-SUITE",)))
    with pytest.raises(ValueError):
        PskClientContext(b"", PSK)
    with pytest.raises(ValueError):
        PskClientContext(b"x" * 129, PSK)
    with pytest.raises(ValueError):
        PskClientContext(b"a\x00b", PSK)
    with pytest.raises(ValueError):
        PskClientContext(IDENTITY, b"")


def test_psk_never_in_reprs_or_errors() -> None:
    context = PskClientContext(IDENTITY, PSK)
    assert PSK.hex() not in repr(context).lower()
    client, server = pair(psk=OTHER_PSK)
    detecting, other = failed_handshake(client, server)
    for text in (repr(client), repr(server), str(detecting), str(other)):
        assert PSK.hex() not in text.lower() and OTHER_PSK.hex() not in text.lower()


def test_connections_are_freed() -> None:
    gc.collect()
    before = len(tls_openssl.connections)
    client, server = pair()
    pump(client, server)
    assert len(tls_openssl.connections) == before + 2
    del client, server
    gc.collect()
    assert len(tls_openssl.connections) == before


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=600), cut=st.integers(min_value=0, max_value=400))
def test_arbitrary_bytes_only_ever_raise_tls_error(garbage: bytes, cut: int) -> None:
    """Whatever arrives (garbage, or a real ClientHello cut short and followed by garbage), the server either
    waits for more or raises TlsError with an alert to send; nothing else escapes and nothing crashes."""
    client = PskClientContext(IDENTITY, PSK).connection()
    client.start()
    hello = client.data_to_send()
    server = SERVER_CONTEXT.connection()
    try:
        server.receive(hello[:cut] + garbage)
        server.receive(b"")
    except TlsError:
        pass
    else:
        raise AssertionError("TCP EOF before the handshake completed must fail")
    assert not server.handshake_complete


@settings(max_examples=100, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=600))
def test_forged_records_after_the_handshake_never_yield_plaintext(garbage: bytes) -> None:
    client, server = pair()
    pump(client, server)
    with pytest.raises(TlsError):
        server.receive(garbage)
        server.receive(b"")
    assert server.read() == b""


def test_contexts_are_shared_across_threads() -> None:
    """One server context and one client context used by several threads at once, a connection per thread."""
    import threading

    client_context = PskClientContext(IDENTITY, PSK)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(30):
                client = client_context.connection()
                server = SERVER_CONTEXT.connection()
                client.start()
                pump(client, server)
                message = b"thread %d message %d" % (n, i)
                client.write(message)
                pump(client, server)
                assert server.read() == message
                assert server.identity == IDENTITY
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_prefetched_psk_is_answered_once_and_not_kept() -> None:
    client, server = pair()
    server.use_prefetched(IDENTITY, PSK)
    pump(client, server)
    assert server.handshake_complete
    lookup = server._lookup
    assert lookup is not None
    with pytest.raises(TlsError):  # asked again: nothing is handed out, and no closure holds the PSK any more
        lookup(IDENTITY)
