"""Bad command lines across every ``gpchannel`` command: each ends with exactly one ``error: ...`` line, the
documented exit code (cli/exit_codes.py) and never a traceback (issue 15).

The commands run in-process with click's CliRunner, through the same ``main`` the console script runs (the
guarded group of cli/guard.py), against the emulator (``--emulator DIR``), files crafted here, and an unused
localhost port for the server's API. A few run as real processes, where the process itself is the point.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.main import cli
from tests.card.harness import profile_text
from tests.gp.test_cap import build_cap, components

OTA = """
[[ota.keysets]]
kvn = 1
kic = "000102030405060708090A0B0C0D0E0F"
kic_algorithm = "aes-cbc"
kid = "101112131415161718191A1B1C1D1E1F"
kid_algorithm = "aes-cmac"
"""
SELECT_SPN = "00A4080C047F206F46"
KEY = "40" * 16
PKG = "A0000000990001"


def _central_directory(data: bytes, offset: int, value: int) -> bytes:
    """``data`` (a ZIP) with one byte of every central directory entry set (4.3.12 of PKWARE's APPNOTE)."""
    out = bytearray(data)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        out[at + offset] = value if offset != 8 else out[at + offset] | value
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


def _bad_deflate() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in components().items():
            z.writestr(f"com/x/javacard/{name}.cap", data * 3)
    raw = bytearray(out.getvalue())
    at = raw.find(b"com/x/javacard/Header.cap") + len("com/x/javacard/Header.cap")
    raw[at + 2 : at + 10] = b"\xff" * 8  # the local entry's compressed data
    return bytes(raw)


_GOOD_CAP = build_cap(components())
CRAFTED_CAPS = {
    "encrypted.cap": _central_directory(_GOOD_CAP, 8, 0x01),  # general purpose flag bit 0: encrypted
    "version.cap": _central_directory(_GOOD_CAP, 6, 0xFF),  # version needed to extract: 25.5
    "deflate.cap": _bad_deflate(),
}


@dataclass(frozen=True)
class Env:
    tmp: Path
    values: dict[str, str] = field(default_factory=dict)

    def expand(self, args: tuple[str, ...]) -> list[str]:
        return [a.format(**self.values) for a in args]


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "card.toml").write_text(profile_text() + OTA)
    (tmp / "syntax.toml").write_text("[isd\n")
    (tmp / "list_algorithm.toml").write_text(profile_text() + OTA.replace('"aes-cbc"', "[]"))
    (tmp / "isd_key.toml").write_text(profile_text().replace("404142434445464748494A4B4C4D4E4F", "ZZ", 1))
    (tmp / "isd_i.toml").write_text(profile_text().replace('i = "70"', 'i = "zz"'))
    (tmp / "binary.toml").write_bytes(b"\xff\xfe\x00")
    (tmp / "notzip.cap").write_bytes(b"PK\x03\x04 not really")
    parts = components()
    del parts["Method"]
    (tmp / "missing.cap").write_bytes(build_cap(parts))
    (tmp / "good.cap").write_bytes(_GOOD_CAP)
    for name, raw in CRAFTED_CAPS.items():
        (tmp / name).write_bytes(raw)
    (tmp / "empty.txt").write_text("")
    (tmp / "garbage.txt").write_text("hello\nworld\n")
    (tmp / "packet.txt").write_text("# a command packet too short for its CHL\n0001FF\n")
    (tmp / "orphan.txt").write_text(
        "027100002412B00011EBC6B497E2CAD7AEDF36ACE0E3A29B38853F0FE9CCDE81913BE5702B73ABCE1F\n"
    )
    (tmp / "inventory.csv").write_text("iccid,msisdn\nnot-a-number,xx\n")
    (tmp / "inventory.json").write_text("{")
    (tmp / "counters.json").write_text("[1]")
    (tmp / "mismatch.apdu").write_text("# the card has CPLC data\n80CA9F7F00 6A88\n")
    state = tmp / "state"
    made = CliRunner().invoke(cli, ["card", "init", "--profile", str(tmp / "card.toml"), "--state", str(state)])
    assert made.exit_code == 0, made.output
    values = {"t": str(tmp), "state": str(state), "api": f"http://127.0.0.1:{_unused_port()}"}
    return Env(tmp, values)


E = ("--emulator", "{state}")
P = ("--profile", "{t}/card.toml")
STORE = ("--counter-store", "{t}/c.json")
API = ("--api", "{api}")
SRV = ("--data", "{t}/srv", "--admin", "127.0.0.1:0", "--api", "127.0.0.1:0")
USAGE, FAILURE, AUTH, REFUSED, TRANSPORT = (
    ExitCode.USAGE,
    ExitCode.FAILURE,
    ExitCode.AUTHENTICATION,
    ExitCode.CARD_REFUSED,
    ExitCode.TRANSPORT,
)

CASES: list[tuple[str, tuple[str, ...], ExitCode]] = [
    # global options
    ("kvn-range", ("--kvn", "300", *E, "list"), USAGE),
    ("kvn-text", ("--kvn", "zz", *E, "list"), USAGE),
    ("key-short", ("--key", "0011", *E, "list"), USAGE),
    ("key-hex", ("--key", "zz", *E, "list"), USAGE),
    ("key-odd", ("--key", "404", *E, "list"), USAGE),
    ("key-enc-alone", ("--key-enc", KEY, *E, "list"), USAGE),
    ("isd-short", ("--isd", "A0", *E, "list"), USAGE),
    ("isd-hex", ("--isd", "xyz", *E, "list"), USAGE),
    ("scp-i-two-bytes", ("--scp-i", "7070", *E, "list"), USAGE),
    ("scp-i-hex", ("--scp-i", "zz", *E, "list"), USAGE),
    ("scp-unknown", ("--scp", "04", *E, "list"), USAGE),
    ("level", ("--security-level", "99", *E, "list"), USAGE),
    ("profile-syntax", ("--profile", "{t}/syntax.toml", *E, "list"), USAGE),
    ("profile-binary", ("--profile", "{t}/binary.toml", *E, "list"), USAGE),
    ("profile-key", ("--profile", "{t}/isd_key.toml", *E, "list"), USAGE),
    ("profile-i", ("--profile", "{t}/isd_i.toml", *E, "list"), USAGE),
    ("profile-missing", ("--profile", "{t}/nope.toml", "list"), USAGE),
    ("trace-file-dir", ("--trace-file", "{t}/no/dir/t.txt", *E, "list"), USAGE),
    ("scp10-no-keys", ("--scp", "10", *E, "list"), USAGE),
    (
        "scp10-garbage",
        (
            "--scp",
            "10",
            *(x for k in ("key", "chain", "trust") for x in (f"--scp10-{k}", "{t}/garbage.txt")),
            *E,
            "list",
        ),
        USAGE,
    ),
    ("wrong-keys", ("--key", "00" * 16, *E, "list"), AUTH),
    ("unknown-kvn", ("--kvn", "0x31", *E, "list"), REFUSED),
    ("unknown-app", ("--app", "A000000099", *E, "list"), REFUSED),
    ("kvn-hex-range", ("--kvn", "100", *E, "list"), USAGE),
    ("kvn-after-command", (*E, "list", "-K", "zz"), USAGE),
    ("kvn-after-command-absent", (*E, "list", "--kvn", "31"), REFUSED),
    ("key-after-command", (*E, "list", "-k", "00" * 16), AUTH),
    ("example-and-profile", ("--example", "scp03", *P, *E, "list"), USAGE),
    ("example-unknown", ("--example", "scp99", *E, "list"), USAGE),
    ("no-command", ("nosuchcommand",), USAGE),
    ("no-option", ("list", "--nosuchoption"), USAGE),
    # card commands
    ("info-kvn", ("--kvn", "-1", *E, "info"), USAGE),
    ("info-emulator-file", ("--emulator", "{t}/card.toml", "info"), USAGE),
    ("apdu-hex", (*E, "apdu", "zz"), USAGE),
    ("apdu-short", (*E, "apdu", "00A4"), USAGE),
    ("apdu-odd", (*E, "apdu", "--plain", "123"), USAGE),
    ("apdu-too-long", (*E, "apdu", "00A40400" + "00" * 70000), USAGE),
    ("apdu-refused", (*E, "apdu", "00A4040007A0000000990099"), REFUSED),
    ("apdu-nothing", (*E, "apdu"), USAGE),
    ("apdu-script-and-args", (*E, "apdu", "--script", "{t}/empty.txt", "80CA006600"), USAGE),
    ("apdu-script-missing", (*E, "apdu", "--script", "{t}/nope.apdu"), USAGE),
    ("apdu-script-empty", (*E, "apdu", "--script", "{t}/empty.txt"), USAGE),
    ("apdu-script-garbage", (*E, "apdu", "--script", "{t}/garbage.txt"), USAGE),
    ("apdu-script-mismatch", (*E, "apdu", "--script", "{t}/mismatch.apdu"), REFUSED),
    ("put-key-kvn", (*E, "put-key", "--new-kvn", "300", "--new-key", KEY), USAGE),
    ("put-key-short", (*E, "put-key", "--new-kvn", "1", "--new-key", "4041"), USAGE),
    ("put-key-nothing", (*E, "put-key"), USAGE),
    ("put-key-kvn-text", (*E, "put-key", "--new-kvn", "x"), USAGE),
    ("put-key-kvn-hex-range", (*E, "put-key", "--new-kvn", "80", "--new-key", KEY), USAGE),
    ("put-key-token", (*E, "put-key", "--token-key", "zz"), USAGE),
    ("put-key-replace-unknown", (*E, "put-key", "--new-kvn", "0x31", "--new-key", KEY, "--replace", "0x77"), REFUSED),
    ("delete-key-nothing", (*E, "delete-key"), USAGE),
    ("delete-key-kvn-text", (*E, "delete-key", "--kvn", "x"), USAGE),
    ("delete-key-unknown", (*E, "delete-key", "--kid", "17"), REFUSED),
    ("delete-key-last", (*E, "delete-key", "--kvn", "30"), REFUSED),
    ("generate-key-kid", (*E, "scp11", "generate-key", "--kid", "10", "--kvn", "2"), USAGE),
    ("generate-key-no-kvn", (*E, "scp11", "generate-key"), USAGE),
    ("generate-key-replace-unknown", (*E, "scp11", "generate-key", "--kvn", "2", "--replace", "9"), REFUSED),
    ("delete-short", (*E, "delete", "A0"), USAGE),
    ("delete-unknown", (*E, "delete", PKG), REFUSED),
    ("delete-hex", (*E, "delete", "nothex"), USAGE),
    ("load-not-zip", (*E, "load", "{t}/notzip.cap"), FAILURE),
    ("load-missing-component", (*E, "load", "{t}/missing.cap"), FAILURE),
    ("load-no-file", (*E, "load", "{t}/nope.cap"), USAGE),
    ("load-block-negative", (*E, "load", "{t}/good.cap", "--block-size", "-1"), USAGE),
    ("load-block-big", (*E, "load", "{t}/good.cap", "--block-size", "100000"), USAGE),
    ("load-sd-short", (*E, "load", "{t}/good.cap", "--sd", "A0"), USAGE),
    ("load-related-alone", (*E, "load", "{t}/good.cap", "--related"), USAGE),
    ("install-unknown", (*E, "install", "--package", PKG, "--applet", PKG + "01"), REFUSED),
    ("install-nothing", (*E, "install"), USAGE),
    ("install-bad-cap", (*E, "install", "--cap", "{t}/notzip.cap"), FAILURE),
    ("install-privilege-name", (*E, "install", "--package", PKG, "--applet", PKG + "01", "--privileges", "x"), USAGE),
    (
        "install-privilege-len",
        (*E, "install", "--package", PKG, "--applet", PKG + "01", "--privileges", "00" * 7),
        USAGE,
    ),
    ("install-params", (*E, "install", "--package", PKG, "--applet", PKG + "01", "--params", "zz"), USAGE),
    ("store-data-hex", (*E, "store-data", "zz"), USAGE),
    ("store-data-p1", (*E, "store-data", "--p1", "zz", "00"), USAGE),
    ("store-data-p1-empty", (*E, "store-data", "--p1", "", "00"), USAGE),
    ("store-data-unknown-app", (*E, "store-data", "--to", PKG, "0011"), REFUSED),
    ("set-status-no-aid", (*E, "set-status", "lock"), USAGE),
    ("set-status-terminate", (*E, "set-status", "terminate"), USAGE),
    ("set-status-unknown", (*E, "set-status", "lock", PKG), REFUSED),
    ("set-status-action", (*E, "set-status", "frobnicate"), USAGE),
    ("create-ssd-short", (*E, "create-ssd", "A0"), USAGE),
    ("create-ssd-exists", (*E, "create-ssd", "A000000151000000"), REFUSED),
    ("create-ssd-key", (*E, "create-ssd", "A00000015153504101", "--ssd-key", "4041"), USAGE),
    # card init / show / serve / admin-session
    ("card-init-syntax", ("card", "init", "--profile", "{t}/syntax.toml", "--state", "{t}/s2"), USAGE),
    ("card-init-exists", ("card", "init", "--profile", "{t}/card.toml", "--state", "{state}"), USAGE),
    ("card-init-neither", ("card", "init", "--state", "{t}/s4"), USAGE),
    (
        "card-init-both",
        ("card", "init", "--example", "scp03", "--profile", "{t}/card.toml", "--state", "{t}/s4"),
        USAGE,
    ),
    ("card-init-example-unknown", ("card", "init", "--example", "scp99", "--state", "{t}/s4"), USAGE),
    ("card-show-none", ("card", "show", "--state", "{t}/nostate"), FAILURE),
    ("card-show-file", ("card", "show", "--state", "{t}/card.toml"), USAGE),
    ("card-serve-host", ("card", "serve", "--state", "{state}", "--vpcd", "no-such-host.invalid:1"), USAGE),
    ("card-serve-port", ("card", "serve", "--state", "{state}", "--vpcd", "127.0.0.1:99999"), USAGE),
    ("card-admin-none", ("card", "admin-session", "--state", "{t}/nostate"), USAGE),
    ("card-admin-retries", ("card", "admin-session", "--state", "{state}", "--retries", "-1"), USAGE),
    # ota
    ("ota-build-short-apdu", ("ota", "build", "00A4", *P, *STORE), USAGE),
    ("ota-build-counter-negative", ("ota", "build", SELECT_SPN, *P, *STORE, "--counter", "-5"), USAGE),
    ("ota-build-counter-big", ("ota", "build", SELECT_SPN, *P, *STORE, "--counter", "1099511627776"), USAGE),
    ("ota-build-extended", ("ota", "build", "00D6000000012C" + "00" * 300, *P, *STORE), USAGE),
    ("ota-build-kvn-range", ("ota", "build", SELECT_SPN, *P, *STORE, "--kvn", "16"), USAGE),
    ("demo-mitm-attack-unknown", ("demo", "mitm", "--attack", "sniff"), USAGE),
    ("demo-mitm-level-not-hex", ("demo", "mitm", "--level", "zz"), USAGE),
    ("demo-mitm-no-cell", ("demo", "mitm", "--scp", "80", "--attack", "impersonate-card"), USAGE),
    ("demo-mitm-message-empty", ("demo", "mitm", "--message", ""), USAGE),
    ("ota-build-kvn-absent", ("ota", "build", SELECT_SPN, *P, *STORE, "--kvn", "7"), USAGE),
    ("ota-build-kvn-hex-absent", ("ota", "build", SELECT_SPN, *P, *STORE, "--kvn", "0x0F"), USAGE),
    ("ota-build-kvn-text", ("ota", "build", SELECT_SPN, *P, *STORE, "--kvn", "zz"), USAGE),
    ("ota-build-key-length", ("ota", "build", SELECT_SPN, "--kic", "0011", "--kid", "0011", *STORE), USAGE),
    ("ota-build-key-hex", ("ota", "build", SELECT_SPN, "--kic", "zz", "--kid", "zz", *STORE), USAGE),
    ("ota-build-kic-alone", ("ota", "build", SELECT_SPN, "--kic", KEY, *STORE), USAGE),
    ("ota-build-spi-short", ("ota", "build", SELECT_SPN, *P, *STORE, "--spi", "16"), USAGE),
    ("ota-build-spi-rfu", ("ota", "build", SELECT_SPN, *P, *STORE, "--spi", "FFFF"), USAGE),
    ("ota-build-tar", ("ota", "build", SELECT_SPN, *P, *STORE, "--tar", "zz"), USAGE),
    ("ota-build-tar-length", ("ota", "build", SELECT_SPN, *P, *STORE, "--tar", "B0"), USAGE),
    ("ota-build-profile-syntax", ("ota", "build", SELECT_SPN, "--profile", "{t}/syntax.toml", *STORE), USAGE),
    ("ota-build-profile-binary", ("ota", "build", SELECT_SPN, "--profile", "{t}/binary.toml", *STORE), USAGE),
    ("ota-build-store-json", ("ota", "build", SELECT_SPN, *P, "--counter-store", "{t}/counters.json"), FAILURE),
    ("ota-build-store-dir", ("ota", "build", SELECT_SPN, *P, "--counter-store", "{t}"), USAGE),
    ("ota-build-originator", ("ota", "build", SELECT_SPN, *P, *STORE, "--originator", "1" * 40), USAGE),
    ("ota-build-no-keys", ("ota", "build", SELECT_SPN, *STORE), USAGE),
    ("ota-parse-hex", ("ota", "parse", "zz", *P), USAGE),
    ("ota-parse-odd", ("ota", "parse", "0", *P), USAGE),
    ("ota-parse-truncated", ("ota", "parse", "027100000B0A", *P), FAILURE),
    ("ota-send-wrong-length", ("ota", "send", "00A4000000", *P, *STORE, *E), REFUSED),
    ("ota-send-unknown-tar", ("ota", "send", SELECT_SPN, *P, *STORE, *E, "--tar", "BADBAD"), REFUSED),
    ("ota-send-counter-low", ("ota", "send", SELECT_SPN, *P, *STORE, *E, "--counter", "0"), REFUSED),
    ("ota-send-kvn-absent", ("ota", "send", SELECT_SPN, *P, *STORE, *E, "--kvn", "2"), USAGE),
    ("ota-no-subcommand", ("ota",), USAGE),
    # bridge (nothing here binds a port: the life cycle has its own tests)
    ("bridge-address", ("bridge", "--smpp", "nonsense"), USAGE),
    ("bridge-port-zero", ("bridge", "--smpp", "127.0.0.1:0"), USAGE),
    ("bridge-port-text", ("bridge", "--smpp", "127.0.0.1:x"), USAGE),
    ("bridge-two-cards", ("bridge", "--sink", *E), USAGE),
    ("bridge-emulator-file", ("bridge", "--emulator", "{t}/card.toml"), USAGE),
    ("bridge-no-fleet", ("bridge", "--fleet", "{t}"), FAILURE),
    ("bridge-workers", ("bridge", "--workers", "0", "--sink"), USAGE),
    # server (fails before it listens) and its API's clients (an unused port: nobody answers)
    ("server-api-port", ("server", "--api", "127.0.0.1:70000", "--data", "{t}/srv"), USAGE),
    ("server-profile", ("server", *SRV, "--profile", "{t}/syntax.toml"), USAGE),
    ("server-db", ("server", *SRV, "--db", "nonsense://"), FAILURE),
    ("server-pkcs11", ("server", *SRV, "--keys", "pkcs11"), FAILURE),
    ("server-smpp-port", ("server", "--smpp", "127.0.0.1:99999", "--worker-only", "--data", "{t}/srv"), USAGE),
    ("server-worker-only", ("server", "--worker-only", "--data", "{t}/srv"), USAGE),
    ("server-wait-url", ("server", "wait", "--api", "ftp://127.0.0.1"), USAGE),
    ("server-wait-admin", ("server", "wait", "--admin", "127.0.0.1:x"), USAGE),
    ("server-wait-nobody", ("server", "wait", "--api", "{api}", "--admin", "none", "--timeout", "0.3"), TRANSPORT),
    # the store's tokens and audit trail (docs/security.md)
    ("token-no-scope", ("server", "token", "create", "--data", "{t}/srv", "--name", "a"), USAGE),
    ("token-bad-scope", ("server", "token", "create", "--data", "{t}/srv", "--name", "a", "--scope", "root"), USAGE),
    (
        "token-expires",
        ("server", "token", "create", "--data", "{t}/srv", "--name", "a", "--scope", "read", "--expires", "5x"),
        USAGE,
    ),
    (
        "token-tag",
        ("server", "token", "create", "--data", "{t}/srv", "--name", "a", "--scope", "read", "--cards", "a b"),
        USAGE,
    ),
    ("token-no-store", ("server", "token", "revoke", "--data", "{t}/nowhere", "a"), USAGE),
    ("token-list-no-store", ("server", "token", "list", "--data", "{t}/nowhere", "--json"), USAGE),
    ("audit-no-store", ("audit", "verify", "--data", "{t}/nowhere"), USAGE),
    ("audit-db", ("audit", "verify", "--db", "nonsense://"), FAILURE),
    ("audit-since", ("audit", "export", "--data", "{t}/nowhere", "--since", "yesterday", "--json"), USAGE),
    ("ram-push-unreachable", ("ram", "push", "--card", "1", *API, "00A4040000"), TRANSPORT),
    ("ram-push-url", ("ram", "push", "--card", "1", "--api", "ftp://x", "00A4040000"), USAGE),
    ("ram-push-apdu", ("ram", "push", "--card", "1", *API, "zz"), USAGE),
    ("ram-push-no-card", ("ram", "push", *API, "00A4040000"), USAGE),
    ("ram-status-unreachable", ("ram", "status", *API), TRANSPORT),
    ("ram-status-id", ("ram", "status", "x", *API), USAGE),
    ("ram-results-unreachable", ("ram", "results", "1", *API), TRANSPORT),
    ("ram-results-no-id", ("ram", "results", *API), USAGE),
    ("ram-cancel-unreachable", ("ram", "cancel", "1", *API), TRANSPORT),
    ("campaign-create-unreachable", ("campaign", "create", "00A4040000", "--card", "1", *API), TRANSPORT),
    ("campaign-create-no-cards", ("campaign", "create", "00A4040000", *API), USAGE),
    ("campaign-create-csv", ("campaign", "create", "00A4040000", "--inventory", "{t}/inventory.csv", *API), USAGE),
    ("campaign-create-json", ("campaign", "create", "00A4040000", "--inventory", "{t}/inventory.json", *API), USAGE),
    ("campaign-create-rate", ("campaign", "create", "00A4040000", "--card", "1", "--rate", "x", *API), USAGE),
    ("campaign-status-unreachable", ("campaign", "status", "1", *API), TRANSPORT),
    ("campaign-results-unreachable", ("campaign", "results", "1", *API), TRANSPORT),
    ("campaign-cancel-unreachable", ("campaign", "cancel", "1", *API), TRANSPORT),
    ("inventory-csv", ("inventory", "import", "{t}/inventory.csv", *API), USAGE),
    ("inventory-json", ("inventory", "import", "{t}/inventory.json", *API), USAGE),
    ("inventory-missing", ("inventory", "import", "{t}/nope.csv", *API), USAGE),
    # fleet
    ("fleet-count", ("fleet", "generate", "--count", "0", "--dir", "{t}/f"), USAGE),
    ("fleet-master-hex", ("fleet", "generate", "--count", "2", "--dir", "{t}/f", "--master-key", "zz"), USAGE),
    ("fleet-master-length", ("fleet", "generate", "--count", "2", "--dir", "{t}/f", "--master-key", "00"), USAGE),
    ("fleet-profile", ("fleet", "generate", "--count", "2", "--dir", "{t}/f", "--profile", "{t}/syntax.toml"), USAGE),
    ("fleet-prefix", ("fleet", "generate", "--count", "2", "--dir", "{t}/f2", "--iccid-prefix", "abc"), FAILURE),
    ("fleet-show-none", ("fleet", "show", "{t}"), FAILURE),
    ("fleet-show-json-none", ("fleet", "show", "{t}", "--json"), FAILURE),
    ("fleet-kvn-hex", ("fleet", "generate", "--count", "2", "--dir", "{t}/f3", "--kvn", "0x10"), USAGE),
    ("fleet-agents-none", ("fleet", "agents", "{t}"), FAILURE),
    # trace, keys doctor, scp10
    ("trace-empty", ("trace", "decode", "{t}/empty.txt"), FAILURE),
    ("trace-garbage", ("trace", "decode", "{t}/garbage.txt"), FAILURE),
    ("trace-missing", ("trace", "decode", "{t}/nope.txt"), USAGE),
    ("trace-key", ("trace", "decode", "{t}/garbage.txt", "--key", "00"), USAGE),
    ("trace-scp02-i", ("trace", "decode", "{t}/garbage.txt", "--scp02-i", "zz"), USAGE),
    ("trace-scp01-i", ("trace", "decode", "{t}/garbage.txt", "--scp01-i", "07"), USAGE),
    ("doctor-command-hex", ("keys", "doctor", "--command", "zz", "--response", "00"), USAGE),
    ("doctor-command-alone", ("keys", "doctor", "--command", "8050000008" + "00" * 8), USAGE),
    ("doctor-short-response", ("keys", "doctor", "--command", "8050000008" + "00" * 8, "--response", "9000"), FAILURE),
    ("doctor-trace", ("keys", "doctor", "--from-trace", "{t}/garbage.txt"), FAILURE),
    # trace decode / keys doctor: SCP10 and SCP80 options and inputs
    ("trace-scp10-card-key-missing", ("trace", "decode", "{t}/garbage.txt", "--scp10-card-key", "{t}/no.pem"), USAGE),
    ("trace-scp10-card-key-text", ("trace", "decode", "{t}/garbage.txt", "--scp10-card-key", "{t}/garbage.txt"), USAGE),
    ("trace-scp10-oce-key-text", ("trace", "decode", "{t}/garbage.txt", "--scp10-oce-key", "{t}/garbage.txt"), USAGE),
    ("trace-scp10-session-keys", ("trace", "decode", "{t}/garbage.txt", "--scp10-session-keys", "mac=00"), USAGE),
    ("trace-scp10-session-file", ("trace", "decode", "{t}/garbage.txt", "--scp10-session-keys", "@{t}/no.txt"), USAGE),
    ("trace-kic-alone", ("trace", "decode", "{t}/garbage.txt", "--kic", "00" * 16), USAGE),
    ("trace-kid-length", ("trace", "decode", "{t}/garbage.txt", "--kic", "00" * 16, "--kid", "00"), USAGE),
    ("trace-kid-hex", ("trace", "decode", "{t}/garbage.txt", "--kic", "00" * 16, "--kid", "zz"), USAGE),
    ("trace-kic-algorithm", ("trace", "decode", "{t}/garbage.txt", "--kic-algorithm", "rot13"), USAGE),
    ("trace-packet-malformed", ("trace", "decode", "{t}/packet.txt"), AUTH),
    ("trace-packet-orphan-por", ("trace", "decode", "{t}/orphan.txt"), FAILURE),
    (
        "doctor-scp10-card-key",
        ("keys", "doctor", "--from-trace", "{t}/packet.txt", "--scp10-card-key", "{t}/no"),
        USAGE,
    ),
    ("doctor-scp10-oce-key", ("keys", "doctor", "--from-trace", "{t}/packet.txt", "--scp10-oce-key", "{t}/no"), USAGE),
    (
        "doctor-scp10-session-keys",
        ("keys", "doctor", "--from-trace", "{t}/packet.txt", "--scp10-session-keys", "x"),
        USAGE,
    ),
    ("doctor-kid-alone", ("keys", "doctor", "--from-trace", "{t}/packet.txt", "--kid", "00" * 16), USAGE),
    ("doctor-kid-algorithm", ("keys", "doctor", "--from-trace", "{t}/packet.txt", "--kid-algorithm", "x"), USAGE),
    ("doctor-packets-no-keys", ("keys", "doctor", "--from-trace", "{t}/packet.txt"), FAILURE),
    ("doctor-packets-wrong", ("keys", "doctor", "--from-trace", "{t}/packet.txt", *P), AUTH),
    ("scp10-pki-file", ("scp10", "make-pki", "--out", "{t}/card.toml"), USAGE),
    ("scp10-pki-bits", ("scp10", "make-pki", "--out", "{t}/pki", "--bits", "10"), USAGE),
    ("scp11-pki-file", ("scp11", "make-pki", "--out", "{t}/card.toml"), USAGE),
    ("scp11-pki-curve", ("scp11", "make-pki", "--out", "{t}/pki11", "--curve", "P-999"), USAGE),
]
LIBRARY_CASES: list[tuple[str, tuple[str, ...], ExitCode]] = [
    *((f"load-{n}", (*E, "load", "{t}/" + n), FAILURE) for n in CRAFTED_CAPS),
    (
        "card-init-list",
        ("card", "init", "--profile", "{t}/list_algorithm.toml", "--state", "{t}/s3"),
        USAGE,
    ),
    (
        "ota-build-list",
        ("ota", "build", SELECT_SPN, "--profile", "{t}/list_algorithm.toml", *STORE),
        USAGE,
    ),
]
PCSC_CASES: list[tuple[str, tuple[str, ...], ExitCode]] = [
    ("reader-unknown", ("--reader", "no-such-reader-xyz", "info"), TRANSPORT),
    ("reader-after-command", ("info", "-r", "no-such-reader-xyz"), TRANSPORT),
    ("ota-send-reader-unknown", ("ota", "send", SELECT_SPN, *P, *STORE, "--reader", "no-such-reader-xyz"), TRANSPORT),
]


def invoke(env: Env, args: tuple[str, ...]) -> Result:
    runner = CliRunner(env={"XDG_DATA_HOME": str(env.tmp / "xdg"), "GPCHANNEL_READER": None, "GPCHANNEL_KEY": None})
    return runner.invoke(cli, env.expand(args), catch_exceptions=True)


def check(result: Result, code: ExitCode) -> None:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert result.exit_code == code, text
    assert len(errors) == 1, text
    assert errors[0] in result.stderr  # errors go to stderr
    assert "internal error" not in errors[0]


def test_the_table_is_large_and_covers_every_command() -> None:
    every = [args for _, args, _ in CASES] + [args for _, args, _ in LIBRARY_CASES]
    assert len(every) >= 80
    words = {a for args in every for a in args}
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        if name == "readers":  # needs PC/SC: see PCSC_CASES and test_readers_without_pcscd
            continue
        assert name in words, f"no bad invocation of `gpchannel {name}`"


@pytest.mark.parametrize(("args", "code"), [pytest.param(a, c, id=n) for n, a, c in CASES])
def test_bad_invocation(env: Env, args: tuple[str, ...], code: ExitCode) -> None:
    check(invoke(env, args), code)


@pytest.mark.parametrize(("args", "code"), [pytest.param(a, c, id=n) for n, a, c in LIBRARY_CASES])
def test_bad_input_to_the_library(env: Env, args: tuple[str, ...], code: ExitCode) -> None:
    check(invoke(env, args), code)


@pytest.mark.pcsc
@pytest.mark.parametrize(("args", "code"), [pytest.param(a, c, id=n) for n, a, c in PCSC_CASES])
def test_unknown_reader(env: Env, args: tuple[str, ...], code: ExitCode) -> None:
    check(invoke(env, args), code)


# ---------------------------------------------------------------------------------------------- real processes


def gpchannel(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from gpchannel.cli.main import main; main()", *args]
    environment = {k: v for k, v in os.environ.items() if k != "GPCHANNEL_DEBUG"} | (extra_env or {})
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment, check=False)


def test_help_lists_every_exit_code() -> None:
    done = gpchannel("--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout[done.stdout.index("Exit codes:") :]
    for code in ExitCode:
        assert f"{int(code):>3}  " in text


def test_a_process_prints_one_error_line(env: Env) -> None:
    """The console script's own process: an out-of-range counter (once a ValueError traceback) is a usage error."""
    done = gpchannel(*env.expand(("ota", "build", SELECT_SPN, *P, *STORE, "--counter", "-5")))
    assert done.returncode == ExitCode.USAGE and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        "error: Invalid value for '--counter': -5 is not in the range 0<=x<=1099511627775. "
        "(see 'gpchannel ota build --help')"
    ]
    assert done.stdout == ""
