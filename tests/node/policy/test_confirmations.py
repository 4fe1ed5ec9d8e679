"""Confirming stale evidence asks its source: what a requester presents must not decide how much a node asks.

Attack: a member presents the same stale piece of evidence 8 times in each of the 64 queries of one message, or
128 different ones. Before, the node asked the evidence's source once per piece, one at a time: one signed message
of the member made 512 (or 128) signed questions from the node to another member, each audited there as the
node's (up to 1,024 in a message of 1 MiB)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from keys import Member
from node.policy import evidence as evidence_module
from node.service import Node
from protocol import Answers, Queries, Query
from protocol.records import RecordVersion
from tests.node.kit import IND0, SPEC0, Network
from tests.node.policy.test_scenarios import registered

pytestmark = pytest.mark.asyncio
ASK = {"wlzIndicatieID": IND0, "agb": "12345678"}


async def _questions(source: Node) -> int:
    return len([e for e in await source.audit.entries(limit=100_000) if e.event == "query RECORD-STATUS"])


async def _ask_in_one_message(requester: Node, target: Node, evidence: list[tuple[bytes, ...]]) -> list[str | None]:
    batch = Queries(queries=tuple(Query(template="QIR-0002-ZA", params=ASK, evidence=pieces, history=False)
                                  for pieces in evidence))
    reply = await requester.client.request(target.url, batch, to=target.identity.did)
    assert isinstance(reply.message, Answers)
    return [answer.error.rule if answer.error else None for answer in reply.message.answers]


async def test_the_same_stale_evidence_presented_again_and_again_is_confirmed_once(network: Network) -> None:
    ciz, zk, za = await registered(network, "za_a")
    [(_, _, specificatie)] = await za.query_peer(
        zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "12345678"}, [])
    ciz.pdp.freshness = 1  # the specificatie is stale a second or two from now: CIZ asks 5151
    await asyncio.sleep(2.1)
    before = await _questions(zk)
    answers = await _ask_in_one_message(za, ciz, [(specificatie,) * 8] * 64)
    assert answers == [None] * 64  # every query answered: the evidence was confirmed
    assert await _questions(zk) - before == 1


async def test_one_message_starts_a_bounded_number_of_questions(network: Network) -> None:
    ciz, zk, za = await registered(network, "za_a")
    ciz.pdp.freshness = 1
    now = zk.now()
    pieces = [zk.registers.signer.sign(RecordVersion("Bemiddelingspecificatie", str(uuid.uuid4()), 1, zk.identity.did,
                                                      now, False, {"wlzIndicatieID": IND0, "instelling": "12345678"}))
              for _ in range(64 * 2)]
    await asyncio.sleep(2.1)
    before = await _questions(zk)
    answers = await _ask_in_one_message(za, ciz, [tuple(pieces[i * 2:(i + 1) * 2]) for i in range(64)])
    assert set(answers) == {"UCIR-0002"}  # none of them is current at 5151: denied as without evidence
    assert await _questions(zk) - before == evidence_module.PER_MESSAGE == 64


def _member(did: str) -> Member:
    return Member(did=did, organisation="Z", role="zorgkantoor", identifiers={}, region=None, not_before=0,
                  expires=2**40, cert_id=b"c" * 16, issuer="did:key:root", cert_hash=b"h" * 32)


def _version(record_id: str, version: int = 1) -> RecordVersion:
    return RecordVersion("Bemiddeling", record_id, version, "did:key:z", 0, False, {})


async def test_answers_are_kept_for_at_most_the_freshness_bound_and_a_question_under_way_is_shared() -> None:
    from node.policy.evidence import Confirmations

    asked: list[str] = []
    release = asyncio.Event()

    async def ask(record: RecordVersion, signer: Member) -> bool:
        asked.append(record.record_id)
        await release.wait()
        return record.version == 1

    confirmations, signer = Confirmations(ask), _member("did:key:z")
    together = [asyncio.ensure_future(confirmations.confirm(_version("a"), signer, 100, freshness=3600)) for _ in range(5)]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*together) == [True] * 5 and asked == ["a"]
    assert await confirmations.confirm(_version("a"), signer, 159, freshness=3600)  # kept for a minute
    assert asked == ["a"]
    assert await confirmations.confirm(_version("a"), signer, 160, freshness=3600)  # asked again after it
    assert not await confirmations.confirm(_version("a", 2), signer, 160, freshness=3600)  # another version
    assert asked == ["a", "a", "a"]
    await confirmations.confirm(_version("b"), signer, 200, freshness=10)  # never longer than the freshness bound
    await confirmations.confirm(_version("b"), signer, 210, freshness=10)
    assert asked[-2:] == ["b", "b"]


async def test_at_most_so_many_questions_are_under_way_and_a_message_has_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from node.policy.evidence import Confirmations, one_message

    monkeypatch.setattr(evidence_module, "PER_MESSAGE", 90)
    under_way: dict[str, int] = {}
    most: dict[str, int] = {}
    release = asyncio.Event()

    async def ask(record: RecordVersion, signer: Member) -> bool:
        under_way[signer.did] = under_way.get(signer.did, 0) + 1
        most[signer.did] = max(most.get(signer.did, 0), under_way[signer.did])
        most["all"] = max(most.get("all", 0), sum(under_way.values()))
        await release.wait()
        under_way[signer.did] -= 1
        return True

    confirmations = Confirmations(ask)
    signers = [_member(f"did:key:z{n}") for n in range(10)]
    with one_message():
        asking = [asyncio.ensure_future(confirmations.confirm(_version(str(n)), signers[n % 10], 0, freshness=60))
                  for n in range(100)]
        await asyncio.sleep(0.01)
        release.set()
        results = await asyncio.gather(*asking)
    assert results == [True] * 90 + [None] * 10  # past the message's budget: not confirmed, not asked
    assert most["all"] == evidence_module.CONCURRENT == 32
    assert max(n for did, n in most.items() if did != "all") == evidence_module.PER_SOURCE == 4
    # Outside a message (the node's own work) there is no budget.
    assert all(await asyncio.gather(*(confirmations.confirm(_version(f"x{n}"), signers[0], 0, freshness=60) for n in range(50))))


async def test_a_source_that_does_not_answer_holds_up_only_questions_about_its_own_records() -> None:
    from node.policy.evidence import Confirmations

    async def ask(record: RecordVersion, signer: Member) -> bool:
        if signer.did == "did:key:silent":
            await asyncio.Event().wait()  # never answers (until the client's timeout)
        return True

    confirmations = Confirmations(ask)
    silent = [asyncio.ensure_future(confirmations.confirm(_version(f"s{n}"), _member("did:key:silent"), 0, freshness=60))
              for n in range(100)]
    await asyncio.sleep(0.01)
    assert await asyncio.wait_for(confirmations.confirm(_version("a"), _member("did:key:other"), 0, freshness=60), 1.0)
    await _cancel(silent, confirmations)


async def _cancel(silent: list[asyncio.Future[bool]], confirmations: object) -> None:
    """End the questions never answered."""
    for task in [*silent, *confirmations._under_way.values()]:  # type: ignore[attr-defined]  # noqa: SLF001
        task.cancel()
    await asyncio.gather(*silent, return_exceptions=True)


async def test_evidence_of_a_kind_the_rule_does_not_use_is_not_confirmed(network: Network) -> None:
    """UCIR-0002 opens an indicatie to a zorgaanbieder on a Bemiddelingspecificatie (and the Bemiddelingen that
    moved the indicatie between zorgkantoren). Before, stale evidence of any other kind was confirmed too: here
    64 of another zorgaanbieder's Zorgaanbod records made CIZ ask that zorgaanbieder 64 signed questions."""
    ciz, zk, za = await registered(network, "za_a")
    (other,) = await network.start("za_b")
    ciz.pdp.freshness = 1
    now = other.now()
    pieces = [other.registers.signer.sign(RecordVersion("Zorgaanbod", str(uuid.uuid4()), 1, other.identity.did, now,
                                                         False, {"instelling": "87654321"}))
              for _ in range(64)]
    await asyncio.sleep(2.1)
    before = await _questions(other)
    answers = await _ask_in_one_message(za, ciz, [(piece,) for piece in pieces])
    assert set(answers) == {"UCIR-0002"}  # denied: no specificatie among them
    assert await _questions(other) - before == 0


async def test_clients_nodes_that_do_not_answer_leave_the_members_questions_room() -> None:
    """Attack: a machtiging is confirmed with the client's node at the endpoint it names, and any client can name one
    that never answers. Nine clients (each with a machtiging to another, presented a few at a time) held all 32
    places for questions until their timeouts: a zorgkantoor's indicatie presented meanwhile could not be
    confirmed, and the rule that needs it denied. Clients' nodes now share places of their own."""
    from node.policy.evidence import Confirmations

    async def ask(record: RecordVersion, signer: Member) -> bool:
        if signer.role == "client":
            await asyncio.Event().wait()  # never answers (until the client's timeout)
        return True

    confirmations = Confirmations(ask)
    clients = [Member(did=f"did:key:client{n}", organisation="client", role="client", identifiers={}, region=None,
                      not_before=0, expires=2**40, cert_id=b"c" * 16, issuer="did:key:root", cert_hash=b"h" * 32)
               for n in range(9)]
    silent = [asyncio.ensure_future(confirmations.confirm(_version(f"s{n}"), clients[n % 9], 0, freshness=60))
              for n in range(36)]
    await asyncio.sleep(0.01)
    assert await asyncio.wait_for(confirmations.confirm(_version("a"), _member("did:key:zk"), 0, freshness=60), 1.0)
    await _cancel(silent, confirmations)
    await asyncio.sleep(0)
    assert confirmations._per_source == {}  # noqa: SLF001 - nothing kept for a signer once its questions ended
