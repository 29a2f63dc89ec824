"""gpchannel's SMPP stack against independent SMPP 3.4 implementations:

- smpplib (PyPI), an ESME, binds to the handset bridge (`gpchannel bridge --emulator` as a process) as a
  transceiver, submits an SCP80 command packet and gets the card's PoR back as a deliver_sm, which verifies;
- Net::SMPP (Debian's libnet-smpp-perl), as the SMS centre (tests/smpp/perl_smsc.pl), takes our ESME's
  (gpchannel.smpp.client.OtaSmppClient) bind and submit_sm and sends back a delivery receipt and a PoR.

Without the peer installed the test is skipped on a developer's machine and fails in CI (CI=true): the project's
bootstrap installs both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gpchannel.ota import ResponseStatus, Spi, unsecure_response
from gpchannel.ota.remote_apdu import CompactResponse
from gpchannel.smpp import DeliveryReceipt, MessageState, OtaSmppClient, PorMessage
from gpchannel.smpp.client import command_segments
from tests.emulator.test_bridge import KEYS, KIC, KID, PROFILE, READ_SPN, SELECT_SPN, _packet
from tests.smpp.conftest import CARD_NUMBER, OTA_SERVER, free_port, run
from tests.smpp.lifecycle_support import Proc

PERL_SMSC = Path(__file__).with_name("perl_smsc.pl")


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed (scripts/bootstrap.sh installs it)")
    pytest.skip(f"{what} is not installed")


def test_smpplib_esme_gets_a_verified_por_from_the_bridge(tmp_path: Path) -> None:
    try:
        import smpplib.client
    except ImportError:
        _missing("smpplib (pip install -e '.[dev]')")
    port = free_port()
    bridge = Proc(
        "bridge", "--smpp", f"127.0.0.1:{port}", "--emulator", str(tmp_path / "card"), "--profile", str(PROFILE)
    )
    try:
        bridge.wait_line(f"bridge: SMPP on 127.0.0.1:{port}, card")
        spi = Spi.from_bytes(bytes.fromhex("1619"))
        (segment,) = command_segments(_packet(spi, 1, SELECT_SPN, READ_SPN))
        received: list[Any] = []
        sent: list[Any] = []
        client = smpplib.client.Client("127.0.0.1", port, timeout=20, allow_unknown_opt_params=True)
        client.set_message_received_handler(lambda pdu: received.append(pdu))
        client.set_message_sent_handler(lambda pdu: sent.append(pdu))
        client.connect()
        try:
            client.bind_transceiver(system_id="smpplib", password="pw")
            client.send_message(
                source_addr_ton=1,
                source_addr=OTA_SERVER,
                dest_addr_ton=1,
                destination_addr=CARD_NUMBER,
                short_message=segment,
                esm_class=0x40,
                protocol_id=0x7F,
                data_coding=0xF6,
                registered_delivery=0,
            )
            while not (sent and received):  # each read_once blocks for one PDU (or fails at the socket timeout)
                client.read_once()
            client.unbind()
        finally:
            client.disconnect()
        assert sent[0].status == 0 and sent[0].message_id
        pdu = received[0]
        assert (pdu.esm_class, pdu.protocol_id, pdu.data_coding) == (0x40, 0x7F, 0xF6)
        assert pdu.source_addr.decode() == CARD_NUMBER and pdu.destination_addr.decode() == OTA_SERVER
        message = bytes(pdu.short_message)
        assert message[:3] == b"\x02\x71\x00"
        response = unsecure_response(message[3:], spi=spi, kic=KIC, kid=KID, keyset=KEYS)
        assert (response.status, response.authenticated) == (ResponseStatus.POR_OK, True)
        assert CompactResponse.from_bytes(response.data).last.sw == 0x9000
        assert bridge.stop(signal.SIGTERM) == 0, bridge.output
        assert "submit_sm accepted 1, refused 0; card took 1, refused 0; PoR deliver_sm 1" in bridge.output
    finally:
        bridge.kill()


def _perl_smsc() -> subprocess.Popen[str]:
    perl = shutil.which("perl")
    if perl is None or subprocess.run([perl, "-MNet::SMPP", "-e", "1"], capture_output=True).returncode != 0:
        _missing("Net::SMPP (apt-get install libnet-smpp-perl)")
    assert perl is not None
    return subprocess.Popen([perl, str(PERL_SMSC), "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_our_esme_against_the_net_smpp_smsc() -> None:
    smsc = _perl_smsc()
    try:
        assert smsc.stdout is not None
        line = smsc.stdout.readline()  # blocks until it listens (or ends)
        assert line.startswith("listening "), line + smsc.stderr.read() if smsc.stderr else line
        port = int(line.split()[1])
        packet = bytes(range(40))

        async def session() -> tuple[list[str], DeliveryReceipt | PorMessage | None, PorMessage]:
            esme = await OtaSmppClient.connect("127.0.0.1", port, "gpchannel", "pw", source_addr=OTA_SERVER)
            async with esme:
                submitted = await esme.submit_packet(CARD_NUMBER, packet)
                receipt = await esme.next_event(10)
                por, _ = await esme.wait_por(10)
            return list(submitted.message_ids), receipt, por

        ids, receipt, por = run(session())
        out, err = smsc.communicate(timeout=20)
    finally:
        if smsc.poll() is None:
            smsc.kill()
            smsc.wait()
    assert smsc.returncode == 0, err
    assert ids == ["perl1"]
    assert isinstance(receipt, DeliveryReceipt)
    assert (receipt.message_id, receipt.state) == ("perl1", MessageState.DELIVERED)
    assert por == PorMessage(CARD_NUMBER, packet, True)
    lines = out.splitlines()
    assert "bind_transceiver system_id=gpchannel" in lines
    (submit,) = [x for x in lines if x.startswith("submit_sm ")]
    expected_sm = command_segments(packet)[0].hex()
    assert submit == f"submit_sm from={OTA_SERVER} to={CARD_NUMBER} esm_class=40 pid=7F dcs=F6 rd=1 sm={expected_sm}"
    assert lines.count("deliver_sm_resp status=0") == 2 and "unbind" in lines and lines[-1] == "done"
