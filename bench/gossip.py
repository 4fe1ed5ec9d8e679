"""A national-size network of gossiping nodes, simulated sans-IO (no sockets).

    python -m bench.gossip [--providers 2000] [--fanout 3] [--seed 1]

1 CIZ, 1 CAK, 31 zorgkantoren and N zorgaanbieders, 3 bootstrap peers. Each
node holds a protocol.gossip.GossipTable of real signed announcements
(Endpoint.send with a real certificate), and each round every node runs the
node's exchange (fingerprints → digests of differing buckets → missing
announcements, capped per exchange and per round) with `fanout` random peers
it knows. Message sizes are those of real PeerExchange bodies plus the
measured envelope overhead; signatures are not re-verified here (the node
does, at about 8,000 per second per core).

It prints the rounds and messages until every node knows every other, the
bytes each node sent and received against the total size of all
announcements, and then the rounds and per-node cost for one changed
announcement to reach every node.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass, field

from keys import Identity, TrustStore, issue_certificate
from protocol import Announcement, DigestEntry, Endpoint, PeerExchange, PeerExchangeResult, codec
from protocol.gossip import GossipTable, Known

NOW = 1_790_000_000
PER_EXCHANGE = 64  # announcements in one message
PER_ROUND_BYTES = 400_000  # what a node hands out per round (digests and announcements), over all exchanges
DIGEST_BUCKETS = 16  # differing buckets described in one reply
RUMOR_ROUNDS = 1  # a new announcement is pushed along for this many rounds
RUMORS = 64  # rumors pushed in one message


@dataclass
class SimNode:
    did: str
    table: GossipTable
    sent: int = 0
    received: int = 0
    messages: int = 0
    budget: int = PER_ROUND_BYTES
    inbox: list[Known] = field(default_factory=list)
    rumors: dict[str, int] = field(default_factory=dict)  # did -> rounds left to push it


def build(providers: int) -> tuple[dict[str, SimNode], dict[str, bytes], int]:
    root = Identity.generate()
    parties = [("ciz", {"kvk": "62253778"}, None), ("cak", {"kvk": "27364237"}, None)]
    parties += [("zorgkantoor", {"uzovi": f"{5000 + i:04d}"}, None) for i in range(31)]
    parties += [("zorgaanbieder", {"agb": f"{10_000_000 + i:08d}"}, "5000") for i in range(providers)]
    nodes, announcements = {}, {}
    overhead = 0
    for i, (role, ids, region) in enumerate(parties):
        identity = Identity.generate()
        cert = issue_certificate(root, subject=identity.did, organisation=f"{role} {i}", role=role, identifiers=ids,
                                 region=region, not_before=NOW - 10, expires=NOW + 10**7, issued_at=NOW)
        endpoint = Endpoint(identity, cert, TrustStore([root.did]))
        message = Announcement(seq=1, endpoints=(f"https://node{i}.example.nl:8700/",), registers=(role,),
                               templates=("QIR-0001-ZKi",) if role == "ciz" else (), events=())
        data = endpoint.send(message, to="*", now=NOW, lifetime=86400).data
        announcements[identity.did] = data
        table = GossipTable()
        table.offer(Known(identity.did, 1, NOW + 86400, data))
        nodes[identity.did] = SimNode(identity.did, table, rumors={identity.did: RUMOR_ROUNDS})
        if not overhead:
            empty = PeerExchange(summary=None, digest=(), want=(), announcements=(), revocations={})
            overhead = len(endpoint.send(empty, to=identity.did, now=NOW).data) - len(codec.encode(empty.to_cbor()))
    return nodes, announcements, overhead


def size(message: PeerExchange, overhead: int) -> int:
    return overhead + len(codec.encode(message.to_cbor()))


def transfer(a: SimNode, b: SimNode, message: PeerExchange, overhead: int) -> None:
    n = size(message, overhead)
    a.sent += n
    a.messages += 1
    b.received += n
    # What arrives is used from the next round on, as if all nodes ran at once.
    b.inbox.extend(Known(_did_of[d], _seq_of[d], NOW + 86400, d) for d in message.announcements)


def settle(nodes: dict[str, SimNode]) -> None:
    for node in nodes.values():
        node.rumors = {did: left - 1 for did, left in node.rumors.items() if left > 1}
        for entry in node.inbox:
            if node.table.offer(entry):
                node.rumors[entry.did] = RUMOR_ROUNDS
        node.inbox.clear()


_did_of: dict[bytes, str] = {}
_seq_of: dict[bytes, int] = {}


def take(node: SimNode, dids: list[str]) -> tuple[bytes, ...]:
    """Announcements for ``dids``, within the per-exchange cap and the node's round budget."""
    taken, node.budget = node.table.take(dids, limit=PER_EXCHANGE, budget=node.budget)
    return taken


def exchange(a: SimNode, b: SimNode, overhead: int) -> None:
    pushed = [a.table.entries[d].data for d in list(a.rumors)[:RUMORS]]
    first = PeerExchange(summary=a.table.summary(), digest=(), want=(), announcements=tuple(pushed), revocations={})
    transfer(a, b, first, overhead)
    buckets = b.table.differing(first.summary or b"")
    random.shuffle(buckets)
    digest: tuple[DigestEntry, ...] = ()
    if buckets and b.budget > 0:
        buckets = buckets[:DIGEST_BUCKETS]
        digest = tuple(DigestEntry(id=d, seq=s) for d, s in b.table.digest(buckets))
        b.budget -= len(codec.encode([e.to_cbor() for e in digest]))
    reply = PeerExchangeResult(summary=b.table.summary(), digest=digest, want=(), announcements=(), revocations={})
    transfer(b, a, reply, overhead)
    if not digest:
        return
    they_lack, i_want = a.table.compare([(e.id, e.seq) for e in reply.digest], buckets)
    random.shuffle(they_lack)
    random.shuffle(i_want)
    second = PeerExchange(summary=None, digest=(), want=tuple(i_want[:PER_EXCHANGE]), announcements=take(a, they_lack),
                          revocations={})
    transfer(a, b, second, overhead)
    answer = PeerExchangeResult(summary=None, digest=(), want=(), announcements=take(b, b.table.resolve(second.want)), revocations={})
    transfer(b, a, answer, overhead)


def choose(node: SimNode, fanout: int, bootstrap: set[str], rng: random.Random) -> list[str]:
    """As the node does: random known peers; a bootstrap peer only while too few others are known."""
    known = [d for d in node.table.entries if d != node.did and d not in bootstrap]
    chosen = rng.sample(known, min(fanout, len(known)))
    boot = [d for d in bootstrap if d != node.did]
    if len(chosen) < fanout and boot:
        chosen.append(rng.choice(boot))
    return chosen


def run_round(nodes: dict[str, SimNode], fanout: int, overhead: int, rng: random.Random, bootstrap: set[str]) -> None:
    order = list(nodes.values())
    rng.shuffle(order)
    for node in nodes.values():
        node.budget = PER_ROUND_BYTES
    for node in order:
        for did in choose(node, fanout, bootstrap, rng):
            exchange(node, nodes[did], overhead)
    settle(nodes)


def converged(nodes: dict[str, SimNode], check: str | None = None, seq: int = 1) -> bool:
    if check is not None:
        return all((e := n.table.get(check)) is not None and e.seq >= seq for n in nodes.values())
    total = len(nodes)
    return all(len(n.table) == total for n in nodes.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", type=int, default=2000)
    parser.add_argument("--fanout", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-rounds", type=int, default=40)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    random.seed(args.seed)
    started = time.perf_counter()
    nodes, announcements, overhead = build(args.providers)
    for did, data in announcements.items():
        _did_of[data], _seq_of[data] = did, 1
    total_size = sum(len(a) for a in announcements.values())
    boot = list(nodes)[:3]
    for node in nodes.values():
        for did in boot:
            if did != node.did:
                node.table.offer(Known(did, 1, NOW + 86400, announcements[did]))
    rounds = 0
    while not converged(nodes) and rounds < args.max_rounds:
        run_round(nodes, args.fanout, overhead, rng, set(boot))
        rounds += 1
    sent = [n.sent for n in nodes.values()]
    received = [n.received for n in nodes.values()]
    messages = sum(n.messages for n in nodes.values())
    n = len(nodes)
    print(f"network: {n} nodes (1 CIZ, 1 CAK, 31 zorgkantoren, {args.providers} zorgaanbieders), 3 bootstrap peers, "
          f"fanout {args.fanout}; at most {PER_EXCHANGE} announcements per message, {PER_ROUND_BYTES // 1000} kB handed out per node per round")
    print(f"total size of all announcements: {total_size / 1e6:.2f} MB ({total_size // n} bytes each, certificate included)")
    print(f"full convergence: {'yes' if converged(nodes) else 'NO'} after {rounds} rounds (target <= 12), {messages:,} messages")
    print(f"bytes sent per node: median {statistics.median(sent) / 1e6:.2f} MB, max {max(sent) / 1e6:.2f} MB "
          f"= {max(sent) / total_size:.2f}x the total (target <= 3x)")
    print(f"bytes received per node: median {statistics.median(received) / 1e6:.2f} MB, max {max(received) / 1e6:.2f} MB")

    # A later change: one provider re-announces (seq 2).
    for node in nodes.values():
        node.sent = node.received = node.messages = 0
    changer = nodes[list(nodes)[-1]]
    new_data = announcements[changer.did] + b""  # a distinct object standing in for the re-signed announcement
    new_data = bytes(new_data[:-1]) + bytes([new_data[-1] ^ 1])
    _did_of[new_data], _seq_of[new_data] = changer.did, 2
    changer.table.offer(Known(changer.did, 2, NOW + 86400, new_data))
    changer.rumors[changer.did] = RUMOR_ROUNDS
    change_rounds = 0
    while not converged(nodes, changer.did, 2) and change_rounds < args.max_rounds:
        run_round(nodes, args.fanout, overhead, rng, set(boot))
        change_rounds += 1
    per_node = [(nd.sent + nd.received) for nd in nodes.values()]
    print(f"one changed announcement reached every node after {change_rounds} rounds (target <= 12); "
          f"cost per node (sent + received): median {statistics.median(per_node) / 1e3:.1f} kB, max {max(per_node) / 1e3:.1f} kB")
    print(f"(simulation took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
