"""The applet classes a card knows without being told: ``echo`` (:class:`gpchannel.card.applets.EchoApplet`) and
the examples of :mod:`gpchannel.card.applets_examples` (indirect and direct handling of the secure channel, GP
2.3.1 10.3). Apart from :mod:`gpchannel.card.applets` because the examples build on it.
"""

from __future__ import annotations

from gpchannel.card.applets import AppletRegistry, EchoApplet
from gpchannel.card.applets_examples import register_examples

__all__ = ["default_registry"]


def default_registry() -> AppletRegistry:
    """A new registry holding the built-in applet classes (each card gets its own)."""
    registry = AppletRegistry()
    registry.register(EchoApplet.name, EchoApplet)
    register_examples(registry)
    return registry
