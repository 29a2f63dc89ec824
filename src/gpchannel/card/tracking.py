"""Change tracking for the card's persistent state (card/state.py): every write to a state object marks the unit
it belongs to, so the dispatcher knows, without serialising anything, whether a command changed the state and
which units it must write (card/state_tracker.py).

A *unit* is what the store writes as one piece: the card's own fields, one registry entry (an application or
Security Domain with its keys and data), one Executable Load File, the registry's order, the load files' order,
the OTA settings and the file system. :class:`Unit` marks itself dirty in its :class:`Tracker`.

State dataclasses derive from :class:`Tracked`: an attribute write marks the object's unit. Their list fields
are :class:`TrackedList`, whose mutating methods do the same and which adopt the state objects put into them.
The free-form JSON parts (an applet's data, the OTA settings, the file system) are :class:`TrackedDict` at the
top: a write marks the unit, and so does reading a nested list or dict out of it (the reader may change it in
place), so nested values are kept as they are, never copied. A list or dict assigned to a field is stored as a
tracked shallow copy. A write that bypasses all of this is a bug the debug check of state_tracker.py reports.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, Protocol, SupportsIndex

__all__ = ["Tracked", "TrackedDict", "TrackedList", "Tracker", "Unit", "adopt", "detach"]


class Tracker(Protocol):
    """Receives the units that changed."""

    def touch(self, unit: Unit) -> None: ...

    def child(self, name: str, value: Any) -> Any:
        """A CardState field's new value, adopted into the unit it belongs to."""
        ...


class Unit:
    """One piece of the state the store writes whole. ``kind`` names it ("card", "app", "app_order", "lf",
    "lf_order", "ota", "files"); ``obj`` is the Application or LoadFile of an "app" or "lf" unit."""

    __slots__ = ("kind", "obj", "tracker")

    def __init__(self, tracker: Tracker, kind: str, obj: object = None) -> None:
        self.tracker = tracker
        self.kind = kind
        self.obj = obj

    def touch(self) -> None:
        self.tracker.touch(self)


ElementUnit = Callable[[object], Unit]
"""For the registry and the load file list: the unit of an element put into the list."""


_PLAIN: set[type] = {bytes, str, int, bool, float, type(None)}
"""Types whose values :func:`adopt` leaves as they are (neither state objects nor lists nor dicts): each type is
added at its first such value, so a field of one of them costs one set look-up."""


def adopt(value: Any, unit: Unit | None, element: ElementUnit | None = None) -> Any:
    """``value`` made part of ``unit``: state objects get the unit (their fields recursively), lists and dicts
    become tracked ones (a shallow copy when they are plain). ``element`` gives list elements their own units."""
    if unit is None or type(value) in _PLAIN:
        return value
    if isinstance(value, Tracked):
        value._adopt(unit)
        return value
    if isinstance(value, TrackedList):
        if value._unit is unit and value._element is element:
            return value
        return TrackedList(unit, value, element)
    if isinstance(value, TrackedDict):
        return value if value._unit is unit else TrackedDict(unit, value)
    if isinstance(value, list):
        return TrackedList(unit, value, element)
    if isinstance(value, dict):
        return TrackedDict(unit, value)
    _PLAIN.add(type(value))
    return value


def detach(value: Any) -> Any:
    """A plain deep copy of ``value`` (tracked containers become lists and dicts)."""
    return copy.deepcopy(value)


class Tracked:
    """Base of the state dataclasses: attribute writes mark the object's unit (none until it is adopted)."""

    __slots__ = ("_unit",)

    def __setattr__(self, name: str, value: Any) -> None:
        unit: Unit | None = getattr(self, "_unit", None)
        if unit is not None:
            value = self._child(name, value, unit)
            unit.touch()
        object.__setattr__(self, name, value)

    def _child(self, name: str, value: Any, unit: Unit) -> Any:
        """``value`` adopted for the field ``name`` (CardState gives its lists and blobs their own units)."""
        return adopt(value, unit)

    def _fields(self) -> Iterable[str]:
        return self.__dataclass_fields__  # type: ignore[attr-defined, no-any-return]

    def _adopt(self, unit: Unit) -> None:
        object.__setattr__(self, "_unit", unit)
        child = self._child
        for name in self._fields():
            value = getattr(self, name)
            if type(value) not in _PLAIN:
                adopted = child(name, value, unit)
                if adopted is not value:
                    object.__setattr__(self, name, adopted)

    def __copy__(self) -> Any:
        return type(self)(**{name: getattr(self, name) for name in self._fields()})

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return type(self)(**{name: copy.deepcopy(getattr(self, name), memo) for name in self._fields()})


class TrackedList(list[Any]):
    """A list whose changes mark its unit; elements put in are adopted (by ``element``'s unit, if given)."""

    __slots__ = ("_element", "_unit")

    def __init__(self, unit: Unit, items: Iterable[Any] = (), element: ElementUnit | None = None) -> None:
        self._unit = unit
        self._element = element
        if element is None:
            super().__init__([v if type(v) in _PLAIN else self._in(v) for v in items])
        else:
            super().__init__([self._in(v) for v in items])

    def _in(self, value: Any) -> Any:
        if self._element is not None:
            unit = self._element(value)
            unit.touch()
            return adopt(value, unit)
        return adopt(value, self._unit) if isinstance(value, Tracked) else value

    def __setitem__(self, index: Any, value: Any) -> None:
        self._unit.touch()
        if isinstance(index, slice):
            super().__setitem__(index, [self._in(v) for v in value])
        else:
            super().__setitem__(index, self._in(value))

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        self._unit.touch()
        super().__delitem__(index)

    def __iadd__(self, values: Iterable[Any]) -> TrackedList:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, times: SupportsIndex) -> TrackedList:
        self._unit.touch()
        super().__imul__(times)
        return self

    def append(self, value: Any) -> None:
        self._unit.touch()
        super().append(self._in(value))

    def extend(self, values: Iterable[Any]) -> None:
        self._unit.touch()
        super().extend([self._in(v) for v in values])

    def insert(self, index: SupportsIndex, value: Any) -> None:
        self._unit.touch()
        super().insert(index, self._in(value))

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._unit.touch()
        return super().pop(index)

    def remove(self, value: Any) -> None:
        self._unit.touch()
        super().remove(value)

    def clear(self) -> None:
        self._unit.touch()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._unit.touch()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._unit.touch()
        super().reverse()

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(v, memo) for v in self]

    def __reduce__(self) -> Any:
        return (list, (list(self),))


_CONTAINERS = (list, dict)


class TrackedDict(dict[Any, Any]):
    """A free-form JSON object whose changes mark its unit, as does reading a nested list or dict out of it."""

    __slots__ = ("_unit",)

    def __init__(self, unit: Unit, items: Any = ()) -> None:
        self._unit = unit
        super().__init__(items)

    def _out(self, value: Any) -> Any:
        if isinstance(value, _CONTAINERS):
            self._unit.touch()
        return value

    def __getitem__(self, key: Any) -> Any:
        return self._out(super().__getitem__(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return self._out(super().get(key, default))

    def values(self) -> Any:
        self._unit.touch()
        return super().values()

    def items(self) -> Any:
        self._unit.touch()
        return super().items()

    def __setitem__(self, key: Any, value: Any) -> None:
        self._unit.touch()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._unit.touch()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[misc]
        self.update(other)
        return self

    def pop(self, key: Any, *default: Any) -> Any:
        self._unit.touch()
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        self._unit.touch()
        return super().popitem()

    def clear(self) -> None:
        self._unit.touch()
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._unit.touch()
        super().update(*args, **kwargs)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._unit.touch()
        return super().setdefault(key, default)

    def copy(self) -> dict[Any, Any]:
        self._unit.touch()
        return dict(super().items())

    def __copy__(self) -> dict[Any, Any]:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        return {copy.deepcopy(k, memo): copy.deepcopy(v, memo) for k, v in dict.items(self)}

    def __reduce__(self) -> Any:
        return (dict, (dict(dict.items(self)),))
