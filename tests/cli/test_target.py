"""Where the CLI's keys come from with ``--profile`` and ``--app`` (cli/target.py, cli/main.py), through the
emulator in-process (``gpchannel --emulator DIR --profile FILE --app AID ...``): an application with a key set of
its own (the ``scp03-direct`` example applet, KVN 21, direct handling) is opened with that key set, not with the
ISD's KVN from the profile (which it answers 6A88); an application the profile does not describe lets the card
choose (KVN 00); ``--kvn`` still wins."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from gpchannel.cli.main import cli
from gpchannel.cli.target import load_profile
from gpchannel.codec.sw import describe
from tests.card.test_applets_examples import DIRECT_AID, DIRECT_KEYS, ISD_AID, ISD_KEYS, STORE_AID, _profile

DIRECT = ["--key-enc", DIRECT_KEYS.enc.hex(), "--key-mac", DIRECT_KEYS.mac.hex(), "--key-dek", DIRECT_KEYS.dek.hex()]
ECHO = ["apdu", "8010000002CAFE00"]


def _run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False)


def _card(tmp_path: Path, profile_text: str, name: str = "card.toml") -> list[str]:
    profile = tmp_path / name
    profile.write_text(profile_text)
    return ["--emulator", str(tmp_path / "state"), "--profile", str(profile)]


def _echoed(result: Result) -> bool:
    return result.exit_code == 0 and result.stdout.split() == ["CAFE", *describe(0x9000).split()]


def test_profile_gives_the_application_key_sets_of_applets_with_their_own(tmp_path: Path) -> None:
    path = tmp_path / "card.toml"
    path.write_text(_profile())
    profile = load_profile(path)
    assert profile.kvn == 0x30 and profile.keys is not None and profile.keys.enc == ISD_KEYS.enc
    own = profile.application_keys(DIRECT_AID)
    assert own is not None and own.kvn == DIRECT_KEYS.kvn == 0x21
    assert (own.keys.enc, own.keys.mac, own.keys.dek) == (DIRECT_KEYS.enc, DIRECT_KEYS.mac, DIRECT_KEYS.dek)
    assert profile.application_keys(STORE_AID) is None  # indirect handling: its Security Domain's keys
    assert profile.application_keys(ISD_AID) is None
    assert DIRECT_KEYS.enc.hex() not in repr(profile).lower()


def test_app_with_its_own_keys_through_the_profile(tmp_path: Path) -> None:
    card = _card(tmp_path, _profile())
    # the profile's key set for the application: no key and no KVN on the command line
    assert _echoed(_run(*card, "--security-level", "03", "--app", DIRECT_AID.hex(), *ECHO))
    # the application's keys given, no --kvn: its KVN from the profile, not the ISD's 30 (it used to answer 6A88)
    assert _echoed(_run(*card, *DIRECT, "--app", DIRECT_AID.hex(), *ECHO))
    # --kvn still wins: the ISD's KVN is not the application's
    refused = _run(*card, *DIRECT, "--kvn", "0x30", "--app", DIRECT_AID.hex(), *ECHO)
    assert refused.exit_code == 4 and "6A88" in refused.output
    # an application without keys of its own (indirect handling): its Security Domain's keys, the card's first set
    stored = _run(*card, "--security-level", "01", "--app", STORE_AID.hex(), "apdu", "80DA000003016B76")
    assert stored.exit_code == 0, stored.output
    # without --app nothing changes: the ISD with the profile's key set
    assert _run(*card, "apdu", "80CA006600").exit_code == 0


def test_app_the_profile_does_not_describe_lets_the_card_choose(tmp_path: Path) -> None:
    full = _card(tmp_path, _profile())
    assert _run(*full, "apdu", "80CA006600").exit_code == 0  # the card, with the applet, built from the full profile
    bare = _profile().split("[[applications]]")[0]
    card = _card(tmp_path, bare, "isd-only.toml")  # a profile that names only the ISD
    assert _echoed(_run(*card, *DIRECT, "--app", DIRECT_AID.hex(), *ECHO))  # KVN 00: the applet's first set
