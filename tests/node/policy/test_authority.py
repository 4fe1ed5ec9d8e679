"""Evidence with authority, tried as an attacker would (issue "Trust that holds", point 1).

Every piece of evidence here is genuinely signed by a member of the network:
the question is only whether the signer had authority over *that* indicatie,
and whether the evidence is about the same indicatie and client. Each attack
is denied with its rule named, and leaves nothing behind at the source: no
allowed audit entry, no learned step of authority.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from node.errors import PeerRefused
from node.service import Node
from tests.node.kit import BSN0, IND0, IND1, SPEC0, Network, put, sample

pytestmark = pytest.mark.asyncio
BEM0, BEM1 = "ca6cd66c-78e8-45bc-afb7-3578f78e1ffa", "e164f982-15c0-40b7-babb-1e8530a037ef"
BSN1 = "737459086"  # the client of IND1
OTHER_BSN = "666952152"


def overdracht(to: str, day: str = "2026-10-01", overdracht_id: str = "4b8e2f6a-9c1d-4e3f-8a5b-7c9d1e2f3a4b") -> dict[str, Any]:
    return {"overdrachtID": overdracht_id, "verantwoordelijkZorgkantoor": to, "overdrachtDatum": day,
            "verhuisDatum": "2026-09-15", "overdrachtspecificatie": [{"leveringsstatus": "1"}]}


def bemiddeling(of: str, *, record: int = 1, to: str | None = None, bemiddeling_id: str | None = None,
                bsn: str | None = None, day: str = "2026-10-01") -> dict[str, Any]:
    """A Bemiddeling about wlzIndicaties[record] as the zorgkantoor ``of`` would store it, optionally handing it on."""
    data = copy.deepcopy(sample("bemiddelingen", record))
    data["verantwoordelijkZorgkantoor"] = of
    if bemiddeling_id:
        data["bemiddelingID"] = bemiddeling_id
    if bsn:
        data["client"]["bsn"] = bsn
    for spec in data["bemiddelingspecificatie"]:
        spec["uitvoerendZorgkantoor"] = of
    if to:
        data["overdracht"] = overdracht(to, day)
    return data


async def signed(node: Node, kind: str, data: dict[str, Any]) -> bytes:
    """The version ``node`` signs when it stores ``data``: as genuine as evidence gets."""
    stored, _ = await node.registers.put(kind, data, actor=node.actor, now=node.now())
    return stored.signed


async def denied(coro: Any) -> PeerRefused:
    with pytest.raises(PeerRefused) as info:
        await coro
    assert info.value.code == "denied"
    return info.value


async def nothing_learned(ciz: Node, before: int) -> None:
    """No step of authority kept, and the last decision audited as a denial."""
    assert await ciz.store.fetchall("SELECT * FROM authority_links") == []
    entries = await ciz.audit.entries(limit=10_000)
    assert entries[-1].result == "denied"
    assert not [e for e in entries[before:] if e.result == "allowed"]


async def indicaties(network: Network, *names: str) -> list[Node]:
    nodes = await network.start("ciz", "zk5151", *names)
    for i in range(2):
        await put(nodes[0], "WlzIndicatie", sample("wlzIndicaties", i))
    await network.settle()
    return nodes


def ask(zk: Node, ciz: Node, indicatie: str, uzovi: str, evidence: list[bytes]) -> Any:
    return zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": indicatie, "uzovi": uzovi}, evidence)


async def audited(ciz: Node) -> int:
    return len(await ciz.audit.entries(limit=10_000))


# UCIR-0003: the Overdracht chain ---------------------------------------------------------------


async def test_a_self_signed_overdracht_opens_nothing(network: Network) -> None:
    ciz, zk, zk5050 = await indicaties(network, "zk5050")
    forged = await signed(zk5050, "Bemiddeling", bemiddeling("5050", to="5050"))  # 5050 hands IND1 to itself
    before = await audited(ciz)
    error = await denied(ask(zk5050, ciz, IND1, "5050", [forged]))
    assert error.rule == "UCIR-0003"
    await nothing_learned(ciz, before)


async def test_an_overdracht_signed_by_a_zorgkantoor_that_is_not_responsible_opens_nothing(network: Network) -> None:
    ciz, zk, zk5050, zk5252 = await indicaties(network, "zk5050", "zk5252")
    forged = await signed(zk5252, "Bemiddeling", bemiddeling("5252", to="5050"))  # 5252 was never responsible for IND1
    before = await audited(ciz)
    error = await denied(ask(zk5050, ciz, IND1, "5050", [forged]))
    assert error.rule == "UCIR-0003"
    await nothing_learned(ciz, before)


async def test_an_overdracht_about_another_client_opens_nothing(network: Network) -> None:
    ciz, zk, zk5050 = await indicaties(network, "zk5050")
    # Signed by the responsible 5151, names IND1, but for another BSN.
    other = await signed(zk, "Bemiddeling", bemiddeling("5151", to="5050", bsn=OTHER_BSN))
    before = await audited(ciz)
    error = await denied(ask(zk5050, ciz, IND1, "5050", [other]))
    assert error.rule == "UCIR-0003"
    await nothing_learned(ciz, before)


async def test_an_overdracht_for_another_indicatie_opens_nothing(network: Network) -> None:
    ciz, zk, zk5050 = await indicaties(network, "zk5050")
    genuine = await signed(zk, "Bemiddeling", bemiddeling("5151", to="5050"))  # IND1 moves to 5050
    before = await audited(ciz)
    error = await denied(ask(zk5050, ciz, IND0, "5050", [genuine]))  # ... IND0 does not
    assert error.rule == "UCIR-0003"
    await nothing_learned(ciz, before)


async def test_an_overdracht_that_does_not_verify_opens_nothing(network: Network) -> None:
    ciz, zk, zk5050 = await indicaties(network, "zk5050")
    genuine = bytearray(await signed(zk, "Bemiddeling", bemiddeling("5151", to="5050")))
    genuine[-1] ^= 1
    before = await audited(ciz)
    error = await denied(ask(zk5050, ciz, IND1, "5050", [bytes(genuine)]))
    assert error.rule == "UCIR-0003"
    await nothing_learned(ciz, before)


async def test_a_superseded_overdracht_no_longer_counts(network: Network) -> None:
    ciz, zk, zk5050, zk5252 = await indicaties(network, "zk5050", "zk5252")
    to_5050 = await signed(zk, "Bemiddeling", bemiddeling("5151", to="5050"))
    to_5252 = await signed(zk, "Bemiddeling", bemiddeling("5151", to="5252"))  # 5151 changes its mind: version 2
    [(record, _, _)] = await ask(zk5252, ciz, IND1, "5252", [to_5252])
    assert record.record_id == IND1
    error = await denied(ask(zk5050, ciz, IND1, "5050", [to_5050]))  # CIZ has seen the later version
    assert error.rule == "UCIR-0003"


async def test_a_chain_is_walked_from_the_initial_zorgkantoor_and_a_gap_opens_nothing(network: Network) -> None:
    ciz, zk, zk5050, zk5252 = await indicaties(network, "zk5050", "zk5252")
    first = await signed(zk, "Bemiddeling", bemiddeling("5151", to="5050", day="2026-10-01"))
    second = await signed(zk5050, "Bemiddeling", bemiddeling("5050", to="5252", day="2026-11-01",
                                                              bemiddeling_id="0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f"))
    before = await audited(ciz)
    error = await denied(ask(zk5252, ciz, IND1, "5252", [second]))  # the link from 5151 is missing
    assert error.rule == "UCIR-0003"
    await nothing_learned(ciz, before)
    [(record, _, _)] = await ask(zk5252, ciz, IND1, "5252", [first, second])
    assert record.record_id == IND1
    entry = (await ciz.audit.entries(limit=10_000))[-1]
    assert (entry.result, entry.rule, entry.actor_org) == ("allowed", "UCIR-0003", "Zorgkantoor West")
    links = await ciz.store.fetchall("SELECT holder, target FROM authority_links ORDER BY ord")
    assert links == [("5151", "5050"), ("5050", "5252")]
    # The later Overdracht away from 5050 ends its access, and 5151's.
    error = await denied(ask(zk5050, ciz, IND1, "5050", [first]))
    assert error.rule == "UCIR-0003"
    assert await ask(zk, ciz, IND1, "5151", []) == []
    # Changes now reach everyone who held or was handed it.
    changed = sample("wlzIndicaties", 1)
    changed["einddatum"] = "2027-03-01"
    await put(ciz, "WlzIndicatie", changed)
    told = {r["receiver_id"] for r in await ciz.outbox.list() if r["event_type"] == "GEWIJZIGDE_INDICATIE_ZORGKANTOOR"}
    assert told == {"5151", "5050", "5252"}


async def test_a_client_who_moves_back_is_with_the_zorgkantoor_he_moved_back_to(network: Network) -> None:
    ciz, zk, zk5050 = await indicaties(network, "zk5050")
    away = await signed(zk, "Bemiddeling", bemiddeling("5151", to="5050", day="2026-10-01"))
    back = await signed(zk5050, "Bemiddeling", bemiddeling("5050", to="5151", day="2026-12-01",
                                                            bemiddeling_id="0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f"))
    [(record, _, _)] = await ask(zk, ciz, IND1, "5151", [away, back])
    assert record.record_id == IND1
    assert (await ciz.audit.entries(limit=10_000))[-1].rule == "UCIR-0003"
    error = await denied(ask(zk5050, ciz, IND1, "5050", [away]))
    assert error.rule == "UCIR-0003"


async def test_an_overdracht_signed_after_the_signer_was_revoked_opens_nothing(network: Network) -> None:
    ciz, zk, zk5050 = await indicaties(network, "zk5050")
    _, data = network.net.revoke([zk.member.cert_id.hex()], now=ciz.now())
    assert ciz.adopt_revocation_list(data)
    late = await signed(zk, "Bemiddeling", bemiddeling("5151", to="5050"))  # 5151's key still signs; nobody trusts it
    before = await audited(ciz)
    error = await denied(ask(zk5050, ciz, IND1, "5050", [late]))
    assert error.rule == "UCIR-0003"
    await nothing_learned(ciz, before)


# UCIR-0002: the Bemiddelingspecificatie ---------------------------------------------------------


async def specificatie(zk: Node, za: Node, data: dict[str, Any]) -> bytes:
    """The Bemiddelingspecificatie view that ``zk`` signs for the provider, as the provider fetches it."""
    await put(zk, "Bemiddeling", data)
    spec = data["bemiddelingspecificatie"][0]["bemiddelingspecificatieID"]
    [(_, _, view)] = await za.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": spec, "instelling": "12345678"}, [])
    return view


async def test_a_specificatie_from_a_zorgkantoor_that_is_not_responsible_opens_nothing(network: Network) -> None:
    ciz, zk, zk5050, za = await indicaties(network, "zk5050", "za_a")
    view = await specificatie(zk5050, za, bemiddeling("5050", record=0))  # 5050 assigns za to IND0, which is 5151's
    before = await audited(ciz)
    error = await denied(za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "12345678"}, [view]))
    assert error.rule == "UCIR-0002"
    await nothing_learned(ciz, before)


async def test_a_specificatie_about_another_client_opens_nothing(network: Network) -> None:
    ciz, zk, za = await indicaties(network, "za_a")
    view = await specificatie(zk, za, bemiddeling("5151", record=0, bsn=OTHER_BSN))
    before = await audited(ciz)
    error = await denied(za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "12345678"}, [view]))
    assert error.rule == "UCIR-0002"
    await nothing_learned(ciz, before)


async def test_after_an_overdracht_only_the_new_zorgkantoors_specificatie_counts(network: Network) -> None:
    ciz, zk, zk5050, za = await indicaties(network, "zk5050", "za_a")
    old_view = await specificatie(zk, za, bemiddeling("5151", record=1))
    [(_, _, _)] = await za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND1, "agb": "12345678"}, [old_view])
    moved = await signed(zk, "Bemiddeling", bemiddeling("5151", record=1, to="5050"))
    await ask(zk5050, ciz, IND1, "5050", [moved])  # CIZ learns of the Overdracht
    error = await denied(za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND1, "agb": "12345678"}, [old_view]))
    assert error.rule == "UCIR-0002"
    new_view = await specificatie(zk5050, za, bemiddeling("5050", record=1, bemiddeling_id="0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f"))
    [(record, _, _)] = await za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND1, "agb": "12345678"}, [new_view])
    assert record.record_id == IND1


async def test_the_genuine_paths_still_work(network: Network) -> None:
    ciz, zk, za = await indicaties(network, "za_a")
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    [(_, _, view)] = await za.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "12345678"}, [])
    [(record, _, _)] = await za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "12345678"}, [view])
    assert record.data["bsn"] == BSN0
    [(record, _, _)] = await ask(zk, ciz, IND0, "5151", [])
    assert (await ciz.audit.entries(limit=10_000))[-1].rule == "UCIR-0001"


async def test_the_end_of_a_chain_is_handed_the_earlier_steps_and_presents_them(network: Network) -> None:
    """5151 → 5050 → 5252 through notifications alone: CIZ never saw the first step, yet 5252 can present it."""
    ciz, zk, zk5050, zk5252 = await indicaties(network, "zk5050", "zk5252")
    await put(zk, "Bemiddeling", bemiddeling("5151", to="5050", day="2026-10-01"))  # NIEUWE_OVERDRACHT to 5050
    await network.settle()
    assert [kind for kind, in await zk5050.store.fetchall("SELECT kind FROM evidence")] == ["Bemiddeling"]
    await put(zk5050, "Bemiddeling", bemiddeling("5050", to="5252", day="2026-11-01",
                                                 bemiddeling_id="0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f"))
    await network.settle()
    [row] = [r for r in await zk5252.inbox.list() if r["event_type"] == "NIEUWE_OVERDRACHT_ZORGKANTOOR"]
    assert row["status"] == "fetched"
    held = await zk5252.store.fetchall("SELECT source_org FROM evidence ORDER BY source_org")
    assert held == [("uzovi:5050",), ("uzovi:5151",)]  # its own step, and the earlier one handed along
    assert await ciz.store.fetchall("SELECT * FROM authority_links") == []
    chain = [bytes(s) for s, in await zk5252.store.fetchall("SELECT signed FROM evidence")]
    [(record, _, _)] = await ask(zk5252, ciz, IND1, "5252", chain)
    assert record.record_id == IND1
    assert (await ciz.audit.entries(limit=10_000))[-1].rule == "UCIR-0003"
