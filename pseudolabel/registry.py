"""One registry per plugin kind (refiners, CAM methods, alignment losses).

A registry maps a short name to a class (or factory). Other packages add entries without touching
ours through an entry-point group, e.g. in their ``pyproject.toml``::

    [project.entry-points."pseudolabel.refiners"]
    mine = "my_package.refiners:MyRefiner"

Entry points are loaded lazily, the first time a name is looked up or listed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from pseudolabel.errors import BadInputError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """Name -> plugin lookup with entry-point discovery.

    Args:
        kind: what the entries are, for messages ("refiner", "CAM method").
        group: the entry-point group that other packages register under, or None.
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T] = {}
        self._loaded_entry_points = group is None

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` adds the decorated class or function."""

        def decorator(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            if key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return decorator

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        for ep in entry_points(group=self.group):
            if ep.name in self._entries:
                continue
            try:
                self._entries[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not break the built-ins
                log.warning("could not load %s plugin %r (%s): %s", self.kind, ep.name, ep.value, exc)

    def get(self, name: str) -> T:
        """The entry called ``name``; a :class:`BadInputError` listing the valid names if none."""
        if name not in self._entries:
            self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            raise BadInputError(
                f"unknown {self.kind} {name!r}", fix=f"use one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """All registered names, entry points included, sorted."""
        self._load_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
