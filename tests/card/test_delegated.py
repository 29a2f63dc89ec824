"""Delegated Management, tokens, receipts and DAP verification on the emulated card, through bytes inside SCP03
sessions (GP 2.3.1, 9.1.3, 9.2, 9.3.5, Appendix C)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import DEFAULT_ISD_PRIVILEGES
from gpchannel.card.state import Application, KeySet, LoadFile, SdConfig
from gpchannel.cli.main import EXIT_CARD_STATUS, cli
from gpchannel.cli.target import CallableTransport
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import tlv
from gpchannel.crypto.asym import PrivateKey, load_private_key_pem
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import CardStatusError, IntegrityError
from gpchannel.gp import lifecycle as lc
from gpchannel.gp.cap import CapFile
from gpchannel.gp.dap import DapBlock, build_load_file, dap_block
from gpchannel.gp.install import (
    InstallForExtradition,
    InstallForInstall,
    InstallForLoad,
    InstallForMakeSelectable,
    InstallForRegistryUpdate,
    InstallParameters,
)
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.gp.tokens import (
    Confirmation,
    SymmetricKey,
    combined_receipt_data,
    combined_token_data,
    delete_receipt_data,
    delete_token_data,
    extradition_receipt_data,
    install_receipt_data,
    install_token_data,
    load_receipt_data,
    public_key_data,
    registry_update_receipt_data,
    sign,
    verify,
    with_delete_token,
)
from gpchannel.host.card import GpCard
from gpchannel.host.delegated import DapSigner, Delegation
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.io.store import DirectoryStore
from gpchannel.scp.common import HostChannel, SecurityLevel
from gpchannel.scp.put_key import KeyComponent, PutKeyData, put_key_command
from tests.card.harness import DEFAULT_KEY, ISD_AID, make_card, open_session, secure, send
from tests.gp.test_cap import build_cap, components
from tests.vectors import cases

PACKAGE = bytes.fromhex("A0000000620301")
MODULE = bytes.fromhex("A000000062030101")
INSTANCE = bytes.fromhex("A00000006203010101")
SSD = bytes.fromhex("A000000151535344")  # the Application Provider's SD, Delegated Management
DAP_SD = bytes.fromhex("A000000151444150")  # a Verification Authority / DAP SD
RECEIPT_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def _issuer_pem() -> bytes:
    """The NIST CAVS 1024-bit RSA key (tokens/asym.json) as the Card Issuer's PEM: tokens are RSA Scheme 1."""
    case = next(c for c in cases("tokens/asym.json", "rsa-pkcs1-sha1") if c.expected["valid"])
    n, e, d = (int.from_bytes(case.hex_in(x), "big") for x in ("n", "e", "d"))
    p, q = int.from_bytes(case.hex_in("p"), "big"), int.from_bytes(case.hex_in("q"), "big")
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)
    )
    return numbers.private_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


ISSUER_PEM = _issuer_pem()
ISSUER: PrivateKey = load_private_key_pem(ISSUER_PEM)
RECEIPTS = SymmetricKey(KeyType.AES, RECEIPT_KEY)


def _cap(aid: bytes = PACKAGE, module: bytes = MODULE) -> bytes:
    header = b"\xde\xca\xff\xed" + bytes((1, 2, 0, 0, 1, len(aid))) + aid
    applet = bytes((1, len(module))) + module + b"\x00\x10"
    return b"\x01" + len(header).to_bytes(2, "big") + header + b"\x03" + len(applet).to_bytes(2, "big") + applet


def _cmd(ins: int, p1: int, p2: int, data: bytes = b"") -> CommandApdu:
    return CommandApdu(0x80, ins, p1, p2, data, le=256)


def _add_sd(card: Card, aid: bytes, *privileges: Privilege) -> None:
    keys = KeySet(0x30, KeyType.AES, DEFAULT_KEY, DEFAULT_KEY, DEFAULT_KEY)
    card.state.applications.append(
        Application(
            aid,
            lc.SD_PERSONALIZED,
            Privileges.of(Privilege.SECURITY_DOMAIN, *privileges),
            ISD_AID,
            sd=SdConfig(3, 0x70, [keys]),
        )
    )
    card.save()


def _session(card: Card, aid: bytes) -> HostChannel:
    assert send(card, CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, le=256)).sw == 0x9000
    return open_session(card, "03", 0x03)


def _put_public(card: Card, host: HostChannel, kvn: int, key: PrivateKey) -> ResponseApdu:
    return secure(card, host, _cmd(0xD8, 0x00, 0x81, bytes((kvn,)) + public_key_data(key.public_key())))


def _put_symmetric(card: Card, host: HostChannel, kvn: int, key: bytes, key_type: KeyType) -> ResponseApdu:
    data = PutKeyData(kvn, (KeyComponent.build(key, key_type, host.encrypt_key),))
    return secure(card, host, put_key_command(data, key_id=1))


def _dm_card() -> Card:
    """The ISD verifies tokens (key 70, RSA-1024) and generates receipts (key 71, AES); SSD has Delegated
    Management. The keys go in through PUT KEY inside the ISD's session."""
    card, _ = make_card()
    isd = card.state.isd
    isd.privileges = isd.privileges | Privileges.of(Privilege.TOKEN_MANAGEMENT, Privilege.RECEIPT_GENERATION)
    card.save()
    host = _session(card, ISD_AID)
    assert _put_public(card, host, 0x70, ISSUER).data == b"\x70"
    response = _put_symmetric(card, host, 0x71, RECEIPT_KEY, KeyType.AES)
    assert response.sw == 0x9000 and response.data[0] == 0x71 and len(response.data) == 4
    _add_sd(card, SSD, Privilege.DELEGATED_MANAGEMENT)
    card.state.load_files.append(LoadFile(PACKAGE, SSD, [MODULE]))
    card.save()
    return card


def _install_variant(instance: bytes = INSTANCE) -> InstallForInstall:
    params = InstallParameters(application_specific=b"\x01").to_bytes()
    return InstallForInstall(PACKAGE, MODULE, instance, Privileges(), params)


def _with_token(variant: InstallForInstall, token: bytes) -> InstallForInstall:
    return InstallForInstall(
        variant.load_file_aid,
        variant.module_aid,
        variant.application_aid,
        variant.privileges,
        variant.parameters,
        token,
    )


def _receipt_ok(response: ResponseApdu, data_of: object) -> Confirmation:
    confirmation = Confirmation.from_response(response.data)
    assert confirmation is not None
    assert callable(data_of)
    assert verify(RECEIPTS, data_of(confirmation.data), confirmation.receipt)
    return confirmation


def test_put_key_stores_token_receipt_and_dap_keys() -> None:
    card = _dm_card()
    isd = card.state.isd.sd
    assert isd is not None
    token_key, receipt_key = isd.content_key(0x70), isd.content_key(0x71)
    assert token_key is not None and token_key.kind == "rsa" and token_key.exponent == b"\x03"
    assert receipt_key is not None and receipt_key.kind == "aes" and receipt_key.value == RECEIPT_KEY
    assert RECEIPT_KEY.hex() not in repr(receipt_key).lower()
    host = _session(card, ISD_AID)
    assert _put_public(card, host, 0x70, ISSUER).sw == 0x6A80  # exists: P1 must name it to replace
    ecc = load_private_key_pem(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert _put_public(card, host, 0x73, ecc).sw == 0x9000
    assert card.state.isd.sd is not None and (card.state.isd.sd.content_key(0x73) or token_key).kind == "ec"
    assert _put_public(card, host, 0x71, ISSUER).sw == 0x6A80  # receipts are symmetric here
    restored = card.store.load()
    assert restored is not None and restored.isd.sd is not None and len(restored.isd.sd.content_keys) == 3


def test_delegated_install_with_a_valid_token_returns_a_verifiable_receipt() -> None:
    card = _dm_card()
    host = _session(card, SSD)
    variant = _install_variant()
    token = ISSUER.sign(install_token_data(0x0C, 0x00, variant))
    response = secure(card, host, _cmd(0xE6, 0x0C, 0x00, _with_token(variant, token).to_bytes()))
    assert response.sw == 0x9000
    app = card.state.application(INSTANCE)
    assert app is not None and app.lifecycle == lc.APPLICATION_SELECTABLE and app.sd_aid == SSD
    confirmation = _receipt_ok(response, lambda cd: install_receipt_data(cd, PACKAGE, INSTANCE))
    assert confirmation.data.counter == 0 and confirmation.data.sd_unique_data
    tampered = bytearray(confirmation.receipt)
    tampered[0] ^= 0x01
    receipt_data = install_receipt_data(confirmation.data, PACKAGE, INSTANCE)
    assert not verify(RECEIPTS, receipt_data, bytes(tampered))
    assert not verify(RECEIPTS, install_receipt_data(confirmation.data, PACKAGE, SSD), confirmation.receipt)
    assert card.state.isd.sd is not None and card.state.isd.sd.confirmation_counter == 1


@pytest.mark.parametrize("case", ["missing", "other-instance", "other-p1", "garbage"])
def test_delegated_install_is_refused_without_a_valid_token(case: str) -> None:
    card = _dm_card()
    host = _session(card, SSD)
    variant = _install_variant()
    signed = {
        "missing": None,
        "other-instance": install_token_data(0x0C, 0x00, _install_variant(INSTANCE + b"\x02")),
        "other-p1": install_token_data(0x04, 0x00, variant),
        "garbage": b"",
    }[case]
    token = b"" if signed is None else ISSUER.sign(signed) if signed else bytes(128)
    before = card.state.to_json()
    response = secure(card, host, _cmd(0xE6, 0x0C, 0x00, _with_token(variant, token).to_bytes()))
    assert response.sw == 0x6982
    assert card.state.application(INSTANCE) is None and card.state.to_json() == before


def test_a_token_where_none_is_expected_is_6a80() -> None:
    card = _dm_card()
    card.state.load_files[-1].sd_aid = ISD_AID
    card.save()
    host = _session(card, ISD_AID)
    variant = _install_variant()
    token = ISSUER.sign(install_token_data(0x0C, 0x00, variant))
    assert secure(card, host, _cmd(0xE6, 0x0C, 0x00, _with_token(variant, token).to_bytes())).sw == 0x6A80
    response = secure(card, host, _cmd(0xE6, 0x0C, 0x00, variant.to_bytes()))  # the ISD: no token, no receipt
    assert response.sw == 0x9000 and response.data == b"\x00"


def test_delegated_load_with_a_load_token_and_a_load_receipt() -> None:
    card = _dm_card()
    card.state.load_files.clear()
    card.save()
    host = _session(card, SSD)
    block = _cap()
    install = InstallForLoad(PACKAGE, b"", hashlib.sha1(block).digest())
    assert secure(card, host, _cmd(0xE6, 0x02, 0x00, install.to_bytes())).sw == 0x6982  # no Load Token
    token = ISSUER.sign(install_token_data(0x02, 0x00, install))
    with_token = InstallForLoad(install.load_file_aid, b"", install.load_file_hash, token=token)
    assert secure(card, host, _cmd(0xE6, 0x02, 0x00, with_token.to_bytes())).sw == 0x9000
    response = secure(card, host, _cmd(0xE8, 0x80, 0x00, build_load_file(block)))
    assert response.sw == 0x9000
    loaded = card.state.load_file(PACKAGE)
    assert loaded is not None and loaded.sd_aid == SSD
    _receipt_ok(response, lambda cd: load_receipt_data(cd, PACKAGE, SSD))


def test_delegated_delete_and_extradition_with_tokens() -> None:
    card = _dm_card()
    host = _session(card, SSD)
    variant = _install_variant()
    token = ISSUER.sign(install_token_data(0x0C, 0x00, variant))
    first = _receipt_ok(
        secure(card, host, _cmd(0xE6, 0x0C, 0x00, _with_token(variant, token).to_bytes())),
        lambda cd: install_receipt_data(cd, PACKAGE, INSTANCE),
    )
    body = tlv(0x4F, INSTANCE)
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, body)).sw == 0x6982  # no Delete Token
    wrong = with_delete_token(body, ISSUER.sign(delete_token_data(0x00, 0x80, body)))  # signed for P2 = 80
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, wrong)).sw == 0x6982
    assert card.state.application(INSTANCE) is not None
    data = with_delete_token(body, ISSUER.sign(delete_token_data(0x00, 0x00, body)))
    response = secure(card, host, _cmd(0xE4, 0x00, 0x00, data))
    assert response.sw == 0x9000 and card.state.application(INSTANCE) is None
    second = _receipt_ok(response, lambda cd: delete_receipt_data(cd, INSTANCE))
    assert second.data.counter == first.data.counter + 1
    # Extradition of the load file to the ISD (Table C-7 token, Table C-13 receipt).
    extradition = InstallForExtradition(ISD_AID, PACKAGE)
    token = ISSUER.sign(install_token_data(0x10, 0x00, extradition))
    signed = InstallForExtradition(ISD_AID, PACKAGE, token=token)
    response = secure(card, host, _cmd(0xE6, 0x10, 0x00, signed.to_bytes()))
    assert response.sw == 0x9000 and (card.state.load_file(PACKAGE) or LoadFile(b"", b"")).sd_aid == ISD_AID
    _receipt_ok(response, lambda cd: extradition_receipt_data(cd, SSD, PACKAGE, ISD_AID))


def test_delegated_install_fails_without_the_token_verification_key() -> None:
    card = _dm_card()
    assert card.state.isd.sd is not None
    card.state.isd.sd.content_keys = [k for k in card.state.isd.sd.content_keys if k.kvn != 0x70]
    card.save()
    host = _session(card, SSD)
    variant = _install_variant()
    token = ISSUER.sign(install_token_data(0x0C, 0x00, variant))
    assert secure(card, host, _cmd(0xE6, 0x0C, 0x00, _with_token(variant, token).to_bytes())).sw == 0x6982


def _dap_card(*privileges: Privilege) -> tuple[Card, HostChannel, SymmetricKey]:
    card, _ = make_card()
    _add_sd(card, DAP_SD, *privileges)
    dap_key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    host = _session(card, DAP_SD)
    assert _put_symmetric(card, host, 0x73, dap_key, KeyType.AES).sw == 0x9000
    return card, _session(card, ISD_AID), SymmetricKey(KeyType.AES, dap_key)


def _load(card: Card, host: HostChannel, block: bytes, blocks: tuple[DapBlock, ...], sd: bytes = b"") -> int:
    digest = hashlib.sha256(block).digest()
    install = InstallForLoad(PACKAGE, sd, digest)
    assert secure(card, host, _cmd(0xE6, 0x02, 0x00, install.to_bytes())).sw == 0x9000
    load_file = build_load_file(block, blocks)
    pieces = [load_file[i : i + 100] for i in range(0, len(load_file), 100)]
    sw = 0
    for n, piece in enumerate(pieces):
        sw = secure(card, host, _cmd(0xE8, 0x80 if n == len(pieces) - 1 else 0x00, n, piece)).sw
    return sw


def test_dap_verification_of_the_associated_security_domain() -> None:
    card, host, key = _dap_card(Privilege.DAP_VERIFICATION)
    block = _cap()
    digest = hashlib.sha256(block).digest()
    wrong = DapBlock(DAP_SD, sign(key, hashlib.sha256(block + b"x").digest()))
    assert _load(card, host, block, (wrong,), DAP_SD) == 0x6982
    assert card.state.load_file(PACKAGE) is None and all(a.load_file_aid != PACKAGE for a in card.state.applications)
    assert _load(card, host, block, (), DAP_SD) == 0x6982  # the associated SD requires its DAP
    assert card.state.load_file(PACKAGE) is None
    assert _load(card, host, block, (dap_block(key, DAP_SD, digest),), DAP_SD) == 0x9000
    loaded = card.state.load_file(PACKAGE)
    assert loaded is not None and loaded.sd_aid == DAP_SD


def test_mandated_dap_is_enforced_for_every_load() -> None:
    card, host, key = _dap_card(Privilege.DAP_VERIFICATION, Privilege.MANDATED_DAP_VERIFICATION)
    for package, module in ((PACKAGE, MODULE), (bytes.fromhex("A0000000620302"), bytes.fromhex("A000000062030201"))):
        block = _cap(package, module)
        digest = hashlib.sha256(block).digest()
        install = InstallForLoad(package, b"", digest)
        for blocks, expected in (((), 0x6982), ((dap_block(key, DAP_SD, digest),), 0x9000)):
            assert secure(card, host, _cmd(0xE6, 0x02, 0x00, install.to_bytes())).sw == 0x9000
            sw = secure(card, host, _cmd(0xE8, 0x80, 0x00, build_load_file(block, blocks))).sw
            assert sw == expected
            assert (card.state.load_file(package) is not None) is (expected == 0x9000)


def test_mandated_dap_only_when_personalized_and_dap_needs_the_hash() -> None:
    card, host, key = _dap_card(Privilege.MANDATED_DAP_VERIFICATION)
    dap_sd = card.state.application(DAP_SD)
    assert dap_sd is not None
    dap_sd.lifecycle = lc.SD_SELECTABLE
    card.save()
    block = _cap()
    assert _load(card, host, block, ()) == 0x9000  # not PERSONALIZED: not (yet) enforced
    card.state.load_files.clear()
    card.save()
    install = InstallForLoad(PACKAGE)
    assert secure(card, host, _cmd(0xE6, 0x02, 0x00, install.to_bytes())).sw == 0x9000
    blocks = (dap_block(key, DAP_SD, hashlib.sha256(block).digest()),)
    assert secure(card, host, _cmd(0xE8, 0x80, 0x00, build_load_file(block, blocks))).sw == 0x6A80
    assert card.state.load_file(PACKAGE) is None


# -- the host library (GpCard over the card's bytes interface) ---------------------------------------------------
def _gp_card(card: Card, aid: bytes, *, tamper: bool = False) -> GpCard:
    def process(raw: bytes) -> bytes:
        answer = card.process(raw)
        if tamper and raw[1] in (0xE4, 0xE6) and len(answer) > 8:  # flip a receipt bit in INSTALL/DELETE answers
            answer = answer[:3] + bytes((answer[3] ^ 0x01,)) + answer[4:]
        return answer

    session = CardSession(CallableTransport(process), random=lambda n: bytes(range(n)))
    gp = GpCard.connect(session, aid)
    gp.open_secure_channel(ChannelOptions(StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES), SecurityLevel.C_MAC))
    return gp


def _host_cap() -> CapFile:
    return CapFile.from_bytes(build_cap(components()))


def test_host_puts_content_keys_and_manages_content_by_delegation() -> None:
    card, _ = make_card()
    isd = card.state.isd
    isd.privileges = isd.privileges | Privileges.of(Privilege.TOKEN_MANAGEMENT, Privilege.RECEIPT_GENERATION)
    card.save()
    issuer = _gp_card(card, ISD_AID)
    assert issuer.put_content_key(0x70, ISSUER.public_key()) == b"\x70"
    assert len(issuer.put_content_key(0x71, RECEIPTS)) == 4
    _add_sd(card, SSD, Privilege.DELEGATED_MANAGEMENT)
    provider = _gp_card(card, SSD)
    cap = _host_cap()
    delegation = Delegation(token_key=ISSUER, receipt_key=RECEIPTS)
    with pytest.raises(CardStatusError) as refused:
        provider.load(cap)  # no Load Token
    assert refused.value.sw == 0x6982 and card.state.load_file(cap.package_aid) is None
    provider.load(cap, delegation=delegation)
    assert provider.last_confirmation is not None and provider.last_confirmation.data.counter == 0
    loaded = card.state.load_file(cap.package_aid)
    assert loaded is not None and loaded.sd_aid == SSD
    module = cap.applet_aids[0]
    with pytest.raises(CardStatusError):
        provider.install(cap.package_aid, module, INSTANCE)
    precomputed = ISSUER.sign(install_token_data(0x0C, 0x00, InstallForInstall(cap.package_aid, module, INSTANCE)))
    provider.install(cap.package_aid, module, INSTANCE, delegation=Delegation(token=precomputed, receipt_key=RECEIPTS))
    assert card.state.application(INSTANCE) is not None
    assert provider.last_confirmation is not None and provider.last_confirmation.data.counter == 1
    provider.delete(INSTANCE, delegation=delegation)
    assert card.state.application(INSTANCE) is None
    # A receipt checked with the wrong key, and a receipt altered on the way, are both detected.
    other = Delegation(token_key=ISSUER, receipt_key=SymmetricKey(KeyType.AES, bytes(16)))
    with pytest.raises(IntegrityError):
        provider.install(cap.package_aid, module, INSTANCE, delegation=other)
    tampered = _gp_card(card, SSD, tamper=True)
    with pytest.raises(IntegrityError):
        tampered.delete(INSTANCE, delegation=delegation)
    assert card.state.application(INSTANCE) is None  # the card did delete: only the receipt was altered


def test_host_load_with_dap_blocks() -> None:
    card, host, key = _dap_card(Privilege.DAP_VERIFICATION)
    del host
    gp = _gp_card(card, ISD_AID)
    cap = _host_cap()
    with pytest.raises(CardStatusError) as wrong:
        gp.load(cap, sd_aid=DAP_SD, daps=[DapSigner(DAP_SD, signature=bytes(16))])
    assert wrong.value.sw == 0x6982
    assert card.state.load_file(cap.package_aid) is None and len(card.state.load_files) == 0
    gp.load(cap, sd_aid=DAP_SD, daps=[DapSigner(DAP_SD, key=key)])
    assert card.state.load_file(cap.package_aid) is not None


# -- the command line against the in-process emulator (--emulator STATE_DIR) ------------------------------------
EXAMPLE = Path(__file__).parents[2].parent / "shared" / "docs" / "example.toml"
SSD_KEY = "000102030405060708090A0B0C0D0E0F"


def _run(target: list[str], *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, [*target, *args], catch_exceptions=False)


def test_cli_delegated_management_and_dap(tmp_path: Path) -> None:
    if not EXAMPLE.is_file():
        pytest.skip(f"the example profile is not at {EXAMPLE}")
    profile = tmp_path / "card.toml"
    shutil.copy(EXAMPLE, profile)
    target = ["--emulator", str(tmp_path / "state"), "--profile", str(profile)]
    # The issuer's profile: the ISD verifies tokens and generates receipts (GP 2.3.1, 9.1.3.1, 9.1.3.6).
    isd_privileges = Privileges.from_bytes(DEFAULT_ISD_PRIVILEGES) | Privileges.of(
        Privilege.TOKEN_MANAGEMENT, Privilege.RECEIPT_GENERATION
    )
    text = profile.read_text().replace("[isd]\n", f'[isd]\nprivileges = "{isd_privileges.to_bytes().hex()}"\n', 1)
    profile.write_text(text)
    assert _run(target, "info").exit_code == 0
    # The Security Domain package is in the card's ROM; the profile format has no load files, so it goes in here.
    store = DirectoryStore(tmp_path / "state")
    state = store.load()
    assert state is not None
    if state.load_file(bytes.fromhex("A0000001515350")) is None:
        state.load_files.append(
            LoadFile(bytes.fromhex("A0000001515350"), state.isd_aid, [bytes.fromhex("A000000151535041")])
        )
        store.commit(state)
    for aid, privilege in ((SSD, "DelegatedManagement"), (DAP_SD, "DAPVerification")):
        result = _run(target, "create-ssd", aid.hex(), "--privileges", privilege, "--ssd-key", SSD_KEY)
        assert result.exit_code == 0, result.output
        assert "SSD key set 30 written" in result.output
    pem = tmp_path / "issuer.pem"
    pem.write_bytes(ISSUER_PEM)
    receipt = RECEIPT_KEY.hex()
    result = _run(target, "put-key", "--token-key", str(pem), "--receipt-key", receipt)
    assert result.exit_code == 0, result.output
    assert "key 70 written" in result.output and "key 71 written" in result.output
    cap = tmp_path / "hello.cap"
    cap.write_bytes(build_cap(components()))
    parsed = CapFile.from_bytes(cap.read_bytes())
    ssd = ["--isd", SSD.hex(), "--key", SSD_KEY]
    assert _run(target, *ssd, "load", str(cap)).exit_code == EXIT_CARD_STATUS  # no Load Token: 6982
    result = _run(target, *ssd, "load", str(cap), "--dm-key", str(pem), "--receipt-key", receipt)
    assert result.exit_code == 0, result.output
    assert "receipt 0000 verified" in result.output
    install = ["install", "--cap", str(cap), "--instance", INSTANCE.hex()]
    result = _run(target, *ssd, *install, "--dm-token", "00" * 128)
    assert result.exit_code == EXIT_CARD_STATUS and "6982" in result.output
    result = _run(target, *ssd, *install, "--dm-key", str(pem), "--receipt-key", receipt)
    assert result.exit_code == 0, result.output
    assert "receipt 0001 verified" in result.output
    result = _run(target, *ssd, "delete", INSTANCE.hex(), "--dm-key", str(pem), "--receipt-key", "00" * 16)
    assert result.exit_code != 0 and "receipt does not verify" in result.output
    # DAP: the DAP SD gets its key 73, and a load into it needs its DAP.
    dap_key = "0123456789ABCDEFFEDCBA9876543210"
    assert _run(target, "--isd", DAP_SD.hex(), "--key", SSD_KEY, "put-key", "--dap-key", dap_key).exit_code == 0
    other = tmp_path / "other.cap"
    other.write_bytes(build_cap(components(filler=1), folder="com/example/other/javacard"))
    dap = ["load", str(cap), "--sd", DAP_SD.hex(), "--dap-domain", DAP_SD.hex()]
    state = store.load()
    assert state is not None
    state.load_files = [f for f in state.load_files if f.aid != parsed.package_aid]
    store.commit(state)
    result = _run(target, *dap, "--dap-signature", "00" * 16)
    assert result.exit_code == EXIT_CARD_STATUS and "6982" in result.output
    reloaded = store.load()
    assert reloaded is not None and reloaded.load_file(parsed.package_aid) is None
    result = _run(target, *dap, "--dap-key", dap_key)
    assert result.exit_code == 0, result.output
    reloaded = store.load()
    assert reloaded is not None and (reloaded.load_file(parsed.package_aid) or LoadFile(b"", b"")).sd_aid == DAP_SD


def test_delegated_registry_update_and_the_counter_ceiling() -> None:
    card = _dm_card()
    host = _session(card, SSD)
    variant = _install_variant()
    token = ISSUER.sign(install_token_data(0x0C, 0x00, variant))
    assert secure(card, host, _cmd(0xE6, 0x0C, 0x00, _with_token(variant, token).to_bytes())).sw == 0x9000
    assert card.state.isd.sd is not None
    card.state.isd.sd.confirmation_counter = 0xFFFF
    card.save()
    update = InstallForRegistryUpdate(application_aid=INSTANCE, privileges=Privileges.of(Privilege.CARD_RESET))
    assert secure(card, host, _cmd(0xE6, 0x40, 0x00, update.to_bytes())).sw == 0x6982  # no token
    signed = InstallForRegistryUpdate(
        application_aid=INSTANCE,
        privileges=update.privileges,
        token=ISSUER.sign(install_token_data(0x40, 0x00, update)),
    )
    response = secure(card, host, _cmd(0xE6, 0x40, 0x00, signed.to_bytes()))
    assert response.sw == 0x9000
    privileges = Privileges.of(Privilege.CARD_RESET).to_bytes()
    confirmation = _receipt_ok(
        response, lambda cd: registry_update_receipt_data(cd, b"", INSTANCE, b"", privileges, b"")
    )
    assert confirmation.data.counter == 0xFFFF
    assert card.state.isd.sd.confirmation_counter == 0xFFFF  # it does not wrap to zero (C.5)
    app = card.state.application(INSTANCE)
    assert app is not None and Privilege.CARD_RESET in app.privileges


def test_des_receipt_key() -> None:
    """A DES receipt key (Table C-1): the receipt is the retail MAC of B.1.2.2 over the padded receipt data."""
    card = _dm_card()
    des_key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    host = _session(card, ISD_AID)
    data = PutKeyData(0x71, (KeyComponent.build(des_key, KeyType.DES3, host.encrypt_key),))
    assert secure(card, host, put_key_command(data, key_id=1, old_kvn=0x71)).sw == 0x9000
    host = _session(card, SSD)
    variant = _install_variant()
    token = ISSUER.sign(install_token_data(0x0C, 0x00, variant))
    response = secure(card, host, _cmd(0xE6, 0x0C, 0x00, _with_token(variant, token).to_bytes()))
    confirmation = Confirmation.from_response(response.data)
    assert confirmation is not None and len(confirmation.receipt) == 8
    receipt_data = install_receipt_data(confirmation.data, PACKAGE, INSTANCE)
    assert verify(SymmetricKey(KeyType.DES3, des_key), receipt_data, confirmation.receipt)
    assert not verify(RECEIPTS, receipt_data, confirmation.receipt)


def test_ecdsa_dap_and_the_hash_strength_rule_of_table_c3() -> None:
    card, _ = make_card()
    _add_sd(card, DAP_SD, Privilege.DAP_VERIFICATION)
    signer = load_private_key_pem(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert _put_public(card, _session(card, DAP_SD), 0x73, signer).sw == 0x9000
    host = _session(card, ISD_AID)
    block = _cap()
    for digest, expected in ((hashlib.sha256(block).digest(), 0x6A80), (hashlib.sha384(block).digest(), 0x9000)):
        install = InstallForLoad(PACKAGE, DAP_SD, digest)
        assert secure(card, host, _cmd(0xE6, 0x02, 0x00, install.to_bytes())).sw == 0x9000
        load_file = build_load_file(block, (dap_block(signer, DAP_SD, digest),))
        assert secure(card, host, _cmd(0xE8, 0x80, 0x00, load_file)).sw == expected
    assert card.state.load_file(PACKAGE) is not None


def test_delegated_management_excludes_token_and_receipt_privileges() -> None:
    card, _ = make_card()
    card.state.load_files.append(LoadFile(PACKAGE, ISD_AID, [MODULE]))
    card.save()
    host = _session(card, ISD_AID)
    for other in (Privilege.TOKEN_MANAGEMENT, Privilege.RECEIPT_GENERATION, Privilege.AUTHORIZED_MANAGEMENT):
        privileges = Privileges.of(Privilege.SECURITY_DOMAIN, Privilege.DELEGATED_MANAGEMENT, other)
        data = InstallForInstall(PACKAGE, MODULE, INSTANCE, privileges, InstallParameters().to_bytes())
        assert secure(card, host, _cmd(0xE6, 0x0C, 0x00, data.to_bytes())).sw == 0x6A80
    assert card.state.application(INSTANCE) is None


def test_a_delete_token_without_delegated_management_is_6a80() -> None:
    card = _dm_card()
    card.state.load_files[-1].sd_aid = ISD_AID
    card.save()
    host = _session(card, ISD_AID)
    body = tlv(0x4F, PACKAGE)
    for data in (body + b"\x9e\x00", with_delete_token(body, ISSUER.sign(delete_token_data(0x00, 0x00, body)))):
        assert secure(card, host, _cmd(0xE4, 0x00, 0x00, data)).sw == 0x6A80
    assert card.state.load_file(PACKAGE) is not None
    response = secure(card, host, _cmd(0xE4, 0x00, 0x00, body))
    assert response.sw == 0x9000 and response.data == b"\x00" and card.state.load_file(PACKAGE) is None


@pytest.mark.parametrize("valid", [True, False])
def test_delegated_combined_load_install_and_make_selectable(valid: bool) -> None:
    """C.4.7 / C.5.6: one token in the final INSTALL signs both INSTALL commands; the load file enters the
    registry only when it verifies."""
    card = _dm_card()
    card.state.load_files.clear()
    card.save()
    host = _session(card, SSD)
    block = _cap()
    load = InstallForLoad(PACKAGE, b"", hashlib.sha256(block).digest())
    assert secure(card, host, _cmd(0xE6, 0x02, 0x01, load.to_bytes())).sw == 0x9000
    response = secure(card, host, _cmd(0xE8, 0x80, 0x00, build_load_file(block)))
    assert response.sw == 0x9000 and response.data == b"\x00"
    assert card.state.load_file(PACKAGE) is None  # kept aside until the token verifies
    install = InstallForInstall(b"", MODULE, INSTANCE, Privileges(), InstallParameters().to_bytes())
    signed = combined_token_data(0x02, 0x01, load, 0x0C, 0x03, install)
    token = ISSUER.sign(signed if valid else signed[:-1] + b"\x01")
    response = secure(card, host, _cmd(0xE6, 0x0C, 0x03, _with_token(install, token).to_bytes()))
    if not valid:
        assert response.sw == 0x6982
        assert card.state.load_file(PACKAGE) is None and card.state.application(INSTANCE) is None
        return
    assert response.sw == 0x9000
    app = card.state.application(INSTANCE)
    assert app is not None and app.load_file_aid == PACKAGE and app.lifecycle == lc.APPLICATION_SELECTABLE
    _receipt_ok(response, lambda cd: combined_receipt_data(cd, PACKAGE, INSTANCE, SSD))


def test_delegated_make_selectable_and_host_extradition() -> None:
    card = _dm_card()
    host = _session(card, SSD)
    variant = _install_variant()
    token = ISSUER.sign(install_token_data(0x04, 0x00, variant))
    assert secure(card, host, _cmd(0xE6, 0x04, 0x00, _with_token(variant, token).to_bytes())).sw == 0x9000
    app = card.state.application(INSTANCE)
    assert app is not None and app.lifecycle == lc.APPLICATION_INSTALLED
    selectable = InstallForMakeSelectable(INSTANCE)
    assert secure(card, host, _cmd(0xE6, 0x08, 0x00, selectable.to_bytes())).sw == 0x6982
    token = ISSUER.sign(install_token_data(0x08, 0x00, selectable))
    signed = InstallForMakeSelectable(INSTANCE, token=token)
    response = secure(card, host, _cmd(0xE6, 0x08, 0x00, signed.to_bytes()))
    app = card.state.application(INSTANCE)
    assert response.sw == 0x9000 and app is not None and app.lifecycle == lc.APPLICATION_SELECTABLE
    _receipt_ok(response, lambda cd: install_receipt_data(cd, PACKAGE, INSTANCE))
    provider = _gp_card(card, SSD)
    provider.extradite(INSTANCE, ISD_AID, delegation=Delegation(token_key=ISSUER, receipt_key=RECEIPTS))
    app = card.state.application(INSTANCE)
    assert app is not None and app.sd_aid == ISD_AID and provider.last_confirmation is not None


def test_delete_key_removes_a_content_key() -> None:
    card = _dm_card()
    host = _session(card, ISD_AID)
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, tlv(0xD2, b"\x71"))).sw == 0x9000
    assert card.state.isd.sd is not None and card.state.isd.sd.content_key(0x71) is None
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, tlv(0xD2, b"\x71"))).sw == 0x6A88
    # With the Receipt Generation SD left without its key, delegated operations fail (C.1.1.2).
    host = _session(card, SSD)
    variant = _install_variant()
    token = ISSUER.sign(install_token_data(0x0C, 0x00, variant))
    assert secure(card, host, _cmd(0xE6, 0x0C, 0x00, _with_token(variant, token).to_bytes())).sw == 0x6982
    assert card.state.application(INSTANCE) is None
