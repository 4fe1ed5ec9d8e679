"""Synthetic register data for benchmarks and tests: valid BSNs, fresh ids, the sample record as template."""

from __future__ import annotations

import csv
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parents[1] / "node" / "cli" / "sample.json"


def template(section: str = "wlzIndicaties") -> dict[str, Any]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))[section][0]  # type: ignore[no-any-return]


def bsn(rng: random.Random) -> str:
    """A BSN that passes the 11-proef."""
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        total = sum(d * w for d, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2)))
        last = total % 11
        if last < 10 and digits[0] != 0:
            return "".join(map(str, digits)) + str(last)


def new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def indicatie(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    record = json.loads(json.dumps(base))
    record["wlzIndicatieID"] = new_id(rng)
    record["bsn"] = record["client"]["bsn"] = bsn(rng)
    record["client"]["clientID"] = new_id(rng)
    return record


def indicaties(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rng, base = random.Random(seed), template()
    for _ in range(n):
        yield indicatie(rng, base)


def write_jsonl(path: Path, records: Iterator[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


def write_csv(path: Path, records: Iterator[dict[str, Any]], kind: str = "WlzIndicatie") -> int:
    from node.store.records import strip_nulls
    from node.store.tabular import columns, flatten

    first = [flatten(strip_nulls(r)) for r in _take(records, 100)]
    header = columns(first, kind)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in first:
            writer.writerow(row)
            count += 1
        for record in records:
            writer.writerow(flatten(strip_nulls(record)))
            count += 1
    return count


def _take(records: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out = []
    for record in records:
        out.append(record)
        if len(out) == n:
            break
    return out


__all__ = ["bsn", "new_id", "indicatie", "indicaties", "template", "write_jsonl", "write_csv"]
