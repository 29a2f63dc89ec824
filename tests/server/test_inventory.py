"""Inventory import (server/inventory.py): CSV and JSON into a real SQLite store through the database key provider;
bad rows named by line and field without a key's value; key references checked against OpenSSL's KBKDF."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpchannel.errors import InventoryError
from gpchannel.ota.spi import CipherAlgorithm, MacAlgorithm
from gpchannel.server.inventory import diversify_card_key, parse_inventory, read_inventory
from gpchannel.server.inventory_import import import_inventory
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.repository import Repository
from tests.vectors import VectorCase, params

K16 = "000102030405060708090A0B0C0D0E0F"
K16B = "101112131415161718191A1B1C1D1E1F"
PSK = "0102030405060708090A0B0C0D0E0F10"
HEADER = "iccid,msisdn,psk_identity,psk,psk_kvn,kvn,kic,kic_algorithm,kid,kid_algorithm,tar,spi,counter"
GOOD_CSV = f"""{HEADER}
8988211000000000001,+4915550001,8988211000000000001,{PSK},1,1,{K16},aes-cbc,{K16B},aes-cmac,B00001,1619,5
8988211000000000001,,,,,2,{"11" * 16},3des-2key,{"22" * 16},3des-2key,000000,1639,
8988211000000000002,4915550002,id-2,{PSK},,1,{K16},aes-cbc,{K16B},aes-cmac,,,
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Repository, DbKeyProvider]]:
    repository = Repository(f"sqlite:///{tmp_path / 'server.db'}")
    try:
        yield repository, DbKeyProvider(repository, os.urandom(32))
    finally:
        repository.close()


def test_csv_rows_become_cards_keys_and_counters(store: tuple[Repository, DbKeyProvider]) -> None:
    repo, keys = store
    result = import_inventory(repo, keys, parse_inventory(GOOD_CSV))
    assert (len(result.card_ids), result.created, result.updated, result.keysets) == (2, 2, 0, 3)
    card = repo.card_by_iccid("8988211000000000001")
    assert card is not None and card.msisdn == "4915550001" and card.psk_identity == "8988211000000000001"
    assert card.ota["scp80"] == {"1": {"tar": "B00001", "spi": "1619"}, "2": {"tar": "000000", "spi": "1639"}}
    assert card.ota["scp80_kvn"] == 1
    keyset = keys.scp80_keyset(card, 1)
    assert (keyset.kic_key, keyset.kid_key) == (bytes.fromhex(K16), bytes.fromhex(K16B))
    assert (keyset.cipher, keyset.mac) == (CipherAlgorithm.AES_CBC, MacAlgorithm.AES_CMAC)
    second = keys.scp80_keyset(card, 2)
    assert (second.cipher, second.mac) == (CipherAlgorithm.DES3_2KEY_CBC, MacAlgorithm.DES3_2KEY_CBC_MAC)
    assert keys.psk(card) == bytes.fromhex(PSK)
    assert (repo.counter(card.id, 1), repo.counter(card.id, 2)) == (5, None)
    other = repo.card_by_identity("id-2")
    assert other is not None and other.ota["scp80"] == {"1": {"tar": "000000", "spi": "1619"}}
    # The stored blobs are wrapped: no key appears in the database file's rows.
    row = repo.card_key(card.id, "kic", 1)
    assert row is not None and bytes.fromhex(K16) not in row[1] and K16.encode() not in row[1].upper()


def test_reimport_updates_and_never_lowers_a_counter(store: tuple[Repository, DbKeyProvider]) -> None:
    repo, keys = store
    import_inventory(repo, keys, parse_inventory(GOOD_CSV))
    card = repo.card_by_iccid("8988211000000000001")
    assert card is not None
    repo.set_counter(card.id, 1, 40)  # the server sent more since
    older = GOOD_CSV.replace(",1619,5\n", ",1619,7\n")
    result = import_inventory(repo, keys, parse_inventory(older))
    assert (result.created, result.updated) == (0, 2)
    assert repo.counter(card.id, 1) == 40
    newer = GOOD_CSV.replace(",1619,5\n", ",1619,90\n")
    import_inventory(repo, keys, parse_inventory(newer))
    assert repo.counter(card.id, 1) == 90


def test_json_inventory(store: tuple[Repository, DbKeyProvider]) -> None:
    repo, keys = store
    doc = {
        "cards": [
            {
                "iccid": "8988211000000000003",
                "msisdn": "4915550003",
                "keysets": [
                    {"kvn": 3, "kic": K16, "kic_algorithm": "aes-cbc", "kid": K16B, "kid_algorithm": "aes-cmac"}
                ],
            },
            {"psk_identity": "only-scp81", "psk": PSK, "psk_kvn": "0x40"},
        ]
    }
    result = import_inventory(repo, keys, parse_inventory(json.dumps(doc)))
    assert result.created == 2
    card = repo.card_by_iccid("8988211000000000003")
    assert card is not None and card.ota["scp80_kvn"] == 3 and keys.scp80_keyset(card, 3).kic_key == bytes.fromhex(K16)
    scp81 = repo.card_by_identity("only-scp81")
    assert scp81 is not None and scp81.iccid is None and keys.psk(scp81) == bytes.fromhex(PSK)
    assert scp81.ota["psk_kvn"] == 0x40


def _row(**cells: str) -> str:
    base = {
        "iccid": "8988211000000000001",
        "msisdn": "4915550001",
        "psk_identity": "",
        "psk": "",
        "psk_kvn": "",
        "kvn": "1",
        "kic": K16,
        "kic_algorithm": "aes-cbc",
        "kid": K16B,
        "kid_algorithm": "aes-cmac",
        "tar": "",
        "spi": "",
        "counter": "",
    }
    base.update(cells)
    return ",".join(base[c] for c in HEADER.split(","))


SECRET = "DEADBEEFDEADBEEFDEADBEEFDEADBEEZ"  # not hex: its text must never be echoed


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (_row(kic=SECRET), "kic", "hex digits"),
        (_row(kid="00" * 15), "kid", "bytes, got 15"),
        (_row(kic_algorithm="rot13"), "kic_algorithm", "unknown algorithm"),
        (_row(kid_algorithm=""), "kid_algorithm", "required"),
        (_row(kvn="16"), "kvn", "1..15"),
        (_row(kvn="", tar="B00001"), "kvn", "needs its kvn"),
        (_row(iccid="12AB"), "iccid", "18 to 20 digits"),
        (_row(iccid="", psk_identity=""), "iccid", "iccid or a psk_identity"),
        (_row(msisdn="call me"), "msisdn", "digits"),
        (_row(tar="B001"), "tar", "3 bytes"),
        (_row(spi="FF19"), "spi", "reserved"),
        (_row(counter="-1"), "counter", "0.."),
        (_row(counter="1099511627776"), "counter", "0.."),
        (_row(psk=SECRET), "psk", "hex digits"),
        (_row(kic="master:"), "kic", "label is empty"),
    ],
)
def test_bad_rows_name_line_and_field_never_the_key(row: str, field: str, words: str) -> None:
    good = _row(iccid="8988211000000000009", msisdn="4915550009")
    text = f"{HEADER}\n{good}\n{row}\n"
    with pytest.raises(InventoryError) as info:
        parse_inventory(text)
    assert (info.value.line, info.value.field) == (3, field)
    assert str(info.value).startswith(f"line 3, {field}: ") and words in str(info.value)
    assert SECRET not in str(info.value) and SECRET.lower() not in str(info.value)


def test_a_bad_row_imports_nothing(store: tuple[Repository, DbKeyProvider]) -> None:
    repo, keys = store
    text = f"{HEADER}\n{_row()}\n{_row(iccid='8988211000000000002', kvn='0')}\n"
    with pytest.raises(InventoryError, match="line 3, kvn"):
        import_inventory(repo, keys, parse_inventory(text))
    assert repo.card_by_iccid("8988211000000000001") is None


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("iccid,colour\n8988211000000000001,red\n", 1, "colour", "unknown column"),
        (f"{HEADER}\n{_row()}\n{_row()}\n", 3, "kvn", "already on line 2"),
        (f"{HEADER}\n{_row()}\n{_row(msisdn='4915550099', kvn='2')}\n", 3, "msisdn", "another msisdn"),
        (f"{HEADER}\n{_row()},extra\n", 2, None, "more cells"),
        (
            f"{HEADER}\n{_row(psk_identity='x')}\n{_row(iccid='8988211000000000002', psk_identity='x')}\n",
            3,
            "psk_identity",
            "already used",
        ),
        ('[{"iccid": "8988211000000000001", "keysets": [{"kvn": 1, "colour": 1}]}]', 1, "colour", "unknown"),
        ('[{"iccid": "8988211000000000001"}, 7]', 2, None, "JSON object"),
        ('{"cards": [{"iccid": "8988211000000000001", "keysets": [{"kic": "00"}]}]}', 1, "kvn", "kvn"),
    ],
)
def test_file_level_errors(text: str, line: int, field: str | None, words: str) -> None:
    with pytest.raises(InventoryError) as info:
        parse_inventory(text)
    assert (info.value.line, info.value.field) == (line, field)
    assert words in str(info.value)


def test_not_json_and_not_utf8() -> None:
    with pytest.raises(InventoryError, match="not JSON"):
        parse_inventory("[1,", format="json")
    with pytest.raises(InventoryError, match="UTF-8"):
        parse_inventory(b"\xff\xfe\x00")
    with pytest.raises(InventoryError, match="no header"):
        parse_inventory("", format="csv")


@pytest.mark.parametrize("case", params("server/inventory_kdf.json"))
def test_key_reference_derivation_matches_openssl_kbkdf(case: VectorCase) -> None:
    key = diversify_card_key(case.hex_in("master"), case.inputs["purpose"], case.inputs["iccid"], case.inputs["length"])
    assert key == case.hex_out("key")


def test_master_references_resolved_at_import(store: tuple[Repository, DbKeyProvider]) -> None:
    repo, keys = store
    master = bytes.fromhex(K16)
    text = f"{HEADER}\n{_row(kic='master:fleet', kid='MASTER:fleet', psk='master:fleet', psk_identity='p1')}\n"
    cards = parse_inventory(text)
    assert "master='fleet'" in repr(cards)  # the label is shown, a reference holds no key
    with pytest.raises(InventoryError, match="line 2, psk: no master key named 'fleet'"):
        import_inventory(repo, keys, cards)
    assert repo.card_by_iccid("8988211000000000001") is None
    import_inventory(repo, keys, cards, masters={"fleet": master})
    card = repo.card_by_iccid("8988211000000000001")
    assert card is not None
    keyset = keys.scp80_keyset(card, 1)
    assert keyset.kic_key == bytes.fromhex("7A7879E6A8882869957CA7B03A9AF45E")  # the OpenSSL vector above
    assert keyset.kid_key == diversify_card_key(master, "KID", "8988211000000000001")
    assert keys.psk(card) == bytes.fromhex("E9191B365B85D422B473078A0593D72A")


def test_reprs_hold_no_key() -> None:
    (card,) = parse_inventory(f"{HEADER}\n{_row(psk=PSK, psk_identity='p')}\n")
    text = repr(card)
    assert K16 not in text.upper() and PSK not in text.upper() and "000102" not in text


def test_the_fleet_inventory_imports(tmp_path: Path, store: tuple[Repository, DbKeyProvider]) -> None:
    """What `gpchannel fleet generate` writes (emulator/fleet.py) is this module's format, references included."""
    from gpchannel.emulator.fleet import generate_fleet, write_inventory

    repo, keys = store
    master = os.urandom(16)
    fleet = generate_fleet(tmp_path / "fleet", 3, master_key=master)
    write_inventory(fleet, tmp_path / "plain.csv")
    write_inventory(fleet, tmp_path / "refs.csv", master_label="m1")
    plain = read_inventory(tmp_path / "plain.csv")
    refs = read_inventory(tmp_path / "refs.csv")
    import_inventory(repo, keys, plain)
    for fleet_card in fleet:
        card = repo.card_by_iccid(fleet_card.iccid)
        assert card is not None and card.msisdn == fleet_card.msisdn
        assert keys.scp80_keyset(card, fleet.settings.kvn).kic_key == fleet_card.kic
    result = import_inventory(repo, keys, refs, masters={"m1": master})
    assert result.updated == 3
    for fleet_card in fleet:
        card = repo.card_by_iccid(fleet_card.iccid)
        assert card is not None
        keyset = keys.scp80_keyset(card, fleet.settings.kvn)
        assert (keyset.kic_key, keyset.kid_key, keys.psk(card)) == (fleet_card.kic, fleet_card.kid, fleet_card.psk)


def test_resolved_json_carries_the_derived_keys(store: tuple[Repository, DbKeyProvider]) -> None:
    from gpchannel.server.inventory_import import has_references, resolved_json

    repo, keys = store
    master = bytes.fromhex(K16)
    cards = parse_inventory(f"{HEADER}\n{_row(kic='master:Fleet', kid='master:Fleet', counter='3')}\n")
    assert has_references(cards) and not has_references(parse_inventory(GOOD_CSV))
    text = resolved_json(cards, {"FLEET": master})  # labels match whatever their case
    assert "master:" not in text
    plain = parse_inventory(text)
    assert not has_references(plain)
    import_inventory(repo, keys, plain)
    card = repo.card_by_iccid("8988211000000000001")
    assert card is not None and repo.counter(card.id, 1) == 3
    assert keys.scp80_keyset(card, 1).kic_key == bytes.fromhex("7A7879E6A8882869957CA7B03A9AF45E")


def _emv_cps(master: bytes, kdd: bytes, kt: int) -> bytes:
    """EMV CPS 1.1 A.1.2 computed here with the cryptography package's TripleDES (not gpchannel's code)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    block = kdd[4:10] + bytes((0xF0, kt)) + kdd[4:10] + bytes((0x0F, kt))
    encryptor = Cipher(TripleDES(master + master[:8]), modes.ECB()).encryptor()  # 2-key as 3-key K1 K2 K1
    return encryptor.update(block) + encryptor.finalize()


def test_derive_references_go_to_the_key_provider(store: tuple[Repository, DbKeyProvider]) -> None:
    from gpchannel.server.inventory_import import iccid_kdd

    repo, keys = store
    m_kic, m_kid = bytes.fromhex("404142434445464748494A4B4C4D4E4F"), bytes.fromhex("505152535455565758595A5B5C5D5E5F")
    masters = (
        "iccid,kvn,kic,kic_algorithm,kid,kid_algorithm\n"
        f"8900000000000000000,1,{m_kic.hex()},3des-2key,{m_kid.hex()},3des-2key\n"
    )
    import_inventory(repo, keys, parse_inventory(masters))
    derived = f"{HEADER}\n" + _row(
        kic="derive:emv:8900000000000000000", kic_algorithm="3des-2key",
        kid="derive:EMV:8900000000000000000", kid_algorithm="3des-2key",
    ) + "\n"  # fmt: skip
    import_inventory(repo, keys, parse_inventory(derived))
    card = repo.card_by_iccid("8988211000000000001")
    assert card is not None
    row = repo.card_key(card.id, "kic", 1)
    assert row is not None and b"derive" in row[1]  # a reference is stored, not a key
    kdd = iccid_kdd("8988211000000000001")
    assert kdd == bytes.fromhex("8988211000000000001F")
    keyset = keys.scp80_keyset(card, 1)
    assert keyset.kic_key == _emv_cps(m_kic, kdd, 0x01) and keyset.kid_key == _emv_cps(m_kid, kdd, 0x02)
    assert (keyset.cipher, keyset.mac) == (CipherAlgorithm.DES3_2KEY_CBC, MacAlgorithm.DES3_2KEY_CBC_MAC)


@pytest.mark.parametrize(
    ("cells", "field", "words"),
    [
        ({"kic": "derive:emv:8900000000000000000"}, "kic", "not aes-cbc"),
        ({"kid": "derive:kdf3:x", "kid_algorithm": "3des-2key"}, "kid", "AES keys"),
        ({"kic": "derive:rot13:x"}, "kic", "SCHEME one of emv"),
        ({"kic": "derive:kdf3:"}, "kic", "SCHEME one of emv"),
        ({"psk": "derive:kdf3:x", "psk_identity": "p"}, "psk", "cannot be derived"),
    ],
)
def test_bad_derive_cells(cells: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(InventoryError) as info:
        parse_inventory(f"{HEADER}\n{_row(**cells)}\n")
    assert (info.value.line, info.value.field) == (2, field) and words in str(info.value)


def test_derive_from_an_unknown_master_imports_nothing(store: tuple[Repository, DbKeyProvider]) -> None:
    repo, keys = store
    text = f"{HEADER}\n{_row(iccid='8988211000000000002')}\n{_row(kic='derive:kdf3:nobody')}\n"
    with pytest.raises(InventoryError, match="line 3, kic: no master card 'nobody'"):
        import_inventory(repo, keys, parse_inventory(text))
    assert repo.card_by_iccid("8988211000000000002") is None
