"""Time from start to a full peer table for N real nodes on 127.0.0.1 (one process, one event loop), and
time from pushing a revocation list into one node until every other node refuses the revoked member.

    python -m bench.discovery [--nodes 20] [--interval 1.0] [--runs 3]

Every node gets the same bootstrap list of three URLs; the first three nodes
listen there, so they are the bootstrap peers (docs/PROTOCOL.md §4.1). After
the introductions only gossip (every --interval seconds, fanout 3) spreads
the announcements.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from node.errors import NetworkError
from node.home import NetworkDir, NodeHome
from node.service import Node


def free_ports(n: int) -> list[int]:
    """Ports on 127.0.0.1 that were free a moment ago (for URLs that must be known before start)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


async def refuses(node: Node, revoked: Node) -> bool:
    """Whether ``node`` refuses a signed request from ``revoked`` (the answer says revoked)."""
    try:
        await revoked.query_peer(node.url, "RECORD-STATUS", {"kind": "Zorgaanbod", "id": "5d1e7a3c-2b4f-4c6e-9a8b-1c3e5f7a9b2d"}, [])
    except NetworkError as exc:
        return "revoked" in str(exc)
    return False


async def time_to_refusal(net: NetworkDir, nodes: list[Node]) -> float:
    """Revoke the last node, push the list into the first one, and wait until all others refuse it."""
    revoked, others = nodes[-1], nodes[:-1]
    _, data = net.revoke([revoked.member.cert_id.hex()], now=int(time.time()))
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        async with http.post(others[0].url + "/iwlz/v1/revocations", data=data) as response:
            assert (await response.json())["adopted"]
    waiting = set(range(len(others)))
    while waiting and time.monotonic() - started < 120:
        done = await asyncio.gather(*(refuses(others[i], revoked) for i in waiting))
        waiting = {i for i, ok in zip(list(waiting), done) if not ok}
    return time.monotonic() - started


async def run(count: int, interval: float) -> tuple[float, float, int, float]:
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
        ports = free_ports(3)
        bootstrap = [f"http://127.0.0.1:{p}" for p in ports]
        started = time.monotonic()
        for i, home in enumerate(homes):
            node = Node(home, bootstrap=bootstrap, port=ports[i] if i < 3 else 0, gossip_interval=interval, mdns=False)
            await node.start()
            nodes.append(node)
        all_started = time.monotonic() - started
        while not all(len(n.peers) == count - 1 for n in nodes):
            await asyncio.sleep(0.02)
            if time.monotonic() - started > 600:
                break
        full = time.monotonic() - started
        rounds = max(n.gossiper.rounds for n in nodes)
        return all_started, full, rounds, await time_to_refusal(net, nodes)
    finally:
        for node in nodes:
            await node.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    measure(parser.parse_args(argv))


def measure(args: Any) -> dict[str, float]:
    """Median time to full peer tables and from a revocation push to refusal everywhere; ``args`` as main's."""
    logging.basicConfig(level=logging.ERROR)  # bootstrap peers not up yet are expected here
    print(f"{args.nodes} nodes on 127.0.0.1, 3 bootstrap peers, gossip every {args.interval:g} s (fanout 3)")
    fulls, refusals = [], []
    for _ in range(args.runs):
        all_started, full, rounds, refused = asyncio.run(run(args.nodes, args.interval))
        fulls.append(full)
        refusals.append(refused)
        print(f"all nodes started after {all_started:.2f} s; every peer table full after {full:.2f} s "
              f"(at most {rounds} gossip rounds per node); a revocation pushed into one node refused by all "
              f"{args.nodes - 1} others after {refused:.3f} s")
    print(f"median time to full peer tables over {args.runs} runs: {statistics.median(fulls):.2f} s")
    print(f"median time from push until every node refuses the revoked member: {statistics.median(refusals):.3f} s")
    return {"full_tables_s": statistics.median(fulls), "revocation_s": statistics.median(refusals)}


if __name__ == "__main__":
    main()
