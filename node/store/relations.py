"""Relations a source keeps about its records beyond their content, named by the policy matrix.

``responsible``: which zorgkantoren are, were or become responsible for an
indicatie, so that its later changes (GEWIJZIGDE/VERWIJDERDE) reach them.
"""

from __future__ import annotations

from typing import Final

from node.errors import StorageError
from node.store.database import Statement, Store

# relation -> (table, key column, value column)
RELATIONS: Final[dict[str, tuple[str, str, str]]] = {
    "responsible": ("responsible", "wlzIndicatieID", "uzovi"),
}


def _relation(name: str) -> tuple[str, str, str]:
    try:
        return RELATIONS[name]
    except KeyError as exc:
        raise StorageError(f"the policy names an unknown relation {name!r}") from exc


def remember(name: str, values: dict[str, str]) -> Statement:
    table, key, value = _relation(name)
    return (f"INSERT OR IGNORE INTO {table} ({key}, {value}) VALUES (?, ?)", (values[key], values[value]), False)


async def related(store: Store, name: str, key_value: str) -> set[str]:
    table, key, value = _relation(name)
    rows = await store.fetchall(f"SELECT {value} FROM {table} WHERE {key} = ?", (key_value,))
    return {str(r[0]) for r in rows}


__all__ = ["RELATIONS", "remember", "related"]
