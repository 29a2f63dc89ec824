"""The layer contracts hold over src/gpchannel (tests/layers.py states them), and the checker catches a breach:
a small fake tree with an upward import hidden inside a function under ``TYPE_CHECKING``, and a lazy cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gpchannel
from tests.layers import ALLOWED, LAYERS, Import, cycles, import_graph, layer_violations, unit_of, unknown_units

ROOT = Path(gpchannel.__file__).parent


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph(ROOT)


def test_every_package_has_a_layer(graph: dict[str, list[Import]]) -> None:
    assert unknown_units(graph) == []


def test_no_import_crosses_a_layer_the_wrong_way(graph: dict[str, list[Import]]) -> None:
    assert [str(v) for v in layer_violations(graph)] == []


def test_nothing_imports_the_server_but_the_server_and_the_cli(graph: dict[str, list[Import]]) -> None:
    importers = {unit_of(i.source) for imports in graph.values() for i in imports if unit_of(i.target) == "server"}
    assert importers <= {"server", "cli"}


def test_the_core_imports_nothing_above_it(graph: dict[str, list[Import]]) -> None:
    above = {"io", "smpp", "server", "cli", "emulator", "mitm", "host", "demo"}
    core = LAYERS["base"] | LAYERS["core"]
    assert all(not ALLOWED[unit] & above for unit in core)
    assert [str(i) for m in graph if unit_of(m) in core for i in graph[m] if unit_of(i.target) in above] == []


def test_io_imports_only_the_core(graph: dict[str, list[Import]]) -> None:
    core = LAYERS["base"] | LAYERS["core"]
    outside = [str(i) for m in graph if unit_of(m) == "io" for i in graph[m] if unit_of(i.target) not in core | {"io"}]
    assert outside == []


def test_no_import_cycle(graph: dict[str, list[Import]]) -> None:
    assert "gpchannel.scp.scp03" in {i.target for i in graph["gpchannel.scp.scp03_host"]}
    assert cycles(graph) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "gpchannel"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


def test_the_checker_finds_an_upward_import_hidden_in_a_function(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "codec/__init__.py": "",
            "codec/apdu.py": (
                "from typing import TYPE_CHECKING\n"
                "from gpchannel.errors import DecodeError\n"
                "def parse() -> None:\n"
                "    if TYPE_CHECKING:\n"
                "        from gpchannel.server import keys\n"
            ),
            "errors.py": "class DecodeError(Exception): ...\n",
            "server/__init__.py": "",
            "server/keys.py": "from gpchannel.codec.apdu import parse\n",
        },
    )
    graph = import_graph(package)
    assert layer_violations(graph) == [Import("gpchannel.codec.apdu", "gpchannel.server.keys", 5)]
    assert cycles(graph) == [["gpchannel.codec.apdu", "gpchannel.server.keys", "gpchannel.codec.apdu"]]


def test_the_checker_follows_relative_imports_and_names_a_new_package(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "io/__init__.py": "",
            "io/pcsc.py": "from ..cli import main\n",
            "cli/__init__.py": "",
            "cli/main.py": "from gpchannel.io import pcsc\n",
            "plugins/__init__.py": "",
        },
    )
    graph = import_graph(package)
    assert [str(v) for v in layer_violations(graph)] == ["gpchannel.io.pcsc:1 imports gpchannel.cli.main"]
    assert unknown_units(graph) == ["plugins"]
    assert cycles(graph) == [["gpchannel.cli.main", "gpchannel.io.pcsc", "gpchannel.cli.main"]]


def test_the_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "crypto/__init__.py": "",
            "crypto/keys.py": "import hashlib\n",
            "scp/__init__.py": "",
            "scp/scp03.py": "from gpchannel.crypto.keys import *\nfrom gpchannel.crypto import keys\n",
            "cli/__init__.py": "",
            "cli/main.py": "import gpchannel.scp.scp03\n",
        },
    )
    graph = import_graph(package)
    assert layer_violations(graph) == [] and cycles(graph) == [] and unknown_units(graph) == []
    assert {i.target for i in graph["gpchannel.scp.scp03"]} == {"gpchannel.crypto.keys"}


BANNED_IN_THE_CORE = {
    "import threading": "threading",
    "import secrets": "secrets",
    "import os\nR = os.urandom": "os.urandom",
    "import sqlalchemy": "sqlalchemy",
    "import OpenSSL": "OpenSSL",
    "import pkcs11": "pkcs11",
    "import smpplib": "smpplib",
    "from gpchannel.smpp.client import OtaSmppClient": "gpchannel.smpp.client",
    "import socket": "socket",
}


def _ruff_banned(path: str, source: str) -> str:
    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID251", "--stdin-filename", path, "-"]
    done = subprocess.run(command, input=source, capture_output=True, text=True, cwd=repo, check=False)
    return done.stdout


@pytest.mark.parametrize("source", sorted(BANNED_IN_THE_CORE))
def test_ruff_bans_io_threads_randomness_and_storage_in_the_core(source: str) -> None:
    assert f"`{BANNED_IN_THE_CORE[source]}` is banned" in _ruff_banned("src/gpchannel/scp/probe.py", source)
    assert "banned" not in _ruff_banned("src/gpchannel/server/probe.py", source)
