"""Each symmetric protocol module (scp01, scp02, scp03) exposes its host and card classes the same way: the
classes live in ``scpNN_host`` / ``scpNN_card`` and are re-exported lazily by ``scpNN``."""

from __future__ import annotations

import importlib

import pytest

from gpchannel.scp.common import CardChannel, HostChannel, ScpProtocol


@pytest.mark.parametrize("number", ["01", "02", "03"])
def test_primitives_module_reexports_host_and_card(number: str) -> None:
    primitives = importlib.import_module(f"gpchannel.scp.scp{number}")
    host = importlib.import_module(f"gpchannel.scp.scp{number}_host")
    card = importlib.import_module(f"gpchannel.scp.scp{number}_card")
    host_class = getattr(primitives, f"Scp{number}Host")
    card_class = getattr(primitives, f"Scp{number}Card")
    assert host_class is getattr(host, f"Scp{number}Host")
    assert card_class is getattr(card, f"Scp{number}Card")
    assert issubclass(host_class, HostChannel) and issubclass(card_class, CardChannel)
    assert host_class.protocol is card_class.protocol is ScpProtocol(int(number))
    assert {f"Scp{number}Host", f"Scp{number}Card"} <= set(primitives.__all__)


@pytest.mark.parametrize("number", ["01", "02", "03"])
def test_unknown_attribute_still_raises(number: str) -> None:
    primitives = importlib.import_module(f"gpchannel.scp.scp{number}")
    with pytest.raises(AttributeError, match="no attribute"):
        getattr(primitives, f"Scp{number}Missing")
