"""Records as rows of a table (CSV): nested fields by dotted names, list items by their number.

``client.bsn`` is the field ``bsn`` of the object ``client``;
``geindiceerdZorgzwaartepakket.0.zzpCode`` the ``zzpCode`` of the first item
of that list; ``zzpCodes.1`` the second item of a list of values. An empty
cell is an absent field (a required list without cells is empty). Values are text in the table and typed by the
record's schema when read: ``int`` a whole number, ``bool`` true or false,
everything else (dates, ids, codes) text as written.
"""

from __future__ import annotations

from typing import Any

from node.errors import ValidationError
from node.store.records import RECORD_TYPES

Schema = Any


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A record as one table row: dotted names to text."""
    row: dict[str, str] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            row.update(flatten(value, name + "."))
        elif isinstance(value, list):
            for n, item in enumerate(value):
                if isinstance(item, dict):
                    row.update(flatten(item, f"{name}.{n}."))
                else:
                    row[f"{name}.{n}"] = _text(item)
        elif value is not None:
            row[name] = _text(value)
    return row


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def unflatten(kind: str, row: dict[str, str]) -> dict[str, Any]:
    """A table row as a record of ``kind``; ValidationError names a column that does not fit the schema."""
    schema = RECORD_TYPES[kind].schema
    record: dict[str, Any] = {}
    for column, cell in row.items():
        if cell is None or cell == "":
            continue
        _place(record, schema, column.strip().split("."), cell, column)
    return _empty_lists(_lists(record), schema)


def _field(schema: dict[str, Any], name: str, column: str) -> Schema:
    for key in (name, name + "?"):
        if key in schema:
            return schema[key]
    raise ValidationError(f"column {column}: the record has no field {name!r}")


def _place(target: dict[str, Any], schema: dict[str, Any], parts: list[str], cell: str, column: str) -> None:
    spec = _field(schema, parts[0], column)
    rest = parts[1:]
    if isinstance(spec, dict):
        if not rest:
            raise ValidationError(f"column {column}: {parts[0]} is an object; name its fields ({parts[0]}.…)")
        _place(target.setdefault(parts[0], {}), spec, rest, cell, column)
        return
    if isinstance(spec, list):
        if not rest or not rest[0].isdigit():
            raise ValidationError(f"column {column}: {parts[0]} is a list; number its items ({parts[0]}.0…)")
        items: dict[int, Any] = target.setdefault(parts[0], {})  # by number until all cells are placed
        index, item_spec = int(rest[0]), spec[0]
        if isinstance(item_spec, dict):
            if not rest[1:]:
                raise ValidationError(f"column {column}: name the field of item {index} ({column}.…)")
            _place(items.setdefault(index, {}), item_spec, rest[1:], cell, column)
        else:
            items[index] = _typed(item_spec, cell, column)
        return
    if rest:
        raise ValidationError(f"column {column}: {parts[0]} has no fields")
    target[parts[0]] = _typed(spec, cell, column)


def _typed(spec: str, cell: str, column: str) -> Any:
    if spec == "int":
        try:
            return int(cell)
        except ValueError:
            raise ValidationError(f"column {column}: not a whole number") from None
    if spec == "bool":
        if cell.lower() not in ("true", "false"):
            raise ValidationError(f"column {column}: true or false")
        return cell.lower() == "true"
    return cell


def _lists(value: Any) -> Any:
    """Items placed by number become lists, in number order."""
    if isinstance(value, dict):
        if value and all(isinstance(k, int) for k in value):
            return [_lists(value[k]) for k in sorted(value)]
        return {k: _lists(v) for k, v in value.items()}
    return value


def _empty_lists(record: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A required list with no cells is an empty list (a table has no way to say [] otherwise)."""
    for key, spec in schema.items():
        name = key.rstrip("?")
        if isinstance(spec, list) and not key.endswith("?"):
            record.setdefault(name, [])
        if isinstance(spec, dict) and isinstance(record.get(name), dict):
            _empty_lists(record[name], spec)
        if isinstance(spec, list) and isinstance(spec[0], dict):
            for item in record.get(name) or []:
                _empty_lists(item, spec[0])
    return record


def columns(rows: list[dict[str, str]] | set[str], kind: str) -> list[str]:
    """Column names in the schema's field order (list items by number), for the header of an export."""
    names = set(rows) if isinstance(rows, set) else {name for row in rows for name in row}
    order = _schema_order(RECORD_TYPES[kind].schema)

    def key(name: str) -> tuple[Any, ...]:
        parts = name.split(".")
        return tuple((0, int(p), "") if p.isdigit() else (1, order.get(p, 10_000), p) for p in parts)

    return sorted(names, key=key)


def _schema_order(schema: Any, out: dict[str, int] | None = None) -> dict[str, int]:
    out = {} if out is None else out
    if isinstance(schema, dict):
        for key, sub in schema.items():
            out.setdefault(key.rstrip("?"), len(out))
            _schema_order(sub, out)
    elif isinstance(schema, list):
        _schema_order(schema[0], out)
    return out


__all__ = ["flatten", "unflatten", "columns"]
