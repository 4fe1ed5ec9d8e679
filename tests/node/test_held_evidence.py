"""Evidence held about many indicaties is read in one go, by kind and record id, and reads as each would alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.store.database import Store
from node.store.evidence import HeldEvidence

pytestmark = pytest.mark.asyncio

_ROW = "INSERT INTO evidence (kind, record_id, wlzIndicatieID, signed, version, source, source_org) VALUES (?, ?, ?, ?, 1, 's', 'uzovi:5151')"


async def test_about_many_is_about_for_each(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.sqlite3") as store:
        rows = [("Bemiddelingspecificatie", f"spec-{n}", f"ind-{n % 7}", f"spec {n}".encode()) for n in range(40)]
        rows += [("Bemiddeling", f"bem-{n}", f"ind-{n % 5}", f"bem {n}".encode()) for n in range(10)]
        await store.write([(_ROW, rows, True)])
        held = HeldEvidence(store)
        asked = [f"ind-{n}" for n in range(9)] + [f"none-{n}" for n in range(600)]  # more than one read's worth
        many = await held.about_many(asked)
        assert set(many) == set(asked)
        for indicatie in asked:  # by kind, then record id; the same one at a time
            expected = [signed for _, _, i, signed in sorted(rows, key=lambda r: (r[0], r[1])) if i == indicatie]
            assert many[indicatie] == expected == await held.about(indicatie)
        specs = await held.about("ind-0", ("Bemiddelingspecificatie",))
        assert specs == [f"spec {n}".encode() for n in sorted(range(0, 40, 7), key=lambda n: f"spec-{n}")]
        assert [len(many[f"ind-{n}"]) for n in range(9)] == [8, 8, 8, 8, 8, 5, 5, 0, 0]
        assert many["ind-0"][0] == b"bem 0"  # by kind, then record id, as about() gives them
        assert await held.about_many([]) == {}
