"""What a store reader keeps in memory of what it read: the current versions of records, the steps of authority.

At most ``size`` values, the least recently used going first. In the process that commits every write, the
writers put what they wrote and ``changed()`` marks a commit; in a worker, ``changes`` reads the owner's change
count (node/store/changes.py) and all that is kept goes when it moved. A value read across a change, or for a
key a writer put meanwhile, is not kept: ``seen()`` before the read, ``keep()`` after it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    def __init__(self, size: int, changes: Callable[[], int] | None = None) -> None:
        self.size = size
        self._changes = changes
        self._seen = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    def seen(self) -> int:
        """Which state of the store is kept now (a worker: drop everything if the owner's count moved)."""
        if self._changes is not None:
            now = self._changes()
            if now != self._seen:
                self._items.clear()
                self._seen = now
        return self._seen

    def changed(self) -> None:
        """A change committed here: reads under way saw the state before it."""
        self._seen += 1

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value); a value found is now the most recently used."""
        if key not in self._items:
            return False, None
        self._items.move_to_end(key)
        return True, self._items[key]

    def peek(self, key: K) -> V | None:
        """The value kept for ``key``, if any, leaving the order of use as it is (for housekeeping, not readers)."""
        return self._items.get(key)

    def keep(self, key: K, value: V, seen: int) -> None:
        """Keep what a read found, unless the store changed since ``seen`` or a writer put the key meanwhile."""
        if key not in self._items and seen == self.seen():
            self.put(key, value)

    def put(self, key: K, value: V) -> None:
        if not self.size:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


__all__ = ["Kept"]
