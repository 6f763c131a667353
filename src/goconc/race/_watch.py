"""Watching shared state: objects' attributes and shared containers."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, MutableMapping, MutableSequence
from typing import Any, TypeVar, overload

from .. import _racehooks
from . import _detector

__all__ = ["Shared", "SharedDict", "SharedList", "watch"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

_watched_classes: dict[type, type] = {}


def watch(obj: T) -> T:
    """Record every read and write of ``obj``'s instance attributes.

    Returns ``obj`` itself (so ``cfg = race.watch(Config())`` reads well).
    While the detector is off this does nothing, so watched code costs nothing
    in production.  Works for instances of ordinary Python classes, frozen
    dataclasses and classes with ``__slots__`` included (``obj.__class__``
    still names the object's own class, so equality and ``isinstance`` are
    unchanged; ``type(obj)`` is a watching subclass); for dicts and lists use
    :class:`Shared`.

    Raises TypeError for objects whose class cannot be extended (built-ins).
    """
    if not _racehooks.enabled:
        return obj
    cls = type(obj)
    if getattr(cls, "_goconc_race_watched", False):
        return obj
    try:
        # Through object's own __setattr__: a frozen dataclass refuses its own.
        object.__setattr__(obj, "__class__", _watched_class(cls))
    except TypeError as e:
        raise TypeError(
            f"race.watch: cannot watch a {cls.__qualname__} object ({e}); "
            "use race.Shared for dicts and lists"
        ) from None
    _forget_when_dead(obj)
    return obj


def _forget_when_dead(obj: object) -> None:
    # A watched object's id may be reused once it is gone; its history must
    # not be inherited by the newcomer.
    try:
        weakref.finalize(obj, _detector.object_died, id(obj))
    except TypeError:
        pass  # not weakly referenceable: its history stays (ids of live objects are unique)


def _watched_class(cls: type) -> type:
    wcls = _watched_classes.get(cls)
    if wcls is not None:
        return wcls
    name = cls.__qualname__
    base: Any = cls
    slots = _slot_names(cls)
    has_dict = cls.__dictoffset__ != 0

    def __getattribute__(self: Any, attr: str) -> Any:
        value = base.__getattribute__(self, attr)
        if (
            _racehooks.enabled
            and attr[:2] != "__"
            and (attr in slots or (has_dict and attr in object.__getattribute__(self, "__dict__")))
        ):
            _racehooks.read((id(self), attr), f"{name}.{attr} (object {id(self):#x})")
        return value

    def __setattr__(self: Any, attr: str, value: Any) -> None:
        if _racehooks.enabled:
            _racehooks.write((id(self), attr), f"{name}.{attr} (object {id(self):#x})")
        base.__setattr__(self, attr, value)

    def __delattr__(self: Any, attr: str) -> None:
        if _racehooks.enabled:
            _racehooks.write((id(self), attr), f"{name}.{attr} (object {id(self):#x})")
        base.__delattr__(self, attr)

    ns = {
        "__slots__": (),
        # obj.__class__ stays the watched object's own class (dataclass equality,
        # copy and isinstance see no difference); type(obj) is this subclass.
        "__class__": property(lambda self: base),
        "__getattribute__": __getattribute__,
        "__setattr__": __setattr__,
        "__delattr__": __delattr__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "_goconc_race_watched": True,
    }
    wcls = type(cls.__name__, (cls,), ns)
    _watched_classes[cls] = wcls
    return wcls


def _slot_names(cls: type) -> frozenset[str]:
    """The instance attributes that ``cls`` and its bases keep in ``__slots__``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    return frozenset(n for n in names if n not in ("__dict__", "__weakref__"))


class SharedDict(MutableMapping[K, V]):
    """A dict whose every key is a watched location (plus its set of keys)."""

    def __init__(
        self, data: Iterable[tuple[K, V]] | MutableMapping[K, V] = (), name: str = ""
    ) -> None:
        self._d: dict[K, V] = dict(data)
        self._name = name or f"Shared dict {id(self):#x}"
        _forget_when_dead(self)

    def _key(self, k: object) -> tuple[int, str, object]:
        return (id(self), "key", k)

    def __getitem__(self, k: K) -> V:
        _racehooks.read(self._key(k), f"{self._name}[{k!r}]")
        return self._d[k]

    def __setitem__(self, k: K, v: V) -> None:
        if k not in self._d:
            _racehooks.write((id(self), "keys"), f"{self._name} (its keys)")
        _racehooks.write(self._key(k), f"{self._name}[{k!r}]")
        self._d[k] = v

    def __delitem__(self, k: K) -> None:
        _racehooks.write((id(self), "keys"), f"{self._name} (its keys)")
        _racehooks.write(self._key(k), f"{self._name}[{k!r}]")
        del self._d[k]

    def __iter__(self) -> Iterator[K]:
        _racehooks.read((id(self), "keys"), f"{self._name} (its keys)")
        return iter(list(self._d))

    def __len__(self) -> int:
        _racehooks.read((id(self), "keys"), f"{self._name} (its keys)")
        return len(self._d)

    def __repr__(self) -> str:
        return f"SharedDict({self._d!r})"


class SharedList(MutableSequence[V]):
    """A list whose every index is a watched location (plus its length)."""

    def __init__(self, data: Iterable[V] = (), name: str = "") -> None:
        self._l: list[V] = list(data)
        self._name = name or f"Shared list {id(self):#x}"
        _forget_when_dead(self)

    def _shape_read(self) -> None:
        _racehooks.read((id(self), "len"), f"{self._name} (its length)")

    def _shape_write(self) -> None:
        _racehooks.write((id(self), "len"), f"{self._name} (its length)")

    def _index(self, i: int) -> int:
        return i + len(self._l) if i < 0 else i

    @overload
    def __getitem__(self, i: int) -> V: ...
    @overload
    def __getitem__(self, i: slice) -> list[V]: ...
    def __getitem__(self, i: int | slice) -> V | list[V]:
        self._shape_read()
        if isinstance(i, slice):
            for j in range(*i.indices(len(self._l))):
                _racehooks.read((id(self), j), f"{self._name}[{j}]")
            return self._l[i]
        j = self._index(i)
        _racehooks.read((id(self), j), f"{self._name}[{j}]")
        return self._l[i]

    @overload
    def __setitem__(self, i: int, v: V) -> None: ...
    @overload
    def __setitem__(self, i: slice, v: Iterable[V]) -> None: ...
    def __setitem__(self, i: int | slice, v: Any) -> None:
        self._shape_read()
        if isinstance(i, slice):
            self._shape_write()
            self._l[i] = v
            return
        j = self._index(i)
        _racehooks.write((id(self), j), f"{self._name}[{j}]")
        self._l[i] = v

    def __delitem__(self, i: int | slice) -> None:
        self._shape_write()
        del self._l[i]

    def __len__(self) -> int:
        self._shape_read()
        return len(self._l)

    def insert(self, i: int, v: V) -> None:
        self._shape_write()
        self._l.insert(i, v)

    def __iter__(self) -> Iterator[V]:
        self._shape_read()
        for j, v in enumerate(list(self._l)):
            _racehooks.read((id(self), j), f"{self._name}[{j}]")
            yield v

    def __repr__(self) -> str:
        return f"SharedList({self._l!r})"


@overload
def Shared(data: dict[K, V], name: str = "") -> SharedDict[K, V]: ...
@overload
def Shared(data: list[V], name: str = "") -> SharedList[V]: ...
def Shared(data: Any, name: str = "") -> Any:
    """A watched container: ``race.Shared({})`` or ``race.Shared([])``.

    Every key (or index) is a location checked for races, and so is the set of
    keys (the length); iteration reads them all.  Works (unchecked) while the
    detector is off, so it can stay in the code.
    """
    if isinstance(data, dict):
        return SharedDict(data, name)
    if isinstance(data, list):
        return SharedList(data, name)
    raise TypeError(f"race.Shared: want a dict or a list, got {type(data).__qualname__}")
