"""A large import batch is prepared (checked, stripped, encoded, packed, keyed) in a process of the node's own
while the node writes the batch before it. What is stored must not depend on where a batch was prepared, a
process that dies must cost no line, and the process must not outlive its use or its node."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from contextlib import closing
from typing import Any

import pytest

from bench import data
from node.errors import ValidationError
from node.store.preparing import Preparer, prepare
from node.store.records import strip_nulls
from tests.node.kit import Network

pytestmark = pytest.mark.asyncio


def lines(count: int, seed: int) -> list[tuple[int, str | None, Any]]:
    """``count`` indicaties as import lines, with a few a node must refuse and a delete among them."""
    records: list[Any] = list(data.indicaties(count, seed=seed))
    records[3] = {**records[3], "bsn": "123456789"}  # fails the 11-proef
    records[7] = "not a record"
    items: list[tuple[int, str | None, Any]] = [(n, None, r) for n, r in enumerate(records, start=1)]
    items.append((count + 1, records[0]["wlzIndicatieID"], None))
    return items


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a child that ended but was not reaped yet is no longer running
        return stat.read().split(") ")[1][0] != "Z"


async def test_a_batch_prepared_in_the_process_is_what_one_prepared_here_would_be() -> None:
    items = lines(400, seed=11)
    preparer = Preparer(use_process=True)
    try:
        there = await preparer.prepare("WlzIndicatie", items, 7)
        assert preparer.started
    finally:
        await preparer.close()
    assert there == prepare("WlzIndicatie", items, 7)
    ready, refused = there
    assert [line for line, _ in refused] == [4, 8]
    assert refused[0][1] == "bsn is not a valid bsn"  # the reason never repeats the value
    assert len(ready) == 399 and ready[-1].data is None and ready[-1].keys == []
    assert all(p.packed is not None and p.packed[0] == 0 for p in ready[:-1])


async def test_a_small_batch_is_prepared_here(monkeypatch: pytest.MonkeyPatch) -> None:
    preparer = Preparer(use_process=True)
    items = lines(Preparer.SMALL - 2, seed=12)
    assert await preparer.prepare("WlzIndicatie", items, None) == prepare("WlzIndicatie", items, None)
    assert not preparer.started


async def test_an_import_through_the_process_stores_every_line_once_and_in_order(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    ciz.registers.preparer = Preparer(use_process=True)
    first = lines(600, seed=13)
    result = await ciz.registers.put_many("WlzIndicatie", first, actor=ciz.actor, now=ciz.now())
    # The delete at the end of the batch removes the record its first line made.
    assert (result.created, result.deleted, [line for line, _ in result.rejected]) == (598, 1, [4, 8])
    # Two batches with the node at once, one prepared while the other is written: both end as their lines say.
    records = [r for _, _, r in first]
    two = [[(n, None, {**records[n], "besluitnummer": number}) for n in part]
           for part, number in ((range(10, 300), "1111111111"), (range(300, 600), "2222222222"))]
    results = await asyncio.gather(*(ciz.registers.put_many("WlzIndicatie", batch, actor=ciz.actor, now=ciz.now())
                                     for batch in two))
    assert [r.updated for r in results] == [290, 300]
    for batch in two:
        for _, _, record in batch:
            current = await ciz.registers.current("WlzIndicatie", record["wlzIndicatieID"])
            assert current is not None and current.version == 2 and current.data == strip_nulls(record)
    assert (await ciz.audit.verify())[0]
    process = ciz.registers.preparer._process
    assert process is not None and alive(process.pid)
    await ciz.stop()
    assert not alive(process.pid)  # the node's stop ends it
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        assert db.execute("SELECT count(*) FROM records WHERE current = 1 AND deleted = 0").fetchone()[0] == 597


async def test_a_process_that_dies_costs_no_line_and_is_started_again(network: Network, caplog: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch it had is prepared here; so are the batches of the next AFTER_FAILURE seconds (a process that
    cannot start at all is not started again for every batch); then a new process takes over."""
    monkeypatch.setattr(Preparer, "AFTER_FAILURE", 0.5)
    (ciz,) = await network.start("ciz")
    ciz.registers.preparer = Preparer(use_process=True)
    batches = [[(n, None, r) for n, _, r in lines(300, seed=20 + i)[:299] if n not in (4, 8)] for i in range(4)]
    assert (await ciz.registers.put_many("WlzIndicatie", batches[0], actor=ciz.actor, now=ciz.now())).created == 297
    process = ciz.registers.preparer._process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    await process.wait()
    assert (await ciz.registers.put_many("WlzIndicatie", batches[1], actor=ciz.actor, now=ciz.now())).created == 297
    assert "preparing process failed" in caplog.text
    assert (await ciz.registers.put_many("WlzIndicatie", batches[2], actor=ciz.actor, now=ciz.now())).created == 297
    assert not ciz.registers.preparer.started
    await asyncio.sleep(0.6)
    assert (await ciz.registers.put_many("WlzIndicatie", batches[3], actor=ciz.actor, now=ciz.now())).created == 297
    again = ciz.registers.preparer._process
    assert again is not None and again.pid != process.pid and alive(again.pid)
    assert (await ciz.audit.verify())[0]


async def test_a_process_that_cannot_start_is_not_started_for_every_batch(monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: Any) -> None:
    import node.store.preparing as preparing

    monkeypatch.setattr(preparing, "_PROGRAM", "raise SystemExit(3)")  # a broken install: it ends at once
    preparer = Preparer(use_process=True)
    items = lines(300, seed=60)
    for _ in range(3):
        assert await preparer.prepare("WlzIndicatie", items, None) == prepare("WlzIndicatie", items, None)
    assert caplog.text.count("preparing process failed") == 1
    assert not preparer.started


async def test_the_process_ends_when_no_batch_came_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Preparer, "IDLE", 0.2)
    preparer = Preparer(use_process=True)
    await preparer.prepare("WlzIndicatie", lines(300, seed=30), None)
    process = preparer._process
    assert process is not None
    for _ in range(50):
        if not preparer.started:
            break
        await asyncio.sleep(0.1)
    assert not preparer.started
    await asyncio.wait_for(process.wait(), 5)
    assert not alive(process.pid)


def body(items: list[tuple[int, str | None, Any]]) -> bytes:
    return json.dumps({"items": [{"line": n, "delete": d} if d else {"line": n, "record": r} for n, d, r in items]}).encode()


async def test_the_admin_apis_body_is_read_where_the_batch_is_prepared() -> None:
    items = lines(400, seed=40)
    preparer = Preparer(use_process=True)
    try:
        assert await preparer.prepare("WlzIndicatie", body(items), None) == prepare("WlzIndicatie", items, None)
        assert preparer.started
        # A body that is no batch is refused with the reason it would get here, and the process stays usable.
        large = b"x" * (Preparer.SMALL * 400)
        for bad, reason in ((large, "request body is not JSON"), (b"\xff" + large, "request body is not JSON"),
                            (json.dumps({"items": "no", "pad": large.decode()}).encode(), "an import batch is"),
                            (json.dumps({"items": [{"line": "1"}] * 300}).encode(), "each item is")):
            for where in (preparer, Preparer(use_process=False)):
                with pytest.raises(ValidationError, match=reason):
                    await where.prepare("WlzIndicatie", bad, None)
        process = preparer._process
        assert await preparer.prepare("WlzIndicatie", body(items), None) == prepare("WlzIndicatie", items, None)
        assert preparer._process is process
    finally:
        await preparer.close()


async def test_ctrl_c_in_a_terminal_leaves_the_process_to_its_node() -> None:
    """SIGINT reaches every process of the terminal's group: the preparing process leaves its end to the node (which
    closes its stdin), so it neither dies under a batch nor prints a traceback."""
    items = lines(300, seed=50)
    preparer = Preparer(use_process=True)
    try:
        await preparer.prepare("WlzIndicatie", items, None)
        process = preparer._process
        assert process is not None
        os.kill(process.pid, signal.SIGINT)
        await asyncio.sleep(0.3)
        assert alive(process.pid)
        assert await preparer.prepare("WlzIndicatie", items, None) == prepare("WlzIndicatie", items, None)
        assert preparer._process is process
    finally:
        await preparer.close()
    assert process.returncode == 0


async def test_the_process_runs_the_nodes_own_code_not_a_node_package_in_its_working_directory(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever may write to the directory a node was started in (a shared /tmp, a project folder) could plant a
    package named node there. The preparing process must import the code its node runs, never that: it would run
    as the node's user, next to its key and its database."""
    planted = tmp_path / "node"
    planted.mkdir()
    marker = tmp_path / "ran"
    (planted / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    items = lines(300, seed=70)
    preparer = Preparer(use_process=True)
    try:
        assert await preparer.prepare("WlzIndicatie", items, None) == prepare("WlzIndicatie", items, None)
        assert preparer.started  # prepared there, by the node's own code
    finally:
        await preparer.close()
    assert not marker.exists()
