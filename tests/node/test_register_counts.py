"""How many records a node holds is kept as records are written: /metrics and the info page count nothing per
request, and the figure stays right through every kind of write, a purge, a restart and an upgrade."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from datetime import date
from typing import Any

import aiohttp
import pytest

from node.service import Node
from tests.node.kit import Network, put, sample

pytestmark = pytest.mark.asyncio


def counted(node: Node) -> dict[str, int]:
    with closing(sqlite3.connect(node.home.database_path)) as db, db:
        return dict(db.execute("SELECT kind, count(*) FROM records WHERE current = 1 AND deleted = 0 GROUP BY kind"))


# Undoes schemas 10 to 12: lookup keys by kind and record id, with their index, the index of current versions, and
# the audit log's copy of the previous hash, and the hash of a request kept elsewhere.
AS_SCHEMA_9 = """
    CREATE TABLE record_keys_v9 (name TEXT NOT NULL, value TEXT NOT NULL, kind TEXT NOT NULL, record_id TEXT NOT NULL,
                                 PRIMARY KEY (name, value, kind, record_id)) WITHOUT ROWID;
    INSERT INTO record_keys_v9 SELECT k.name, k.value, r.kind, r.record_id FROM record_keys k JOIN records r ON r.id = k.record;
    DROP TABLE record_keys;
    ALTER TABLE record_keys_v9 RENAME TO record_keys;
    CREATE INDEX record_keys_by_record ON record_keys(kind, record_id);
    CREATE INDEX records_current ON records(kind, record_id) WHERE current = 1;
    ALTER TABLE audit ADD COLUMN prev_hash BLOB;
    ALTER TABLE audit DROP COLUMN request_sha256;
"""


def indicatie(**changes: Any) -> dict[str, Any]:
    return {**sample("wlzIndicaties", 0), "wlzIndicatieID": str(uuid.uuid4()), **changes}


async def test_the_count_follows_every_write_purge_restart(network: Network) -> None:
    (ciz,) = await network.start("ciz", retention={"WlzIndicatie": {"ended": 0, "withdrawn": 0}})
    first, second, ended = indicatie(), indicatie(), indicatie(einddatum="2020-01-31")
    for data in (first, second, ended):
        await put(ciz, "WlzIndicatie", data)
    await put(ciz, "WlzIndicatie", {**first, "meerzorg": True})  # an update holds as many as before
    await ciz.registers.delete("WlzIndicatie", second["wlzIndicatieID"], actor=ciz.actor, now=ciz.now())
    batch = [(1, None, indicatie()), (2, None, indicatie()), (3, second["wlzIndicatieID"], None),  # gone already
             (4, first["wlzIndicatieID"], None), (5, None, {**second, "meerzorg": True})]  # delete one, bring one back
    result = await ciz.registers.put_many("WlzIndicatie", batch, actor=ciz.actor, now=ciz.now())
    assert (result.created, result.deleted, result.unchanged) == (3, 1, 1)
    assert await ciz.registers.count() == sum(counted(ciz).values()) == 4
    await ciz.registers.purge(today=date(2026, 12, 5), actor=ciz.actor, now=ciz.now())
    assert await ciz.registers.count() == sum(counted(ciz).values()) == 3

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ciz.url}/metrics") as r:
            assert "iwlz_store_records 3.0" in await r.text()
        async with http.get(f"{ciz.admin_url}/admin/v1/node",
                            headers={"Authorization": f"Bearer {ciz.home.admin_token()}"}) as r:
            assert (await r.json())["records"] == 3

    await ciz.stop()
    again = Node(ciz.home, mdns=False, gossip_interval=0)
    await again.start()
    try:
        assert await again.registers.count() == 3 and again.registers.counts() == counted(again)
    finally:
        await again.stop()


async def test_an_upgraded_database_starts_with_the_right_count(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    for _ in range(3):
        await put(ciz, "WlzIndicatie", indicatie())
    await ciz.stop()
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:  # as before schema 9 kept counts
        db.execute("DELETE FROM register_counts")
        db.execute("PRAGMA user_version = 8")
        db.execute("DROP TABLE register_counts")
        db.execute("DROP INDEX outbox_dead")
        db.execute("DROP INDEX outbox_by_receiver")  # schema 13's
        db.execute("DROP INDEX outbox_by_receiver_did")
        db.execute("DROP INDEX subscriptions_by_subscriber")  # schema 14's
        db.execute("DROP INDEX subscriptions_of_organisations")
        db.execute("DROP INDEX inbox_to_act")  # schema 15's
        db.execute("DROP INDEX records_retention")
        db.execute("DROP TABLE audit_requests")  # schema 16's
        db.execute("DROP INDEX inbox_waiting_by_sender")  # schema 17's
        db.execute("ALTER TABLE inbox DROP COLUMN attempts")
        db.execute("ALTER TABLE inbox DROP COLUMN next_attempt_at")
        db.execute("DROP TABLE witness_pins")  # schema 18's
        db.execute("ALTER TABLE witnessed DROP COLUMN cert")
        db.execute("DROP INDEX subscriptions_by_machtiging")  # schema 20's
        for column in ("subscriber_cert", "machtiging", "machtiging_id", "machtiging_signer", "machtiging_cert", "machtiging_until"):
            db.execute(f"ALTER TABLE subscriptions DROP COLUMN {column}")
        db.execute("ALTER TABLE inbox DROP COLUMN subscription_id")
        db.execute("DROP INDEX subscriptions_by_subscriber_until")  # schema 21's
        db.execute("ALTER TABLE subscriptions DROP COLUMN subscriber_until")
        db.execute("ALTER TABLE revoked_consents DROP COLUMN client_commitment")  # schema 22's
        db.executescript(AS_SCHEMA_9)
    again = Node(ciz.home, mdns=False, gossip_interval=0)
    await again.start()
    try:
        assert again.registers.counts() == {"WlzIndicatie": 3}
        assert len(await again.registers.find("zorgkantoor", indicatie()["initieelVerantwoordelijkZorgkantoor"])) == 3
    finally:
        await again.stop()
