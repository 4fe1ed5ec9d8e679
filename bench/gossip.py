"""A national-size network of gossiping nodes, simulated sans-IO (no sockets).

    python -m bench.gossip [--providers 2000] [--fanout 3] [--seed 1]

1 CIZ, 1 CAK, 31 zorgkantoren and N zorgaanbieders, 3 bootstrap peers. Every
node holds real signed announcements (Endpoint.send with a real certificate)
in a protocol.gossip.GossipTable and runs exactly what the node runs:
protocol.gossip.Schedule decides whom it talks to each round, and each
exchange is protocol.gossip.Exchange on one side and protocol.gossip.answer on
the other, message by message. A message's size is its real encoded body plus
the measured envelope overhead (signature, certificate, addressing);
signatures are not re-verified here (the node does, ~9,000 per second per
core).

Timing model: every node runs one round per gossip interval at a random phase,
so in a round the nodes take their turns in a random order, and what a node
learns in an exchange is in its table for the next one (as on a real
network, where an exchange takes milliseconds and the interval is seconds).
A newcomer first fetches one bootstrap peer's announcement (counted as sent
by that peer) and introduces itself.

It prints the rounds and messages until every node knows every other, the
bytes each node sent against the total size of all announcements, and then
the rounds and per-node cost for one changed announcement to reach every
node, next to the cost of as many quiet rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from keys import Identity, TrustStore, issue_certificate
from protocol import Announcement, Endpoint, PeerExchange, codec
from protocol.gossip import BUDGET_SHARE, ROUND_BUDGET, SAMPLE, TOLD_SHARE, Budget, Exchange, GossipTable, Known, Schedule, answer

NOW = 1_790_000_000


@dataclass
class SimNode:
    did: str
    table: GossipTable
    schedule: Schedule
    sent: int = 0
    received: int = 0
    messages: int = 0
    joined: bool = False
    contacts: set[str] = field(default_factory=set)  # whose certificates it verified in a message
    holders: set[str] = field(default_factory=set)  # who last told it they hold its certificate
    budget: Budget = field(default_factory=Budget)


@dataclass
class Network:
    nodes: dict[str, SimNode]
    announcements: dict[str, bytes]
    overhead: dict[tuple[bool, bool], int]  # (certificate by hash, held hint) -> envelope bytes around the body
    bootstrap: list[str]
    rng: random.Random
    fanout: int
    origin: dict[bytes, Known] = field(default_factory=dict)  # announcement bytes -> the one entry every table shares
    revocations: dict[str, int] = field(default_factory=dict)  # the versions every first message carries

    def transfer(self, a: SimNode, b: SimNode, message: PeerExchange) -> None:
        # As protocol.envelope does: our certificate by hash to whoever said it holds it, and say whose we hold.
        hint = b.did in a.contacts or b.did in a.table
        n = self.overhead[b.did in a.holders, hint] + body_size(message)
        b.contacts.add(a.did)
        if hint:
            b.holders.add(a.did)
        else:
            b.holders.discard(a.did)
        a.sent += n
        a.messages += 1
        b.received += n
        for data in message.announcements:
            known = self.origin[data]
            if b.table.offer(known):
                b.schedule.heard(known.did)

    def exchange(self, a: SimNode, b: SimNode, rumors: list[str], introduce: bool) -> None:
        own = a.table.get(a.did)
        run = Exchange(a.table, a.budget, self.rng, rumors=[] if introduce else rumors,
                       introduce=own.data if introduce and own is not None else None, revocations=self.revocations)
        request: PeerExchange | None = run.first()
        while request is not None:
            self.transfer(a, b, request)
            reply = answer(b.table, request, asker=a.did, me=b.did, budget=b.budget, rng=self.rng,
                           revocations=self.revocations)
            self.transfer(b, a, reply)
            request = run.next(reply)
        a.schedule.wanted(run.useful)
        a.schedule.told(run.told)

    def join(self, node: SimNode) -> None:
        """Fetch a bootstrap peer's announcement (all of them, for a bootstrap peer), as the node does."""
        if node.did in self.bootstrap:
            fetch = [d for d in self.bootstrap if d != node.did]
        else:
            fetch = [self.rng.choice(self.bootstrap)]
        node.joined = True
        for did in fetch:
            data = self.announcements[did]
            self.nodes[did].sent += len(data)
            node.received += len(data)
            node.table.offer(self.origin[data])

    def round(self) -> None:
        order = list(self.nodes.values())
        self.rng.shuffle(order)
        for node in order:
            node.budget = node.table.round_budget(node.schedule.network_size())
        boot = set(self.bootstrap)
        for node in order:
            if not node.joined:
                self.join(node)
            plan, rumors = node.schedule.plan(node.table, node.did, boot)
            for planned in plan:
                self.exchange(node, self.nodes[planned.did], rumors, planned.introduce)

    def converged(self, check: str | None = None, seq: int = 1) -> bool:
        if check is not None:
            return all((e := n.table.get(check)) is not None and e.seq >= seq for n in self.nodes.values())
        return all(len(n.table) == len(self.nodes) for n in self.nodes.values())

    def reset_counters(self) -> None:
        for node in self.nodes.values():
            node.sent = node.received = node.messages = 0


def build(providers: int, fanout: int, rng: random.Random) -> Network:
    # Keys from the seed too: the dids decide buckets and order, so a seed repeats a run exactly.
    root = Identity.from_seed(rng.randbytes(32))
    parties: list[tuple[str, dict[str, str], str | None]] = [("ciz", {"kvk": "62253778"}, None),
                                                             ("cak", {"kvk": "27364237"}, None)]
    parties += [("zorgkantoor", {"uzovi": f"{5000 + i:04d}"}, None) for i in range(31)]
    parties += [("zorgaanbieder", {"agb": f"{10_000_000 + i:08d}"}, "5000") for i in range(providers)]
    nodes, announcements = {}, {}
    overhead: dict[tuple[bool, bool], int] = {}
    for i, (role, ids, region) in enumerate(parties):
        identity = Identity.from_seed(rng.randbytes(32))
        cert = issue_certificate(root, subject=identity.did, organisation=f"{role} {i}", role=role, identifiers=ids,
                                 region=region, not_before=NOW - 10, expires=NOW + 10**7, issued_at=NOW)
        endpoint = Endpoint(identity, cert, TrustStore([root.did]))
        message = Announcement(seq=1, endpoints=(f"https://node{i}.example.nl:8700/",), registers=(role,),
                               templates=("QIR-0001-ZKi",) if role == "ciz" else (), events=())
        data = endpoint.send(message, to="*", now=NOW, lifetime=86400).data
        announcements[identity.did] = data
        table = GossipTable()
        table.offer(Known(identity.did, 1, NOW + 86400, data))
        nodes[identity.did] = SimNode(identity.did, table, Schedule(fanout, rng))
        if not overhead:
            overhead = _overheads(endpoint, identity.did, data)
    net = Network(nodes, announcements, overhead, list(nodes)[:3], rng, fanout)
    net.origin = {data: Known(did, 1, NOW + 86400, data) for did, data in announcements.items()}
    net.revocations = {root.did: 1}
    return net


def _head(n: int) -> int:
    """Bytes of a CBOR head for length or unsigned value ``n``."""
    return 1 if n < 24 else 2 if n < 256 else 3 if n < 65536 else 5 if n < 2**32 else 9


def body_size(message: PeerExchange) -> int:
    """The encoded size of ``message``, computed without encoding its long arrays (checked against
    codec.encode in tests/test_bench_gossip.py)."""
    rest = replace(message, announcements=(), digest=())
    size = len(codec.encode(rest.to_cbor()))
    size += _head(len(message.announcements)) - 1 + sum(_head(len(a)) + len(a) for a in message.announcements)
    size += _head(len(message.digest)) - 1 + sum(17 + _head(e.seq) for e in message.digest)
    return size


def _overheads(endpoint: Endpoint, me: str, announcement: bytes) -> dict[tuple[bool, bool], int]:
    """Envelope bytes around a body, measured: certificate whole or by hash, with or without the held hint."""
    empty = PeerExchange(hash=None, summary=None, digest=(), buckets=(), want=(), announcements=(), sample=0, revocations={})
    body = len(codec.encode(empty.to_cbor()))
    out = {(False, False): len(endpoint.send(empty, to=me, now=NOW).data) - body}
    endpoint.verify_broadcast(announcement, now=NOW)  # now it holds a certificate to hint at
    for by_hash in (False, True):
        out[by_hash, True] = len(endpoint.send(empty, to=me, now=NOW, cert_by_hash=by_hash).data) - body
    out[True, False] = out[True, True] - (out[False, True] - out[False, False])
    return out


def run_until(net: Network, done: Callable[[], bool], max_rounds: int) -> int:
    rounds = 0
    while not done() and rounds < max_rounds:
        net.round()
        rounds += 1
    return rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", type=int, default=2000)
    parser.add_argument("--fanout", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-rounds", type=int, default=40)
    measure(parser.parse_args(argv))


def measure(args: Any) -> dict[str, float]:
    """Rounds to converge, bytes per node relative to the total, and a change's rounds; ``args`` as main's."""
    rng = random.Random(args.seed)
    started = time.perf_counter()
    net = build(args.providers, args.fanout, rng)
    nodes = net.nodes
    n = len(nodes)
    total_size = sum(len(a) for a in net.announcements.values())

    rounds = run_until(net, net.converged, args.max_rounds)
    sent = [nd.sent for nd in nodes.values()]
    received = [nd.received for nd in nodes.values()]
    messages = sum(nd.messages for nd in nodes.values())
    boot_sent = [nodes[d].sent for d in net.bootstrap]
    print(f"network: {n} nodes (1 CIZ, 1 CAK, 31 zorgkantoren, {args.providers} zorgaanbieders), 3 bootstrap peers, "
          f"fanout {args.fanout}; {ROUND_BUDGET // 1000} kB, {BUDGET_SHARE:.0%} of its table or {TOLD_SHARE:.0%} of the largest table a peer told it of (the largest) handed out per node per round at most, samples of {SAMPLE}")
    print(f"total size of all announcements: {total_size / 1e6:.2f} MB ({total_size // n} bytes each, certificate included); "
          f"envelope overhead per message {net.overhead[False, False]} bytes with the certificate, "
          f"{net.overhead[True, True]} naming it by hash")
    print(f"full convergence: {'yes' if net.converged() else 'NO'} after {rounds} rounds (target <= 12), {messages:,} messages")
    print(f"bytes sent per node: median {statistics.median(sent) / 1e6:.2f} MB ({statistics.median(sent) / total_size:.2f}x), "
          f"max {max(sent) / 1e6:.2f} MB = {max(sent) / total_size:.2f}x the total (target <= 3x); "
          f"bootstrap peers {', '.join(f'{s / total_size:.2f}x' for s in boot_sent)}")
    print(f"bytes received per node: median {statistics.median(received) / 1e6:.2f} MB, max {max(received) / 1e6:.2f} MB")

    # Quiet rounds first: what the network costs when nothing changes.
    quiet = 12
    for _ in range(quiet):
        net.round()
    net.reset_counters()
    run_until(net, lambda: False, quiet)
    background = [nd.sent + nd.received for nd in nodes.values()]

    # A later change: one provider re-announces (seq 2).
    net.reset_counters()
    changer = nodes[list(nodes)[-1]]
    old = net.announcements[changer.did]
    new_data = old[:-1] + bytes([old[-1] ^ 1])  # stands in for the re-signed announcement: same size, other bytes
    net.origin[new_data] = Known(changer.did, 2, NOW + 86400, new_data)
    changer.table.offer(net.origin[new_data])
    changer.schedule.heard(changer.did)
    change_rounds = run_until(net, lambda: net.converged(changer.did, 2), args.max_rounds)
    extra = max(0, quiet - change_rounds)
    run_until(net, lambda: False, extra)  # the same number of rounds as the quiet window, to compare like with like
    per_node = [nd.sent + nd.received for nd in nodes.values()]
    sent_change = [nd.sent for nd in nodes.values()]
    print(f"quiet network: {quiet} rounds cost per node (sent + received) median {statistics.median(background) / 1e3:.1f} kB, "
          f"max {max(background) / 1e3:.1f} kB")
    print(f"one changed announcement reached every node after {change_rounds} rounds (target <= 12); "
          f"{max(quiet, change_rounds)} rounds from the change cost per node (sent + received) "
          f"median {statistics.median(per_node) / 1e3:.1f} kB, max {max(per_node) / 1e3:.1f} kB "
          f"(sent: median {statistics.median(sent_change) / 1e3:.1f} kB); "
          f"above the quiet rounds: median {(statistics.median(per_node) - statistics.median(background)) / 1e3:.1f} kB")
    print(f"(simulation took {time.perf_counter() - started:.0f} s)")
    return {"nodes": n, "rounds": rounds if net.converged() else float("inf"),
            "median_sent_ratio": statistics.median(sent) / total_size, "max_sent_ratio": max(sent) / total_size,
            "change_rounds": change_rounds}


if __name__ == "__main__":
    main()
