"""A name -> factory registry that refuses duplicates and names itself in errors (fvcore style).

The one Registry of the project: `meter` is the base layer every research package may import (DESIGN.md), so
every registry (models, strategies, tasks, tables, routers, ...) is an instance of this class, imported from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._items: dict[str, T] = {}

    def register(self, key: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if key in self._items:
                raise KeyError(f"{self.name} registry already has an entry named {key!r}")
            self._items[key] = obj
            return obj

        return deco

    def get(self, key: str) -> T:
        if key not in self._items:
            raise KeyError(f"unknown {self.name} {key!r}; registered: {', '.join(sorted(self._items))}")
        return self._items[key]

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
