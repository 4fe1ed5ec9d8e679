"""The sans-IO gossip parts the node and the simulation share: tables reconcile exactly,
quiet tables cost one small message each way, budgets hold, and the schedule is as documented."""

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import PeerExchange, codec
from protocol.gossip import (
    BUDGET_SHARE,
    IDLE_WAIT_MAX,
    MAX_STEPS,
    MAX_TOLD,
    PER_EXCHANGE,
    ROUND_BUDGET,
    RUMOR_ROUNDS,
    SAMPLE,
    SMALL_TABLE,
    TOLD_SHARE,
    Budget,
    Exchange,
    GossipTable,
    Known,
    Schedule,
    answer,
    short_id,
)


def entry(i: int, seq: int = 1) -> Known:
    did = f"did:key:test{i}"
    return Known(did, seq, 10**10, f"{did}|{seq}|".encode() + bytes(100))


def offer_all(table: GossipTable, announcements: tuple[bytes, ...]) -> None:
    """What the node does after verifying them."""
    for data in announcements:
        did, seq, _ = data.split(b"|", 2)
        table.offer(Known(did.decode(), int(seq), 10**10, data))


def table(*entries: Known) -> GossipTable:
    t = GossipTable()
    for e in entries:
        t.offer(e)
    return t


def run(a: GossipTable, b: GossipTable, *, rumors: list[str] | None = None,
        budget_b: Budget | None = None) -> tuple[Exchange, list[PeerExchange]]:
    rng = random.Random(7)
    ex = Exchange(a, Budget(), rng, rumors=rumors or [])
    sent: list[PeerExchange] = []
    request = ex.first()
    while request is not None:
        sent.append(request)
        offer_all(b, request.announcements)
        reply = answer(b, request, asker="did:key:a", me="did:key:b", budget=budget_b or Budget(), rng=rng,
                       revocations={})
        sent.append(reply)
        offer_all(a, reply.announcements)
        request = ex.next(reply)
    return ex, sent


def test_two_tables_end_equal_and_hold_the_newest_of_each() -> None:
    a = table(*(entry(i) for i in range(100)), entry(100, seq=5))
    b = table(*(entry(i) for i in range(50, 150)), entry(100, seq=3))
    run(a, b)
    assert set(a.dids()) == set(b.dids()) == {f"did:key:test{i}" for i in range(150)}
    assert a.get("did:key:test100").seq == b.get("did:key:test100").seq == 5
    assert a.table_hash() == b.table_hash()


def test_equal_tables_cost_one_small_message_each_way() -> None:
    a = table(*(entry(i) for i in range(500)))
    b = table(*(entry(i) for i in range(500)))
    _, sent = run(a, b)
    assert len(sent) == 2
    assert sent[1].summary is None and not sent[1].announcements
    assert all(len(codec.encode(m.to_cbor())) < 120 for m in sent)


def test_a_rumor_arrives_without_fingerprints_and_is_reported_useful() -> None:
    a = table(*(entry(i) for i in range(300)), entry(300, seq=2))
    b = table(*(entry(i) for i in range(300)), entry(300, seq=1))
    ex, sent = run(a, b, rumors=["did:key:test300"])
    first_reply = sent[1]
    assert first_reply.summary is None and first_reply.want == (short_id("did:key:test300"),)
    assert sent[2].announcements == (a.get("did:key:test300").data,) and sent[2].hash == a.table_hash()
    assert len(sent) == 4 and b.get("did:key:test300").seq == 2
    assert ex.useful == ["did:key:test300"]


def test_a_known_rumor_is_not_useful_and_costs_one_round_trip() -> None:
    a = table(*(entry(i) for i in range(10)))
    b = table(*(entry(i) for i in range(10)))
    ex, sent = run(a, b, rumors=["did:key:test3"])
    assert len(sent) == 2 and ex.useful == []


def test_an_answer_stays_within_the_round_budget() -> None:
    a = table(entry(0))
    b = table(*(entry(i) for i in range(200)))
    size = len(entry(1).data)
    budget = Budget(3 * size + size // 2)
    run(a, b, budget_b=budget)
    assert len(a) == 1 + 3  # three fitted, the fourth did not
    assert 0 <= budget.left < size


def test_an_exchange_goes_on_describing_differing_buckets_up_to_its_request_limit() -> None:
    """A newcomer meeting a full table gets more than one message of announcements from one exchange: after each
    answer it describes the next differing buckets, or the same ones again while the answers come full."""
    a = table(entry(0))
    b = table(*(entry(i) for i in range(3000)))
    ex, sent = run(a, b)
    assert ex.steps == MAX_STEPS and len(sent) == 2 * MAX_STEPS
    received = sum(len(m.announcements) for m in sent[1::2])
    assert received == len(a) - 1 and received > 6 * PER_EXCHANGE  # the steps after the first each brought a full message
    assert all(len(m.announcements) <= PER_EXCHANGE for m in sent)
    # A small difference still ends as soon as there is nothing left to describe or send.
    c, d = table(*(entry(i) for i in range(50))), table(*(entry(i) for i in range(60)))
    ex, sent = run(c, d)
    assert len(c) == 60 and ex.steps == 2


def test_the_round_budget_grows_with_the_table_it_must_hand_out() -> None:
    """A large network's node must receive the whole table: a budget that stays put makes that take
    table / budget rounds at least (20 at 10,000 simulated nodes)."""
    small = table(*(entry(i) for i in range(100)))
    assert small.round_budget().left == ROUND_BUDGET
    big = GossipTable()
    for i in range(10_000):
        big.offer(Known(f"did:key:test{i}", 1, 10**10, bytes(820)))
    assert big.bytes == 8_200_000 and big.round_budget().left == int(8_200_000 * BUDGET_SHARE)
    big.offer(Known("did:key:test1", 2, 10**10, bytes(1820)))  # a newer, larger announcement replaces the old
    big.remove("did:key:test2")
    assert big.bytes == 8_200_000 + 1000 - 820 and len(big) == 9_999


def test_a_young_node_budgets_for_the_network_its_peers_say_they_hold() -> None:
    """A node of a young network holds a fraction of the table it must help to fill: its budget follows the
    largest table a peer told it of, at the average size of its own announcements; a lie costs no more than
    a network of MAX_TOLD nodes would."""
    young = GossipTable()
    for i in range(10):
        young.offer(Known(f"did:key:test{i}", 1, 10**10, bytes(800)))
    assert young.round_budget().left == young.round_budget(told=10).left == ROUND_BUDGET
    assert young.round_budget(told=2_000).left == int(2_000 * 800 * TOLD_SHARE) > ROUND_BUDGET
    assert young.round_budget(told=10**15).left == young.round_budget(told=MAX_TOLD).left == int(MAX_TOLD * 800 * TOLD_SHARE)
    assert GossipTable().round_budget(told=2_000).left == ROUND_BUDGET  # nothing to hand out, no average to go by
    full = GossipTable()
    for i in range(2_000):
        full.offer(Known(f"did:key:test{i}", 1, 10**10, bytes(800)))
    # Holding what its peers hold, a node hands out its own share only: the others ask it for what they lack.
    assert full.round_budget(told=2_000).left == full.round_budget().left == int(2_000 * 800 * BUDGET_SHARE)


def test_every_answer_says_how_large_its_table_is_and_the_asker_keeps_it_two_rounds() -> None:
    a, b = table(entry(0)), table(*(entry(i) for i in range(300)))
    ex, sent = run(a, b)
    assert [m.held for m in sent[1::2]] == [300] * (len(sent) // 2) and ex.told == 300
    # An introduction is one request and one answer; the newcomer learns the size from it too.
    intro = Exchange(table(entry(1000)), Budget(), random.Random(1), introduce=entry(1000).data)
    request = intro.first()
    offer_all(b, request.announcements)  # the bootstrap peer keeps the newcomer's announcement first
    reply = answer(b, request, asker="did:key:test1000", me="did:key:b", budget=Budget(), rng=random.Random(2),
                   revocations={})
    assert intro.next(reply) is None and intro.told == 301
    # A node of an earlier version does not say: the asker guesses nothing.
    quiet = Exchange(table(entry(0)), Budget(), random.Random(1))
    first = answer(b, quiet.first(), asker="did:key:test0", me="did:key:b", budget=Budget(), rng=random.Random(2),
                   revocations={})
    quiet.next(dataclasses.replace(first, held=None))
    assert quiet.told == 0
    schedule = Schedule(3, random.Random(3))
    schedule.told(ex.told)
    schedule.told(120)  # a smaller table told later does not lower it
    assert schedule.network_size() == 300
    schedule.plan(a, "did:key:test0", set())  # the next round's budget still follows it...
    assert schedule.network_size() == 300
    schedule.plan(a, "did:key:test0", set())  # ...and the one after that, then it is forgotten
    assert schedule.network_size() == 0
    schedule.told(10**15)
    assert schedule.network_size() == MAX_TOLD


def test_a_sample_is_small_random_and_names_neither_side() -> None:
    b = table(*(entry(i) for i in range(50)))
    request = PeerExchange(hash=bytes(16), summary=None, digest=(), buckets=(), want=(), announcements=(), sample=SAMPLE,
                           revocations={})
    reply = answer(b, request, asker="did:key:test0", me="did:key:test1", budget=Budget(0), rng=random.Random(1),
                   revocations={})
    dids = {d.split(b"|")[0].decode() for d in reply.announcements}
    assert len(dids) == SAMPLE and not dids & {"did:key:test0", "did:key:test1"}
    assert reply.summary is None  # a newcomer gets a sample, not a reconciliation


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 300), st.integers(1, 4), max_size=200),
       st.dictionaries(st.integers(0, 300), st.integers(1, 4), max_size=200))
def test_any_two_tables_reconcile_to_their_union(left: dict[int, int], right: dict[int, int]) -> None:
    a = table(*(entry(i, s) for i, s in left.items()))
    b = table(*(entry(i, s) for i, s in right.items()))
    run(a, b)
    union = {f"did:key:test{i}": max(left.get(i, 0), right.get(i, 0)) for i in set(left) | set(right)}
    assert {d: a.get(d).seq for d in a.dids()} == union  # type: ignore[union-attr]
    assert {d: b.get(d).seq for d in b.dids()} == union  # type: ignore[union-attr]


# The schedule --------------------------------------------------------------------

BOOT = {"did:key:test0"}


def test_a_newcomer_asks_a_bootstrap_peer_for_a_sample() -> None:
    plan, _ = Schedule(3, random.Random(1)).plan(table(entry(0), entry(9)), "did:key:test9", BOOT)
    assert [(p.did, p.introduce) for p in plan] == [("did:key:test0", True)]


def test_a_busy_node_runs_fanout_exchanges_and_leaves_bootstrap_peers_alone() -> None:
    t = table(*(entry(i) for i in range(40)))
    plan, _ = Schedule(3, random.Random(1)).plan(t, "did:key:test9", BOOT)
    assert len(plan) == 3 and not any(p.introduce or p.did in BOOT or p.did == "did:key:test9" for p in plan)


def test_a_quiet_node_waits_twice_as_long_each_time() -> None:
    t = table(*(entry(i) for i in range(40)))
    schedule = Schedule(3, random.Random(1))
    rounds = [r for r in range(40) if schedule.plan(t, "did:key:test9", BOOT)[0]]
    assert rounds[:6] == [0, 1, 3, 7, 15, 23]  # busy at first, then 1, 2, 4, 8, 8 rounds apart
    assert all(b - a == IDLE_WAIT_MAX for a, b in zip(rounds[4:], rounds[5:]))
    # News starts the waits over: a busy round, then quiet exchanges 1, 2 and 4 rounds apart again.
    t.offer(entry(99))
    rounds = [r for r in range(40, 60) if schedule.plan(t, "did:key:test9", BOOT)[0]]
    assert rounds[:5] == [40, 41, 43, 47, 55]


def test_a_quiet_node_in_a_small_corner_asks_for_a_new_sample() -> None:
    t = table(*(entry(i) for i in range(SMALL_TABLE // 2)))
    schedule = Schedule(3, random.Random(1))
    schedule.plan(t, "did:key:test5", BOOT)
    plan, _ = schedule.plan(t, "did:key:test5", BOOT)
    assert [(p.did, p.introduce) for p in plan] == [("did:key:test0", True)]


def test_a_bootstrap_peer_only_keeps_up_with_the_other_bootstrap_peers_while_busy() -> None:
    t = table(*(entry(i) for i in range(40)))
    plan, _ = Schedule(3, random.Random(1)).plan(t, "did:key:test0", {"did:key:test0", "did:key:test1"})
    assert [(p.did, p.introduce) for p in plan] == [("did:key:test1", False)]


def test_a_rumor_is_offered_while_wanted_and_one_spare_round_to_one_peer() -> None:
    t = table(*(entry(i) for i in range(40)))
    schedule = Schedule(3, random.Random(1))
    schedule.plan(t, "did:key:test9", BOOT)  # the table's own first change
    schedule.heard("did:key:test5")
    offered = []
    for _ in range(RUMOR_ROUNDS + 2):
        _, rumors = schedule.plan(t, "did:key:test9", BOOT)
        offered.append(rumors)
        schedule.wanted(rumors)  # always wanted: offered for RUMOR_ROUNDS rounds, then dropped
    assert offered == [["did:key:test5"]] * RUMOR_ROUNDS + [[]] * 2
    schedule.heard("did:key:test6")
    plan, rumors = schedule.plan(t, "did:key:test9", BOOT)
    assert rumors == ["did:key:test6"] and len(plan) == 3
    schedule.wanted([])  # nobody wanted it: one spare round, with a single peer
    plan, rumors = schedule.plan(t, "did:key:test9", BOOT)
    assert rumors == ["did:key:test6"] and len(plan) == 1
    schedule.wanted([])
    assert schedule.plan(t, "did:key:test9", BOOT)[1] == []


def test_a_quiet_bootstrap_peer_asks_someone_every_round() -> None:
    """It is left out of busy exchanges, so it must not miss what spread meanwhile."""
    t = table(*(entry(i) for i in range(40)))
    boot = {"did:key:test0", "did:key:test1"}
    schedule = Schedule(3, random.Random(1))
    schedule.plan(t, "did:key:test0", boot)
    for _ in range(10):
        plan, _ = schedule.plan(t, "did:key:test0", boot)
        assert plan[0].did == "did:key:test1" and len(plan) == 2 and not any(p.introduce for p in plan)
