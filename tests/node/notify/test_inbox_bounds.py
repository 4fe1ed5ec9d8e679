"""What a sender can make a receiver's inbox hold and do, between real nodes on 127.0.0.1.

A notification is a hint: the receiver fetches what it is about from the source, which is its sender. A sender
that tells and then never lets itself be asked (down, broken, or on purpose) must cost the receiver a bounded
number of rows and a few questions with growing pauses, not a row per notification it cares to sign and a
question per row every two seconds for ever."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from node.errors import PeerRefused, StorageError
from node.notify import inbox as inbox_module
from node.service import Node
from protocol import Notification, Notifications, Queries, Query, Receipts, Subject
from tests.node.kit import Network, indicatie, put_indicaties

pytestmark = pytest.mark.asyncio


def _note(record_id: str) -> Notification:
    path = f"WlzIndicatie/{record_id}"
    return Notification(notification_id=str(uuid.uuid4()), event_type="NIEUWE_INDICATIE_ZORGKANTOOR", timestamp=1,
                        sender_id_type="KVK", sender_id="62253778", receiver_id_type="UZOVI", receiver_id="5151",
                        subscription_id=None, subjects=(Subject(subject=path, record_id=path),))


def _unavailable(source: Node) -> tuple[list[str], Callable[[], None]]:
    """The source answers every question "not now" (a store that cannot commit); returns who asked, and a way back."""
    asked: list[str] = []
    answers = {kind: source.dispatcher._handlers[kind] for kind in (Query, Queries)}  # noqa: SLF001

    def refusing(kind: type) -> Callable[[Any, int], Awaitable[Any]]:
        async def refuse(incoming: Any, now: int) -> Any:
            asked.append(kind.__name__)
            raise StorageError("the store could not commit")
        return refuse

    for kind in answers:
        source.dispatcher._handlers[kind] = refusing(kind)  # noqa: SLF001

    def back() -> None:
        source.dispatcher._handlers.update(answers)  # noqa: SLF001
    return asked, back


async def _tell(source: Node, receiver: Node, notes: list[Notification]) -> list[tuple[str, str | None]]:
    reply = await source.client.request(receiver.url, Notifications(notifications=tuple(notes)), to=receiver.identity.did)
    assert isinstance(reply.message, Receipts)
    return [(r.status, r.code) for r in reply.message.receipts]


async def _rows(node: Node) -> dict[str, tuple[str, int, float]]:
    rows = await node.store.fetchall("SELECT notification_id, status, attempts, next_attempt_at FROM inbox")
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def _no_housekeeping(node: Node) -> None:
    """Retry passes only when the test makes them (the node's own, every 2 s, would race its assertions)."""
    for task in node._tasks:  # noqa: SLF001
        if task.get_name() == "housekeeping":
            task.cancel()


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await check()


async def test_a_sender_that_is_never_there_to_be_asked_fills_no_inbox(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: a member signs batches of notifications about records it never serves. Before, every one was
    stored (a row and an audit entry each, kept until fetched, i.e. for ever); now what waits for one sender to
    be asked is bounded, and the next are refused "not now" and stay with the sender, whose outbox tries later."""
    monkeypatch.setattr(inbox_module, "PENDING_PER_SENDER", 100)
    ciz, zk = await network.start("ciz", "zk5151")
    _no_housekeeping(zk)
    _, back = _unavailable(ciz)
    notes = [_note(str(uuid.uuid4())) for _ in range(192)]
    receipts = [r for start in range(0, 192, 64) for r in await _tell(ciz, zk, notes[start:start + 64])]
    assert receipts == [("accepted", None)] * 100 + [("refused", "unavailable")] * 92
    with pytest.raises(PeerRefused) as one_more:  # alone, as a node that does not batch sends it
        await ciz.send_to_peer(zk.url, _note(str(uuid.uuid4())))
    assert (one_more.value.code, one_more.value.rule) == ("unavailable", "NOTIFICATIONS-WAITING")

    async def all_failed() -> bool:
        rows = await _rows(zk)
        return len(rows) == 100 and {status for status, _, _ in rows.values()} == {"fetch-failed"}
    await _until(all_failed)
    assert set(await _rows(zk)) == {n.notification_id for n in notes[:100]}
    received = [e for e in await zk.audit.entries(limit=1000) if e.event.startswith("notification.received")]
    assert len(received) == 100
    # Once the sender answers, what waited is fetched, and the sender's next are taken again.
    back()
    assert await zk.inbox.retry_failed(now=time.time() + 3600) == 100

    async def settled() -> bool:
        return {status for status, _, _ in (await _rows(zk)).values()} == {"fetched"}
    await _until(settled)
    assert await _tell(ciz, zk, notes[100:164]) + await _tell(ciz, zk, notes[164:]) == [("accepted", None)] * 92


async def test_a_sender_that_does_not_answer_is_asked_again_after_growing_pauses(network: Network) -> None:
    """Before, every fetch that failed was asked again at every pass of the housekeeping, every 2 s, for as long
    as the source did not answer: 64 rows of a source gone for a day were ~2.8 million questions."""
    ciz, zk = await network.start("ciz", "zk5151")
    _no_housekeeping(zk)
    asked, back = _unavailable(ciz)
    notes = [_note(str(uuid.uuid4())) for _ in range(64)]
    assert await _tell(ciz, zk, notes) == [("accepted", None)] * 64

    async def failed(times: int) -> bool:
        return all(status == "fetch-failed" and attempts == times for status, attempts, _ in (await _rows(zk)).values())
    await _until(lambda: failed(1))
    first = len(asked)
    assert first == 1  # the 64 in one batched question
    await zk._refresh_gauges()  # noqa: SLF001 - what /metrics shows the operator
    gauge = zk.metrics.registry.get_sample_value
    assert [gauge("iwlz_inbox_notifications", {"status": s}) for s in ("received", "fetch-failed")] == [0, 64]
    before = min(next_at for _, _, next_at in (await _rows(zk)).values()) - 0.01
    for _ in range(5):  # passes before the pause is over ask nothing
        assert await zk.inbox.retry_failed(now=before) == 0
    await asyncio.sleep(0.2)
    assert len(asked) == first
    # The pause doubles with each failure: 2 s, 4 s, 8 s, ... at most 5 minutes.
    pauses = []
    for times in range(2, 11):
        due = max(next_at for _, _, next_at in (await _rows(zk)).values())
        assert await zk.inbox.retry_failed(now=due) == 64
        await _until(lambda: failed(times))
        pauses.append(round(max(next_at for _, _, next_at in (await _rows(zk)).values()) - due))
    assert pauses == [4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert len(asked) == first + 9
    back()


async def test_a_pass_starts_a_bounded_page_of_what_is_due(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox_module, "RETRY_PAGE", 64)
    ciz, zk = await network.start("ciz", "zk5151")
    _no_housekeeping(zk)
    _, back = _unavailable(ciz)
    for _ in range(3):
        assert await _tell(ciz, zk, [_note(str(uuid.uuid4())) for _ in range(64)]) == [("accepted", None)] * 64

    async def all_failed() -> bool:
        return {status for status, _, _ in (await _rows(zk)).values()} == {"fetch-failed"}
    await _until(all_failed)
    back()
    later = time.time() + 3600
    assert [await zk.inbox.retry_failed(now=later) for _ in range(3)] == [64, 64, 64]

    async def fetched() -> bool:
        return {status for status, _, _ in (await _rows(zk)).values()} == {"fetched"}
    await _until(fetched)


async def test_a_sender_that_answers_again_is_asked_at_once_for_what_waited(network: Network) -> None:
    """The pause is for a source that does not answer; one that answers again (here: its next notification is
    fetched) is asked at once for what waited, not minutes later."""
    ciz, zk = await network.start("ciz", "zk5151")
    _no_housekeeping(zk)
    _, back = _unavailable(ciz)
    waiting = [_note(str(uuid.uuid4())) for _ in range(10)]
    assert await _tell(ciz, zk, waiting) == [("accepted", None)] * 10

    async def failed_once() -> bool:
        rows = await _rows(zk)
        return len(rows) == 10 and all(status == "fetch-failed" and attempts == 1 for status, attempts, _ in rows.values())
    await _until(failed_once)
    await zk.store.write([("UPDATE inbox SET next_attempt_at = ?", (time.time() + 300, ), False)])  # a long pause
    back()
    record = indicatie()
    await put_indicaties(ciz, [record])  # ciz's outbox tells zk, which fetches it: ciz answers again

    async def all_fetched() -> bool:
        await zk.inbox.retry_failed()  # the node's pass, every 2 s
        rows = await _rows(zk)
        return len(rows) == 11 and {status for status, _, _ in rows.values()} == {"fetched"}
    await _until(all_fetched, timeout=10)
