"""Two real nodes in one process on 127.0.0.1: CIZ holds an indicatie, zorgkantoor 5151 is notified and reads it.

    python examples/two_nodes.py
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

from node.home import NetworkDir, NodeHome
from node.service import Node

SAMPLE = json.loads((Path(__file__).resolve().parents[1] / "node" / "cli" / "sample.json").read_text())


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="iwlz-example-"))
    network = NetworkDir.create(tmp / "network", "example")
    homes = {
        "ciz": NodeHome.create(tmp / "ciz", role="ciz", name="CIZ", identifiers={"kvk": "62253778"}, region=None),
        "zk": NodeHome.create(tmp / "zk", role="zorgkantoor", name="Zorgkantoor Noord", identifiers={"uzovi": "5151"}, region=None),
    }
    for home in homes.values():
        network.issue(home, now=int(time.time()), days=1)
    ciz = Node(homes["ciz"], mdns=False, gossip_interval=1)
    await ciz.start()
    zk = Node(homes["zk"], bootstrap=[ciz.url], mdns=False, gossip_interval=1)
    await zk.start()
    try:
        indicatie = SAMPLE["wlzIndicaties"][0]
        await ciz.registers.put("WlzIndicatie", indicatie, actor=ciz.actor, now=ciz.now())
        for _ in range(100):
            inbox = await zk.inbox.list()
            if inbox and inbox[0]["status"] == "fetched":
                break
            await asyncio.sleep(0.05)
        print("zorgkantoor inbox:", [(r["event_type"], r["status"], r["fetched_version"]) for r in inbox])
        records = await zk.query_peer("register:indicatie", "QIR-0001-ZKi",
                                      {"wlzIndicatieID": indicatie["wlzIndicatieID"], "uzovi": "5151"}, [])
        for record, source, _ in records:
            print(f"read {record.kind}/{record.record_id} v{record.version}, signed by {source.organisation}")
        print("CIZ audit chain:", await ciz.audit.verify())
    finally:
        await zk.stop()
        await ciz.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # the nodes' keys and a sample client's data


if __name__ == "__main__":
    asyncio.run(main())
