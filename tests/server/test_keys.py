"""DbKeyProvider and the master key (gpchannel.server.keys), on the real Repository (SQLite in a temp dir).

Crypto results are checked against independent vectors: SCP80 packets (tests/vectors/ota: pySim), SCP03 session
keys (tests/vectors/scp03: pySim, GlobalPlatformPro), diversified keys (tests/vectors/diversification: GPPro).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpchannel.crypto.ciphers import aes_ecb_encrypt
from gpchannel.crypto.diversification import Diversification
from gpchannel.crypto.keys import KeyType, kcv
from gpchannel.errors import KeyNotFound, KeyProviderError, UnsupportedError, WrongMasterKey
from gpchannel.keystore import DerivedKey, KeyFamily, parse_algorithm
from gpchannel.ota.scp80 import ResponseStatus, secure_command, unsecure_response
from gpchannel.ota.spi import CipherAlgorithm, MacAlgorithm
from gpchannel.scp.scp03 import card_cryptogram
from gpchannel.server.config import ServerConfig
from gpchannel.server.keys import (
    MASTER_KEY_ENV,
    MASTER_KEY_FILE,
    DbKeyProvider,
    load_master_key,
    master_key_id,
    open_key_provider,
)
from gpchannel.server.repository import CardRecord, Repository
from tests.ota._ota_cases import pysim_keyset
from tests.vectors import VectorCase, params

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))
_ALG = {"aes_cbc": "aes-cbc", "triple_des_cbc2": "3des-2key", "aes_cmac": "aes-cmac"}


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository(f"sqlite:///{tmp_path / 'keys.db'}")
    yield r
    r.close()


def _card(repo: Repository, iccid: str = "8988211000000000001", **ota: object) -> CardRecord:
    card_id = repo.upsert_card(iccid=iccid, psk_identity=None, ota=dict(ota))
    card = repo.card(card_id)
    assert card is not None
    return card


# --------------------------------------------------------------------------------------------- round trips


def test_round_trip_and_nothing_in_clear(repo: Repository) -> None:
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo, psk_kvn=1)
    kic, kid, psk = bytes.fromhex("11" * 16), bytes.fromhex("22" * 16), bytes(range(16))
    keys.store_card_keys(
        card.id, {("kic", 1): (kic, "aes-cbc"), ("kid", 1): (kid, "aes-cmac"), ("psk", 1): (psk, "tls-psk")}
    )
    keyset = keys.scp80_keyset(card, 1)
    assert (keyset.kic_key, keyset.kid_key) == (kic, kid)
    assert keyset.cipher is CipherAlgorithm.AES_CBC and keyset.mac is MacAlgorithm.AES_CMAC
    assert not keyset.allow_single_des
    assert keys.psk(card) == psk
    for purpose, key in (("kic", kic), ("kid", kid), ("psk", psk)):
        row = repo.card_key(card.id, purpose, 1)
        assert row is not None
        _, blob, _ = row
        assert key not in blob and key.hex().encode() not in blob and key.hex().upper().encode() not in blob
        assert json.loads(blob)["mk"] == master_key_id(MASTER).hex()
    assert MASTER.hex() not in repr(keys) and kic.hex() not in repr(keyset)
    # The KCV is what may be shown.
    assert keys.key_check_value(card.id, "kic", 1) == aes_ecb_encrypt(kic, b"\x01" * 16)[:3]


def test_psk_absent_and_key_not_found(repo: Repository) -> None:
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo)
    assert keys.psk(card) is None
    with pytest.raises(KeyNotFound, match="no kic key at KVN 1"):
        keys.scp80_keyset(card, 1)


def test_single_des_and_legacy_names(repo: Repository) -> None:
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo, cmac_length=4)
    keys.store_card_keys(card.id, {("kic", 2): (bytes(8), "des-cbc"), ("kid", 2): (bytes(16), "3des-2key")})
    keyset = keys.scp80_keyset(card, 2)
    assert keyset.allow_single_des and keyset.cmac_length == 4
    assert keyset.cipher is CipherAlgorithm.DES_CBC and keyset.mac is MacAlgorithm.DES3_2KEY_CBC_MAC
    assert parse_algorithm("3des-2key") == (KeyFamily.DES3, CipherAlgorithm.DES3_2KEY_CBC)
    assert parse_algorithm("AES-CMAC") == (KeyFamily.AES, MacAlgorithm.AES_CMAC)
    with pytest.raises(UnsupportedError):
        parse_algorithm("rot13")
    with pytest.raises(UnsupportedError, match="bytes"):
        keys.store_card_keys(card.id, {("kic", 3): (bytes(15), "aes-cbc")})


# --------------------------------------------------------------------------------------------- wrong master, tampering


def test_wrong_master_key_says_so(repo: Repository) -> None:
    card = _card(repo)
    DbKeyProvider(repo, MASTER).store_card_keys(
        card.id, {("kic", 1): (bytes(16), "aes"), ("kid", 1): (bytes(16), "aes")}
    )
    with pytest.raises(WrongMasterKey, match=master_key_id(OTHER_MASTER).hex()):
        DbKeyProvider(repo, OTHER_MASTER).scp80_keyset(card, 1)


def test_tampered_blob_is_refused(repo: Repository) -> None:
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo)
    keys.store_card_keys(card.id, {("kic", 1): (bytes(16), "aes"), ("kid", 1): (bytes(16), "aes")})
    row = repo.card_key(card.id, "kic", 1)
    assert row is not None
    doc = json.loads(row[1])
    ct = bytearray.fromhex(doc["ct"])
    ct[0] ^= 0x01
    doc["ct"] = ct.hex()
    repo.set_card_key(card.id, "kic", 1, json.dumps(doc).encode(), row[2])
    with pytest.raises(KeyProviderError, match="GCM tag") as info:
        keys.scp80_keyset(card, 1)
    assert not isinstance(info.value, WrongMasterKey)


def test_blob_moved_to_another_row_or_relabelled_is_refused(repo: Repository) -> None:
    keys = DbKeyProvider(repo, MASTER)
    a, b = _card(repo, "8988211000000000001"), _card(repo, "8988211000000000002")
    keys.store_card_keys(a.id, {("kic", 1): (bytes(16), "aes"), ("kid", 1): (bytes(16), "aes")})
    keys.store_card_keys(b.id, {("kid", 1): (bytes(16), "aes")})
    row = repo.card_key(a.id, "kic", 1)
    assert row is not None
    repo.set_card_key(b.id, "kic", 1, row[1], row[2])  # a's key copied to b
    with pytest.raises(KeyProviderError, match="moved"):
        keys.scp80_keyset(b, 1)
    repo.set_card_key(a.id, "kic", 1, row[1], "des3")  # the algorithm changed
    with pytest.raises(KeyProviderError, match="moved"):
        keys.scp80_keyset(a, 1)


# --------------------------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("case", params("ota/pysim.json", "ota-sms-cmd-encode"))
def test_scp80_packet_with_db_keys(repo: Repository, case: VectorCase) -> None:
    spi, kic, kid, _ = pysim_keyset(case)
    ks = case.inputs["keyset"]
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo)
    keys.store_card_keys(
        card.id,
        {
            ("kic", 1): (bytes.fromhex(ks["kic"]), _ALG[ks["algo_crypt"]]),
            ("kid", 1): (bytes.fromhex(ks["kid"]), _ALG[ks["algo_auth"]]),
        },
    )
    keyset = keys.scp80_keyset(card, 1)
    apdu, tar = case.hex_in("apdu"), case.hex_in("tar")
    packet = secure_command(apdu, spi=spi, kic=kic, kid=kid, tar=tar, counter=0, keyset=keyset).to_bytes()
    expected = case.hex_out("encoded_cmd")
    assert packet[2:] == expected if "QUIRK" in case.notes else packet == expected


@pytest.mark.parametrize("case", params("ota/pysim.json", "ota-sms-por-decode"))
def test_scp80_por_with_db_keys(repo: Repository, case: VectorCase) -> None:
    spi, kic, kid, _ = pysim_keyset(case)
    ks = case.inputs["keyset"]
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo)
    keys.store_card_keys(
        card.id,
        {
            ("kic", 1): (bytes.fromhex(ks["kic"]), _ALG[ks["algo_crypt"]]),
            ("kid", 1): (bytes.fromhex(ks["kid"]), _ALG[ks["algo_auth"]]),
        },
    )
    por = unsecure_response(
        case.hex_in("encoded_resp")[3:], spi=spi, kic=kic, kid=kid, keyset=keys.scp80_keyset(card, 1)
    )
    assert por.status is ResponseStatus.POR_OK


@pytest.mark.parametrize("case", params("scp03/pysim.json", "scp03-session-keys"))
def test_scp03_session_keys_with_db_keys(repo: Repository, case: VectorCase) -> None:
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo)
    keys.store_card_keys(
        card.id, {("enc", 0x30): (case.hex_in("key_enc"), "aes"), ("mac", 0x30): (case.hex_in("key_mac"), "aes")}
    )
    host, challenge = case.hex_in("host_challenge"), case.hex_in("card_challenge")
    session = keys.scp03_session_keys(card, 0x30, host + challenge)
    assert (session.s_enc, session.s_mac, session.s_rmac) == (
        case.hex_out("s_enc"),
        case.hex_out("s_mac"),
        case.hex_out("s_rmac"),
    )
    assert card_cryptogram(session.s_mac, host, challenge) == case.hex_out("card_cryptogram")


_SCHEMES = {
    "diversification-emv-cps11": (Diversification.EMV, "des3", KeyType.DES3),
    "diversification-visa2": (Diversification.VISA2, "des3", KeyType.DES3),
    "diversification-kdf3": (Diversification.KDF3, "aes", KeyType.AES),
}


@pytest.mark.parametrize("case", params("diversification/globalplatformpro.json", *_SCHEMES))
def test_diversified_keys_with_db_keys(repo: Repository, case: VectorCase) -> None:
    scheme, algorithm, key_type = _SCHEMES[case.kind]
    keys = DbKeyProvider(repo, MASTER)
    master = case.hex_in("master_key")
    master_card = _card(repo, "8988211000000000999", role="master")
    keys.store_card_keys(master_card.id, {(p, 0x20): (master, algorithm) for p in ("enc", "mac", "dek")})
    card = _card(repo)
    ref = DerivedKey(master_card.id, scheme, case.hex_in("kdd"))
    keys.store_derived_keys(card.id, {(p, 0x20): (ref, algorithm) for p in ("enc", "mac", "dek")})
    if "derived_enc_key" in case.expected:
        assert keys.key(card.id, "enc", 0x20)[1] == case.hex_out("derived_enc_key")
        return
    for purpose in ("enc", "mac", "dek"):
        assert keys.key_check_value(card.id, purpose, 0x20) == case.hex_out(f"kcv_{purpose}")
        _, key, _ = keys.key(card.id, purpose, 0x20)
        assert isinstance(key, bytes) and kcv(key, key_type) == case.hex_out(f"kcv_{purpose}")


def test_derived_reference_checks(repo: Repository) -> None:
    keys = DbKeyProvider(repo, MASTER)
    card = _card(repo)
    with pytest.raises(UnsupportedError, match="KDF3"):
        keys.store_derived_keys(card.id, {("enc", 1): (DerivedKey(1, Diversification.KDF3, bytes(10)), "des3")})
    with pytest.raises(UnsupportedError, match="PSK"):
        keys.store_derived_keys(card.id, {("psk", 1): (DerivedKey(1, Diversification.KDF3, bytes(10)), "psk")})
    with pytest.raises(ValueError, match="10 bytes"):
        DerivedKey(1, Diversification.EMV, bytes(8))
    keys.store_derived_keys(card.id, {("kic", 1): (DerivedKey(999, Diversification.KDF3, bytes(10)), "aes-cbc")})
    with pytest.raises(KeyNotFound, match="card 999"):
        keys.key(card.id, "kic", 1)


# --------------------------------------------------------------------------------------------- the master key


def test_master_key_from_env_wins(tmp_path: Path) -> None:
    assert load_master_key(tmp_path, {MASTER_KEY_ENV: MASTER.hex()}) == MASTER
    assert not (tmp_path / MASTER_KEY_FILE).exists()
    with pytest.raises(KeyProviderError, match="32"):
        load_master_key(tmp_path, {MASTER_KEY_ENV: "00" * 16})
    with pytest.raises(KeyProviderError, match="hex"):
        load_master_key(tmp_path, {MASTER_KEY_ENV: "zz" * 32})


def test_master_key_file_created_0600_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = load_master_key(data, {})
    path = data / MASTER_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32 and load_master_key(data, {}) == first
    assert [p.name for p in data.iterdir()] == [MASTER_KEY_FILE]  # no temporary file left behind
    os.chmod(path, 0o640)
    with pytest.raises(KeyProviderError, match="chmod 600"):
        load_master_key(data, {})


def test_master_key_survives_restart_through_open_key_provider(tmp_path: Path, repo: Repository) -> None:
    config = ServerConfig(data_dir=tmp_path / "srv")
    card = _card(repo)
    provider = open_key_provider(config, repo, {})
    provider.store_card_keys(card.id, {("kic", 1): (bytes(16), "aes"), ("kid", 1): (b"\x01" * 16, "aes")})
    again = open_key_provider(config, repo, {})  # a restart reads the same master.key
    assert again.scp80_keyset(card, 1).kid_key == b"\x01" * 16
    with pytest.raises(WrongMasterKey):
        open_key_provider(config, repo, {MASTER_KEY_ENV: OTHER_MASTER.hex()}).scp80_keyset(card, 1)
