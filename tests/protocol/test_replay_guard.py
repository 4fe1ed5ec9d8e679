"""The compact replay guard behaves as a set of (sender, id) pairs that each expire at their own second."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import RemoteProtocolError
from protocol.errors import ErrorCode
from protocol.replay import ReplayGuard

NOW = 1_800_000_000
senders = st.sampled_from(["did:key:z6MkA", "did:key:z6MkB", "did:key:z6MkC"])
ids = st.binary(min_size=1, max_size=16)


def refused(guard: ReplayGuard, sender: str, message_id: bytes, now: int) -> str | None:
    try:
        guard.check(sender, message_id, now)
    except RemoteProtocolError as exc:
        return exc.code.value
    return None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(senders, ids, st.integers(0, 120)), max_size=60), st.integers(0, 200))
def test_the_guard_refuses_exactly_what_a_plain_model_refuses(messages: list[tuple[str, bytes, int]], later: int) -> None:
    guard, model = ReplayGuard(skew=30), dict[tuple[str, bytes], int]()
    for sender, message_id, lifetime in messages:
        expected = "replay" if (sender, message_id) in model else None
        assert refused(guard, sender, message_id, NOW) == expected
        if expected is None:
            guard.remember(sender, message_id, NOW + lifetime)
            model[(sender, message_id)] = NOW + lifetime + 30
    now = NOW + later
    forgotten = sum(1 for f in model.values() if f < now)
    assert guard.prune(now) == forgotten
    for (sender, message_id), forget_after in model.items():
        assert ((sender, message_id) in guard) == (forget_after >= now)
    assert len(guard) == len(model) - forgotten


def test_a_full_guard_refuses_rather_than_forget_early() -> None:
    guard = ReplayGuard(limit=3)
    for i in range(3):
        guard.check_and_remember("did:key:z6MkA", bytes([i]), NOW + 60, NOW)
    try:
        guard.check("did:key:z6MkA", b"\x09", NOW)
    except RemoteProtocolError as exc:
        assert exc.code == ErrorCode.UNAVAILABLE
    else:
        raise AssertionError("a full guard accepted a new id")
    assert guard.prune(NOW + 91) == 3 and len(guard) == 0
    guard.check("did:key:z6MkA", b"\x09", NOW + 91)


def test_a_restart_keeps_refusing_what_was_seen_under_a_new_key() -> None:
    first = ReplayGuard()
    first.remember("did:key:z6MkA", b"\x01" * 16, NOW + 60)
    again = ReplayGuard()  # a new process: another hash key
    again.load(first.drain_new())
    assert refused(again, "did:key:z6MkA", b"\x01" * 16, NOW) == "replay"
    assert refused(again, "did:key:z6MkB", b"\x01" * 16, NOW) is None


def test_each_message_hands_out_its_own_id_only_once() -> None:
    guard = ReplayGuard(skew=30)
    guard.remember("did:key:z6MkA", b"\x01", NOW + 60)
    guard.remember("did:key:z6MkB", b"\x02", NOW + 60)
    assert guard.take("did:key:z6MkB", b"\x02") == [("did:key:z6MkB", b"\x02", NOW + 90)]
    assert guard.take("did:key:z6MkB", b"\x02") == []  # handed out once
    assert guard.take("did:key:z6MkA", b"\x02") == []  # another sender's id is another id
    assert guard.drain_new() == [("did:key:z6MkA", b"\x01", NOW + 90)]  # the rest, still there for a drain
    assert refused(guard, "did:key:z6MkB", b"\x02", NOW) == "replay"  # taking it out is not forgetting it
