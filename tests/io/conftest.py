"""Fixtures for the real PC/SC stack (pcscd + vsmartcard vpcd): `pcscd_readers` and `virtual_reader`.

pcscd is started with scripts/pcscd.sh when it does not answer; the tests skip, saying why, only when it
cannot run (not installed, no vpcd driver, pyscard missing).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpchannel.errors import TransportError
from gpchannel.io.pcsc import card_present, list_readers
from gpchannel.io.vpcd import VirtualCard, VpcdSlotLock, VpcdThread, vpcd_base_port

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
    """A vpcd reader without a card (no virtual card connected to its slot), waiting a little for one."""
    return _claim(readers, attempts, lock=False)[0]


def _claim(readers: list[str], attempts: int, lock: bool) -> tuple[str, VpcdSlotLock | None]:
    """A free vpcd reader, with its slot lock held when ``lock`` (see VpcdSlotLock).

    The last slot is tried first: the emulator, the demo and the CLI default to the first one ("Virtual PCD 00
    00", port 35963), which a developer's session may be using while these tests run.
    """
    pause = threading.Event()
    base = vpcd_base_port()
    for _ in range(attempts):
        for reader in reversed(readers):
            slot_lock = VpcdSlotLock(base + _slot(reader)) if lock else None
            if slot_lock is not None and not slot_lock.try_acquire():
                continue
            if not card_present(reader):
                return reader, slot_lock
            if slot_lock is not None:
                slot_lock.release()
        pause.wait(0.1)
    raise AssertionError(f"every vpcd slot holds a card: {readers}; another virtual card is connected")


Serve = Callable[[VirtualCard], AbstractContextManager[VirtualReader]]
"""The type of the ``virtual_reader`` fixture."""


@pytest.fixture
def virtual_reader(pcscd_readers: list[str]) -> Iterator[Serve]:
    """A factory: ``with virtual_reader(card) as reader:`` serves ``card`` through vpcd on a free slot."""

    @contextmanager
    def serve(card: VirtualCard) -> Iterator[VirtualReader]:
        name, slot_lock = _claim(pcscd_readers, 100, lock=True)
        assert slot_lock is not None
        with slot_lock, VpcdThread(card, port=slot_lock.port) as runner:
            assert runner.wait_connected(1, timeout=20), f"the virtual card never reached vpcd on {slot_lock.port}"
            yield VirtualReader(name, slot_lock.port, runner)

    yield serve
