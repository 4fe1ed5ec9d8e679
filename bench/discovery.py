"""Time from start to a full peer table for N real nodes on 127.0.0.1 (one process, one event loop).

    python -m bench.discovery [--nodes 20] [--interval 1.0]

The first three nodes are the bootstrap peers of all others; after that only
gossip (every --interval seconds, fanout 3) spreads the announcements.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from node.home import NetworkDir, NodeHome
from node.service import Node


async def run(count: int, interval: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="iwlz-discovery-"))
    nodes: list[Node] = []
    try:
        net = NetworkDir.create(tmp / "net", "bench")
        homes = []
        for i in range(count):
            home = NodeHome.create(tmp / f"n{i}", role="zorgaanbieder", name=f"Aanbieder {i}",
                                   identifiers={"agb": f"{20_000_000 + i:08d}"}, region="5151")
            net.issue(home, now=int(time.time()), days=1)
            homes.append(home)
        started = time.monotonic()
        for i, home in enumerate(homes):
            node = Node(home, bootstrap=[n.url for n in nodes[:3]], gossip_interval=interval, mdns=False)
            await node.start()
            nodes.append(node)
        all_started = time.monotonic() - started
        while not all(len(n.peers) == count - 1 for n in nodes):
            await asyncio.sleep(0.02)
            if time.monotonic() - started > 600:
                break
        full = time.monotonic() - started
        rounds = max(n.gossiper.rounds for n in nodes)
        print(f"{count} nodes on 127.0.0.1, 3 bootstrap peers, gossip every {interval:g} s (fanout 3)")
        print(f"all nodes started after {all_started:.2f} s; every peer table full after {full:.2f} s "
              f"(at most {rounds} gossip rounds per node)")
    finally:
        for node in nodes:
            await node.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    asyncio.run(run(args.nodes, args.interval))


if __name__ == "__main__":
    main()
