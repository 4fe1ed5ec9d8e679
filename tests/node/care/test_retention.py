"""Retention that runs itself: the node purges, on its own schedule, exactly what its retention table says."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import date
from typing import Any

import pytest

from node.cli import main
from node.service import Node
from tests.node.kit import Network, put, sample

pytestmark = pytest.mark.asyncio


def indicatie(einddatum: str | None) -> dict[str, Any]:
    data = sample("wlzIndicaties", 0)
    data["wlzIndicatieID"] = str(uuid.uuid4())
    if einddatum:
        data["einddatum"] = einddatum
    return data


async def remaining(node: Node) -> set[str]:
    rows = await node.store.fetchall("SELECT DISTINCT record_id FROM records WHERE kind = 'WlzIndicatie'")
    return {r[0] for r in rows}


async def test_the_node_purges_on_its_own_exactly_what_the_retention_table_says(network: Network, capsys: Any) -> None:
    ciz, zk = await network.start("ciz", "zk5151", retention={"WlzIndicatie": {"ended": 1, "withdrawn": 0}},
                                  retention_interval=3600.0, notification_retention_days=0)
    long_ended, just_ended, still_open, withdrawn = (indicatie("2024-06-30"), indicatie("2026-11-01"), indicatie(None),
                                                    indicatie(None))
    for data in (long_ended, just_ended, still_open, withdrawn):
        await put(ciz, "WlzIndicatie", data)
    await ciz.registers.delete("WlzIndicatie", withdrawn["wlzIndicatieID"], actor=ciz.actor, now=ciz.now())
    await network.settle()
    ids = {name: d["wlzIndicatieID"] for name, d in
           (("long_ended", long_ended), ("just_ended", just_ended), ("open", still_open), ("withdrawn", withdrawn))}

    # What would go, shown before anything goes: ended over a year ago. The withdrawn one goes tomorrow.
    assert await asyncio.to_thread(main, ["purge", str(ciz.home.path), "--dry-run", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["records"] == [f"WlzIndicatie/{ids['long_ended']}"] and shown["dry_run"]
    assert await remaining(ciz) == set(ids.values())

    # A day later, the node's own housekeeping purges; nobody typed a command.
    entries_before = len(await ciz.audit.entries(limit=100_000))
    await ciz.stop()
    restarted = Node(ciz.home, port=int(ciz.url.rsplit(":", 1)[1]), mdns=False, gossip_interval=0,
                     clock=lambda: time.time() + 24 * 3600)
    restarted.config.retention_interval = 0.2
    await restarted.start()
    network.nodes["ciz"] = restarted
    deadline = time.monotonic() + 10
    while len(await remaining(restarted)) > 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await remaining(restarted) == {ids["just_ended"], ids["open"]}
    purged = [e for e in await restarted.audit.entries(limit=100_000) if e.event == "record.purge"]
    assert sorted(e.record for e in purged) == sorted(f"WlzIndicatie/{ids[n]}" for n in ("long_ended", "withdrawn"))
    # The audit names what went by id, never its content or its client.
    assert all(e.subject is None and e.request is None and e.result == "retention ended" for e in purged)
    assert len(await restarted.audit.entries(limit=100_000)) >= entries_before + 2
    assert (await restarted.audit.verify())[0]
    # Delivered notifications (ids only) went too; nothing was pending.
    assert await restarted.outbox.list() == []
    [gone] = [e for e in await restarted.audit.entries(limit=100_000) if e.event == "notification.purge"]
    assert gone.result == "5 removed"  # four NIEUWE_ and one VERWIJDERDE_INDICATIE_ZORGKANTOOR, delivered


async def test_retention_purges_a_slice_of_records_at_a_time(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first purge after retention was set may remove much of a register: it goes in slices, each its own
    commit, so that everyone else's writes get in between; every record whose period ended goes, each audited."""
    import node.store.registers as registers_module
    monkeypatch.setattr(registers_module, "PURGE_SLICE", 2, raising=False)
    (ciz,) = await network.start("ciz", retention={"WlzIndicatie": {"ended": 1, "withdrawn": 0}})
    ended = [indicatie("2024-06-30") for _ in range(5)]
    for data in [*ended, indicatie(None)]:
        await put(ciz, "WlzIndicatie", data)
    commits: list[int] = []
    write = ciz.registers._write

    async def counting(statements: Any, *args: Any) -> Any:
        commits.append(len(statements))
        return await write(statements, *args)

    monkeypatch.setattr(ciz.registers, "_write", counting)
    purged = await ciz.registers.purge(today=date(2026, 12, 6), actor=ciz.actor, now=ciz.now())
    assert sorted(purged) == sorted(f"WlzIndicatie/{d['wlzIndicatieID']}" for d in ended)
    assert len(commits) == 3  # 2 + 2 + 1 records
    assert len(await remaining(ciz)) == 1 and ciz.registers.counts() == {"WlzIndicatie": 1}
    assert len([e for e in await ciz.audit.entries(limit=1000) if e.event == "record.purge"]) == 5
    assert (await ciz.audit.verify())[0]
