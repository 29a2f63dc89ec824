"""Fixtures for the real PC/SC stack (pcscd + vsmartcard vpcd): `pcscd_readers` and `virtual_reader`.

pcscd is started with scripts/pcscd.sh when it does not answer; the tests skip, saying why, only when it
cannot run (not installed, no vpcd driver, pyscard missing).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpchannel.errors import TransportError
from gpchannel.io.pcsc import card_present, list_readers
from gpchannel.io.vpcd import VirtualCard, VpcdThread, vpcd_base_port

REPO = Path(__file__).resolve().parents[2]
PCSCD_SCRIPT = REPO / "scripts" / "pcscd.sh"
VPCD_NAME = "Virtual PCD"


def _vpcd_readers() -> list[str]:
    return [r for r in list_readers() if VPCD_NAME in r]


@pytest.fixture(scope="session")
def pcscd_readers() -> list[str]:
    """The vpcd readers of a running pcscd (started with scripts/pcscd.sh if needed)."""
    try:
        readers = _vpcd_readers()
    except TransportError:
        readers = []
    if readers:
        return readers
    result = subprocess.run([str(PCSCD_SCRIPT), "start"], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.skip(f"pcscd cannot run here: {(result.stderr or result.stdout).strip()}")
    try:
        readers = _vpcd_readers()
    except TransportError as exc:
        pytest.skip(f"pcscd started but PC/SC is unusable from Python: {exc}")
    if not readers:
        pytest.skip(f"pcscd runs but lists no {VPCD_NAME!r} reader (is vsmartcard-vpcd installed?)")
    return readers


@dataclass
class VirtualReader:
    """A VirtualCard served on one vpcd slot: ``name`` is its PC/SC reader, ``runner`` the serving thread."""

    name: str
    port: int
    runner: VpcdThread


def _slot(reader: str) -> int:
    return int(reader.split()[-1], 16)


def free_reader(readers: list[str], attempts: int = 100) -> str:
    """A vpcd reader without a card (a slot no virtual card is connected to), waiting a little for one.

    The last slot is tried first: the emulator, the demo and the CLI default to the first one ("Virtual PCD 00
    00", port 35963), which a developer's session may be using while these tests run.
    """
    import threading

    pause = threading.Event()
    for _ in range(attempts):
        for reader in reversed(readers):
            if not card_present(reader):
                return reader
        pause.wait(0.1)
    raise AssertionError(f"every vpcd slot holds a card: {readers}; another virtual card is connected")


Serve = Callable[[VirtualCard], AbstractContextManager[VirtualReader]]
"""The type of the ``virtual_reader`` fixture."""


@pytest.fixture
def virtual_reader(pcscd_readers: list[str]) -> Iterator[Serve]:
    """A factory: ``with virtual_reader(card) as reader:`` serves ``card`` through vpcd on a free slot."""

    @contextmanager
    def serve(card: VirtualCard) -> Iterator[VirtualReader]:
        name = free_reader(pcscd_readers)
        port = vpcd_base_port() + _slot(name)
        with VpcdThread(card, port=port) as runner:
            assert runner.wait_connected(1, timeout=20), f"the virtual card never reached vpcd on port {port}"
            yield VirtualReader(name, port, runner)

    yield serve
