"""A record is found by its lookup keys (bsn, zorgkantoor) as its content changes: the keys of the newest content
replace the old ones, a deletion keeps them (history stays findable), a purge removes them. The keys name their
record by the id of its first stored version and are derived from content, not looked up; these tests hold that
through every kind of write, a purge, an operator's VACUUM and a restart."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from datetime import date
from typing import Any

import pytest

from node.service import Node
from tests.node.kit import Network, put, sample

pytestmark = pytest.mark.asyncio


def indicatie(bsn: str, **changes: Any) -> dict[str, Any]:
    return with_bsn({**sample("wlzIndicaties", 0), "wlzIndicatieID": str(uuid.uuid4()), **changes}, bsn)


def with_bsn(data: dict[str, Any], bsn: str) -> dict[str, Any]:
    return {**data, "bsn": bsn, "client": {**data["client"], "bsn": bsn}}


async def found(node: Node, bsn: str, *, history: bool = False) -> list[tuple[str, int]]:
    return [(r.record_id, r.version) for r in await node.registers.find("bsn", bsn, history=history)]


def orphan_keys(node: Node) -> int:
    with closing(sqlite3.connect(node.home.database_path)) as db, db:
        return int(db.execute("SELECT count(*) FROM record_keys WHERE record NOT IN (SELECT id FROM records)").fetchone()[0])


async def test_keys_follow_the_content_through_update_delete_and_return(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    a = indicatie("111222333")
    other = indicatie("111222333")  # the same client, another indicatie
    await put(ciz, "WlzIndicatie", a)
    await put(ciz, "WlzIndicatie", other)
    ida, ido = a["wlzIndicatieID"], other["wlzIndicatieID"]
    assert sorted(await found(ciz, "111222333")) == sorted([(ida, 1), (ido, 1)])

    await put(ciz, "WlzIndicatie", with_bsn(a, "444555663"))  # a corrected BSN: the old one no longer finds it
    assert await found(ciz, "111222333") == [(ido, 1)]
    assert await found(ciz, "444555663") == [(ida, 2)]
    assert await found(ciz, "444555663", history=True) == [(ida, 1), (ida, 2)]

    await ciz.registers.delete("WlzIndicatie", ida, actor=ciz.actor, now=ciz.now())
    assert await found(ciz, "444555663") == []
    assert await found(ciz, "444555663", history=True) == [(ida, 1), (ida, 2), (ida, 3)]  # a tombstone keeps them

    # Brought back with other content after the deletion: the keys of the last content (before the tombstone) go.
    await put(ciz, "WlzIndicatie", with_bsn(a, "777888993"))
    assert await found(ciz, "444555663", history=True) == []
    assert await found(ciz, "777888993") == [(ida, 4)]

    # The same through an import batch: delete, then bring back with yet other content.
    batch = [(1, ida, None)]
    assert (await ciz.registers.put_many("WlzIndicatie", batch, actor=ciz.actor, now=ciz.now())).deleted == 1
    batch = [(2, None, with_bsn(a, "123123124"))]
    assert (await ciz.registers.put_many("WlzIndicatie", batch, actor=ciz.actor, now=ciz.now())).created == 1
    assert await found(ciz, "777888993", history=True) == []
    assert await found(ciz, "123123124") == [(ida, 6)]
    assert [r.record_id for r in await ciz.registers.find("zorgkantoor", a["initieelVerantwoordelijkZorgkantoor"])] \
        == sorted([ida, ido])
    assert orphan_keys(ciz) == 0


async def test_one_import_batch_that_creates_deletes_and_brings_back_a_record(network: Network) -> None:
    """A history export read back holds every version of a record in one batch: the keys of content written earlier
    in the same batch (not in the database yet) are the ones replaced."""
    (ciz,) = await network.start("ciz")
    a = indicatie("111222333")
    ida = a["wlzIndicatieID"]
    batch = [(1, None, a), (2, ida, None), (3, None, with_bsn(a, "444555663")), (4, None, with_bsn(a, "777888993"))]
    result = await ciz.registers.put_many("WlzIndicatie", batch, actor=ciz.actor, now=ciz.now())
    assert (result.created, result.deleted, result.updated) == (2, 1, 1)
    assert await found(ciz, "111222333", history=True) == []
    assert await found(ciz, "444555663", history=True) == []
    assert await found(ciz, "777888993") == [(ida, 4)]
    assert orphan_keys(ciz) == 0


async def test_one_import_batch_that_changes_many_records_once_each(network: Network) -> None:
    """Each record changes once, so the batch's statements run a kind at a time (every retired version, then every
    new row, every key that goes, every new key): each record still ends with one current version and its own
    keys."""
    (ciz,) = await network.start("ciz")
    old = [indicatie(f"{n:08d}0") for n in range(1, 7)]
    old = [with_bsn(r, bsn) for r, bsn in zip(old, ("111222333", "123123124", "444555663", "777888993",
                                                    "100000009", "200000007"))]
    await ciz.registers.put_many("WlzIndicatie", [(n, None, r) for n, r in enumerate(old)], actor=ciz.actor,
                                 now=ciz.now())
    new = indicatie("300000005")
    batch = [(1, None, with_bsn(old[0], "400000003")), (2, old[1]["wlzIndicatieID"], None), (3, None, new),
             (4, None, {**old[2], "besluitnummer": "9999999999"}), (5, None, with_bsn(old[3], "500000001"))]
    result = await ciz.registers.put_many("WlzIndicatie", batch, actor=ciz.actor, now=ciz.now())
    assert (result.created, result.updated, result.deleted) == (1, 3, 1)
    assert await found(ciz, "111222333", history=True) == []  # its keys went with its content
    assert await found(ciz, "400000003") == [(old[0]["wlzIndicatieID"], 2)]
    assert await found(ciz, "123123124") == [] and await found(ciz, "123123124", history=True) == [
        (old[1]["wlzIndicatieID"], 1), (old[1]["wlzIndicatieID"], 2)]
    assert await found(ciz, "300000005") == [(new["wlzIndicatieID"], 1)]
    assert await found(ciz, "444555663") == [(old[2]["wlzIndicatieID"], 2)]
    assert await found(ciz, "777888993", history=True) == [] and await found(ciz, "500000001") == [(old[3]["wlzIndicatieID"], 2)]
    assert await found(ciz, "100000009") == [(old[4]["wlzIndicatieID"], 1)]
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        assert db.execute("SELECT record_id FROM records WHERE current = 1 GROUP BY record_id HAVING count(*) > 1"
                          ).fetchall() == []
    assert orphan_keys(ciz) == 0


async def test_a_purge_takes_the_keys_and_a_vacuum_keeps_the_rest(network: Network) -> None:
    (ciz,) = await network.start("ciz", retention={"WlzIndicatie": {"ended": 0, "withdrawn": 0}})
    ended = [indicatie(bsn, einddatum="2020-01-31") for bsn in ("900000004", "900000016", "900000028")]
    kept = [indicatie(bsn) for bsn in ("800000006", "800000018", "111222333")]
    for data in (*ended, *kept):  # interleaved ids: the purge leaves gaps a VACUUM would close
        await put(ciz, "WlzIndicatie", data)
    await put(ciz, "WlzIndicatie", {**kept[0], "meerzorg": True})
    purged = await ciz.registers.purge(today=date(2026, 12, 5), actor=ciz.actor, now=ciz.now())
    assert sorted(purged) == sorted(f"WlzIndicatie/{d['wlzIndicatieID']}" for d in ended)
    assert orphan_keys(ciz) == 0
    for data in ended:
        assert await found(ciz, data["bsn"], history=True) == []
    await ciz.stop()

    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:  # what an operator may do during maintenance
        db.execute("VACUUM")
    again = Node(ciz.home, mdns=False, gossip_interval=0)
    await again.start()
    try:
        for data in kept:
            want = 2 if data is kept[0] else 1
            assert await found(again, data["bsn"]) == [(data["wlzIndicatieID"], want)]
        assert orphan_keys(again) == 0
    finally:
        await again.stop()
