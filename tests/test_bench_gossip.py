"""The gossip simulation counts what the wire would carry."""

import random

from bench.gossip import NOW, body_size, build, run_until
from protocol.gossip import Known
from protocol import DigestEntry, PeerExchange, codec


def test_body_size_matches_the_encoding() -> None:
    rng = random.Random(3)
    for _ in range(50):
        message = PeerExchange(
            hash=bytes(16) if rng.random() < 0.5 else None, summary=bytes(512) if rng.random() < 0.5 else None,
            digest=tuple(DigestEntry(id=rng.randbytes(8), seq=rng.choice([0, 23, 24, 255, 256, 2**31, 2**40]))
                         for _ in range(rng.choice([0, 1, 23, 24, 300]))),
            buckets=tuple(rng.sample(range(64), rng.randrange(5))), want=(), sample=rng.randrange(9),
            announcements=tuple(rng.randbytes(rng.choice([10, 23, 24, 300, 70_000])) for _ in range(rng.choice([0, 3, 30]))),
            revocations={})
        assert body_size(message) == len(codec.encode(message.to_cbor()))


def test_a_small_network_converges_and_a_change_reaches_everyone() -> None:
    net = build(60, 3, random.Random(1))
    rounds = run_until(net, net.converged, 12)
    assert net.converged() and rounds <= 12
    assert {len(n.table) for n in net.nodes.values()} == {len(net.nodes)}
    # Bootstrap peers answered newcomers with samples, never whole tables.
    total = sum(len(a) for a in net.announcements.values())
    assert all(net.nodes[d].sent < 3 * total for d in net.bootstrap)
    changer = net.nodes[list(net.nodes)[-1]]
    old = net.announcements[changer.did]
    new = old[:-1] + bytes([old[-1] ^ 1])
    net.origin[new] = Known(changer.did, 2, NOW + 86400, new)
    changer.table.offer(net.origin[new])
    changer.schedule.heard(changer.did)
    assert run_until(net, lambda: net.converged(changer.did, 2), 12) <= 12
    assert all(n.table.get(changer.did).data == new for n in net.nodes.values())
