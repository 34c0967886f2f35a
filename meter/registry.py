"""A name -> factory registry that refuses duplicates and names itself in errors (fvcore style)."""

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
                raise ValueError(f"{self.name}: {key!r} is already registered")
            self._items[key] = obj
            return obj

        return deco

    def get(self, key: str) -> T:
        if key not in self._items:
            raise ValueError(f"{self.name}: unknown {key!r}; registered: {', '.join(self.names())}")
        return self._items[key]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
