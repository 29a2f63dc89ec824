"""What to do about the usual ``6985`` (conditions of use not satisfied, GP 2.3.1 11.1.3, 11.2.3, 11.5.3): the
card does not say why, so the host tool reads the card's registry with GET STATUS (11.4) and says which case it
is:

* INSTALL [for load] of a package that is already there: delete it first, or ``load --force``;
* DELETE of a load file that has instances (applications installed from it): add ``--related``.
"""

from __future__ import annotations

from gpchannel.errors import CardStatusError, GPChannelError
from gpchannel.host.card import GpCard, RegistryItem, RegistryKind

__all__ = ["CONDITIONS_NOT_SATISFIED", "delete_hint", "load_hint"]

CONDITIONS_NOT_SATISFIED = 0x6985


def _registry(card: GpCard) -> list[RegistryItem] | None:
    try:
        return card.list()
    except GPChannelError:  # the card refused GET STATUS too: no hint rather than a second error
        return None


def load_hint(card: GpCard, exc: CardStatusError, package: bytes) -> str | None:
    """Why INSTALL [for load] of ``package`` was refused, when the registry shows it (else None)."""
    if exc.sw != CONDITIONS_NOT_SATISFIED:
        return None
    items = _registry(card)
    if items is None or not any(i.kind is RegistryKind.LOAD_FILE and i.entry.aid == package for i in items):
        return None
    aid = package.hex().upper()
    return (
        f"package {aid} is already on the card (GET STATUS lists it): delete it first "
        f"(gpchannel delete {aid}, with --related for its instances) or load with --force"
    )


def delete_hint(card: GpCard, exc: CardStatusError, aid: bytes) -> str | None:
    """Why DELETE of ``aid`` was refused, when the registry shows it (else None)."""
    if exc.sw != CONDITIONS_NOT_SATISFIED:
        return None
    items = _registry(card)
    if items is None:
        return None
    instances = [
        i.entry.aid.hex().upper()
        for i in items
        if i.kind is not RegistryKind.LOAD_FILE and i.entry.load_file_aid == aid
    ]
    if not instances:
        return None
    return (
        f"package {aid.hex().upper()} has instances {', '.join(instances)} (GET STATUS lists them): delete them "
        "first, or add --related to delete them with it"
    )
