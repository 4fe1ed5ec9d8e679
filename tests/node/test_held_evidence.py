"""Evidence held about many indicaties is read in one go, by kind and record id, and reads as each would alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keys import Member, parse_certificate
from node.store.database import Store
from node.store.evidence import HeldEvidence
from protocol.records import RecordVersion
from tests.helpers import NOW, Network, seeded

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


def _member(n: int, uzovi: str) -> Member:
    network = Network()
    return parse_certificate(network.certificate(seeded(n), "zorgkantoor", identifiers={"uzovi": uzovi}))[1]


def _spec(version: int, indicatie: str, source: Member) -> RecordVersion:
    return RecordVersion("Bemiddelingspecificatie", "spec-1", version, source.did, NOW, False, {"wlzIndicatieID": indicatie})


async def _held(store: Store) -> list[tuple[Any, ...]]:
    return await store.fetchall("SELECT record_id, wlzIndicatieID, version, source_org, signed FROM evidence")


async def test_a_record_held_is_replaced_only_by_a_newer_version_from_its_own_source(tmp_path: Path) -> None:
    """Attack: record ids are their signer's to choose. Zorgkantoor 5050 signs a specificatie under the id of one
    that 5151 signed and a provider holds, of a higher version, and gets the provider to keep it (a notification
    of its own, fetched back from it). Before, it took the place of 5151's: the provider no longer held what
    gives it access."""
    zk5151, zk5151_new_key, zk5050 = _member(3, "5151"), _member(4, "5151"), _member(5, "5050")
    async with Store(tmp_path / "node.sqlite3") as store:
        held = HeldEvidence(store)
        await store.write(held.keep([(_spec(2, "ind-1", zk5151), zk5151, b"5151 v2")]))
        await store.write(held.keep([(_spec(9, "ind-1", zk5050), zk5050, b"5050 v9")]))  # another source
        await store.write(held.keep([(_spec(9, "ind-2", zk5151), zk5151, b"5151 v9 ind-2")]))  # about another indicatie
        await store.write(held.keep([(_spec(1, "ind-1", zk5151), zk5151, b"5151 v1")]))  # older
        assert await _held(store) == [("spec-1", "ind-1", 2, "uzovi:5151", b"5151 v2")]
        # Its own source, also under a new key, replaces it with a newer version
        await store.write(held.keep([(_spec(3, "ind-1", zk5151_new_key), zk5151_new_key, b"5151 v3")]))
        assert await _held(store) == [("spec-1", "ind-1", 3, "uzovi:5151", b"5151 v3")]
