"""run_server (server/app.py): card profiles registered with --profile, the listeners and the campaign workers
started and stopped with the process, ServerConfig's checks."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from gpchannel.errors import ProfileError
from gpchannel.server.app import card_from_profile, register_profile, run_server
from gpchannel.server.config import ServerConfig, parse_address
from gpchannel.server.services import open_services
from tests.server.server_support import bearer, token_for

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "examples" / "profiles" / "scp03.toml"


def test_profile_registration_stores_the_card_and_its_psk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPCHANNEL_MASTER_KEY", raising=False)
    services = open_services(ServerConfig(data_dir=tmp_path))
    try:
        card_id = register_profile(services, PROFILE)
        assert register_profile(services, PROFILE) == card_id  # idempotent
        card = services.repository.card(card_id)
        assert card is not None
        assert (card.iccid, card.psk_identity) == ("8988211000000000001", "8988211000000000001")
        assert services.keys.psk(card) == bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
    finally:
        services.repository.close()
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "gpchannel-server.db").is_file()


def test_profile_card_repr_hides_the_psk() -> None:
    card = card_from_profile(PROFILE)
    assert "0102" not in repr(card) and "psk=" not in repr(card)


def test_profile_without_scp81_or_invalid_is_refused(tmp_path: Path) -> None:
    text = PROFILE.read_text()
    no_scp81 = tmp_path / "no-scp81.toml"
    no_scp81.write_text(text[: text.index("[scp81]")] + text[text.index("[[applications]]") :])
    with pytest.raises(ProfileError, match=r"no-scp81\.toml: no \[scp81\] section"):
        card_from_profile(no_scp81)
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace('psk = "0102030405060708090A0B0C0D0E0F10"', 'psk = "01zz"'))
    with pytest.raises(ProfileError, match=r"broken\.toml: .*scp81\.psk"):
        card_from_profile(broken)
    with pytest.raises(ProfileError, match=r"missing\.toml"):
        card_from_profile(tmp_path / "missing.toml")


def test_profile_psk_is_read_as_the_profile_check_reads_it(tmp_path: Path) -> None:
    """Spaces anywhere in ``[scp81] psk`` pass the profile check: the server reads the same bytes (it used to
    call bytes.fromhex on the raw text, a ValueError for a space inside a byte)."""
    spaced = tmp_path / "spaced.toml"
    spaced.write_text(
        PROFILE.read_text().replace(
            'psk = "0102030405060708090A0B0C0D0E0F10"', 'psk = "0 102 0304 05060708090A0B0C0D0E0F1 0"'
        )
    )
    assert card_from_profile(spaced).psk == bytes.fromhex("0102030405060708090A0B0C0D0E0F10")


def test_run_server_with_profiles_and_an_smsc_that_is_down(tmp_path: Path) -> None:
    profile = tmp_path / "card.toml"
    shutil.copy(PROFILE, profile)
    config = ServerConfig(admin_port=0, api_port=0, data_dir=tmp_path, profiles=(profile,), smpp=("127.0.0.1:1",))
    token = token_for(config)

    async def scenario() -> None:
        stop = asyncio.Event()
        ready: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run_server(config, stop, on_ready=ready.set_result))
        addresses = await ready
        api = addresses.api  # type: ignore[attr-defined]
        url = f"http://127.0.0.1:{api[1]}/api/v1/cards?iccid=8988211000000000001"
        request = urllib.request.Request(url, headers=bearer(token))
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).read())
        assert json.loads(body)["cards"][0]["psk_identity"] == "8988211000000000001"
        stop.set()
        await task  # the SCP80 worker, still trying to reach its SMSC, stops with the rest

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_worker_only_without_smsc_fails(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, worker_only=True)

    async def scenario() -> None:
        with pytest.raises(ValueError, match="SMSC"):
            await run_server(config, asyncio.Event())

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_config_checks_and_addresses(tmp_path: Path) -> None:
    assert parse_address("0.0.0.0:9443", 8443) == ("0.0.0.0", 9443)
    assert parse_address(":0", 8443) == ("127.0.0.1", 0)
    assert parse_address("localhost", 8443) == ("localhost", 8443)
    assert parse_address("[::1]:8443", 1) == ("::1", 8443)
    for bad in ("host:port", "h:70000", "[::1"):
        with pytest.raises(ValueError):
            parse_address(bad, 1)
    with pytest.raises(ValueError, match="admin_path"):
        ServerConfig(admin_path="/gp/")
    with pytest.raises(ValueError, match="timeouts"):
        ServerConfig(read_timeout=0)
    assert "pin-7QxZ" not in repr(ServerConfig(pkcs11_pin="pin-7QxZ"))
    assert ServerConfig(data_dir=tmp_path).database_url == f"sqlite:///{tmp_path.resolve()}/gpchannel-server.db"
    default = ServerConfig().tls_policy()
    assert default.ciphers == ("PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256") and not default.allow_null
    legacy = ServerConfig(legacy_tls=True).tls_policy()
    assert "PSK-AES128-CBC-SHA" in legacy.ciphers and not any("NULL" in c for c in legacy.ciphers)
    assert ServerConfig(max_record=256).tls_policy().max_record_plaintext == 256
    with pytest.raises(ValueError, match="max_record"):
        ServerConfig(max_record=10)
    null = ServerConfig(allow_null_tls=True).tls_policy()
    assert null.allow_null and null.ciphers[-1] == "PSK-NULL-SHA256"
