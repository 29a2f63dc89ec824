"""The wheel as a pip user gets it (issue 17): built from a copy of the sources, installed into a fresh virtual
environment outside the repository (no editable install, no extras: its dependencies come from the wheel's own
requirements), then run as a new user would: ``--version``, ``--help``, ``card init --example`` and ``list`` on the
in-process emulator; the server and PC/SC commands say what to install instead of failing on an import.

Marked ``wheel``: it builds and installs a package (a minute or two; pip's cache and index as configured)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    work: Path

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GPCHANNEL_", "GP_", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        result = subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(source)], check=True, cwd=tmp, timeout=600)
    (wheel,) = dist.glob("gpchannel-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    venv_pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*venv_pip, "install", str(wheel)], check=True, cwd=tmp, timeout=600)
    work = tmp / "work"
    work.mkdir()
    return Installed(wheel, venv, work)


def test_the_wheel_ships_the_example_profiles(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert "gpchannel/data/profiles/scp03.toml" in names and "gpchannel/data/profiles/scp02.toml" in names
    requires = [n for n in names if n.endswith("METADATA")]
    metadata = zipfile.ZipFile(installed.wheel).read(requires[0]).decode()
    assert 'Requires-Dist: sqlalchemy>=2.0; extra == "server"' in metadata
    assert 'Requires-Dist: pyscard>=2.0; extra == "pcsc"' in metadata


def test_installed_outside_the_repository_without_extras(installed: Installed) -> None:
    probe = (
        "import importlib.util, json, gpchannel; print(json.dumps([gpchannel.__file__, "
        "[m for m in ('sqlalchemy', 'alembic', 'aiohttp', 'psycopg', 'pkcs11', 'smartcard') "
        "if importlib.util.find_spec(m)]]))"
    )
    where, extras = json.loads(installed.run("python", "-c", probe).stdout)
    assert Path(where).is_relative_to(installed.venv) and not Path(where).is_relative_to(ROOT)
    assert extras == []


def test_version_and_help_with_the_base_install(installed: Installed) -> None:
    assert installed.run("gpchannel", "--version").stdout.strip() == "gpchannel, version 0.1.0"
    shown = installed.run("gpchannel", "--help").stdout
    assert "Exit codes:" in shown and "server" in shown and "--reader" in shown


def test_card_init_example_then_list_on_the_emulator(installed: Installed) -> None:
    state = installed.work / "card"
    made = installed.run("gpchannel", "card", "init", "--example", "scp03", "--state", str(state))
    assert "ISD A000000151000000" in made.stdout
    listed = installed.run("gpchannel", "--emulator", str(state), "--example", "scp03", "list")
    assert "A0000000871002FF49FF0589" in listed.stdout and "…" not in listed.stdout
    assert "well-known test key" in listed.stderr
    as_json = json.loads(installed.run("gpchannel", "list", "--emulator", str(state), "--json").stdout)
    assert as_json[0]["aid"] == "A000000151000000"


def test_server_and_pcsc_commands_say_what_to_install(installed: Installed) -> None:
    server = installed.run("gpchannel", "server", "--data", str(installed.work / "srv"), expect=5)
    errors = [line for line in server.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pip install 'gpchannel[server]'" in errors[0], server.stderr
    audit = installed.run("gpchannel", "audit", "verify", "--data", str(installed.work / "srv"), expect=5)
    assert "gpchannel[server]" in audit.stderr
    readers = installed.run("gpchannel", "readers", expect=5)
    errors = [line for line in readers.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gpchannel[pcsc]" in errors[0] and "libpcsclite-dev swig gcc python3-dev" in errors[0]
