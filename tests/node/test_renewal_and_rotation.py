"""Records and evidence outlive the certificate that signed them; a key changes without a restart.

Certificates here live seconds. A source re-signs its stored versions under
its new certificate (renewal, or a new key), holders of its records as
evidence fetch them again, and every record and every piece of evidence
still verifies after the old certificate expired. A revoked key signs
nothing anyone accepts any more.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from node.errors import PeerRefused
from node.service import Node
from protocol.records import RecordVersion, sign_record, verify_record
from tests.node.kit import IND0, Network, put, sample

pytestmark = pytest.mark.asyncio


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def start(network: Network, name: str, **config: Any) -> Node:
    home = network.home(name)
    settings = home.config()
    for key, value in config.items():
        setattr(settings, key, value)
    home.save_config(settings)
    node = Node(home, mdns=False, gossip_interval=0)
    await node.start()
    network.nodes[name] = node
    for other in network.nodes.values():
        for peer in network.nodes.values():
            if peer is not other and other.peers.get(peer.identity.did) is None:
                await other.learn_from(peer.url, source="bootstrap")
    return node


async def three(network: Network) -> tuple[Node, Node, Node]:
    ciz = await start(network, "ciz")
    zk = await start(network, "zk5151", certificate_check_interval=3600)
    za = await start(network, "za_a", evidence_refresh_interval=0.2, evidence_refresh_margin=3)
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))  # NIEUWE_BEMIDDELINGSPECIFICATIE to the provider
    await network.settle()
    assert [k for k, in await za.store.fetchall("SELECT kind FROM evidence")] == ["Bemiddelingspecificatie"]
    return ciz, zk, za


async def stored_versions_verify(node: Node, trust: Any, now: int) -> bool:
    """Every stored version, as the node serves it from its row (signature and certificate stored, nothing cached)."""
    rows = await node.store.fetchall("SELECT DISTINCT kind, record_id FROM records")
    node.registers._current.clear()
    signed = [v.signed for kind, record_id in rows for v in await node.registers.history(kind, record_id)]
    try:
        return all(verify_record(s, trust, now)[1].did == node.identity.did for s in signed) and bool(rows)
    except Exception:  # noqa: BLE001 - not yet
        return False


async def held_evidence(node: Node) -> list[bytes]:
    return [bytes(s) for s, in await node.store.fetchall("SELECT signed FROM evidence")]


async def provider_reads_the_indicatie(za: Node, ciz: Node) -> list[Any]:
    return await za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "12345678"}, await held_evidence(za))


async def test_a_renewed_certificate_keeps_records_and_evidence_verifiable_after_the_old_one_expired(network: Network) -> None:
    ciz, zk, za = await three(network)
    short = network.net.issue(zk.home, now=int(time.time()), valid_for=3)  # the certificate in use lives 3 s
    assert await zk.reload_certificate()
    await until(lambda: stored_versions_verify(zk, ciz.trust, ciz.now()))
    await until(lambda: _evidence_signed_under(za, short.cert_id))  # the holder fetched it again
    original = await held_evidence(za)
    network.net.issue(zk.home, now=int(time.time()), valid_for=3600)  # renewed before it ends
    assert await zk.reload_certificate()
    assert not await zk.reload_certificate()  # nothing new
    await asyncio.sleep(max(0.0, short.expires + 1 - time.time()))  # the short certificate has expired now
    with pytest.raises(Exception, match="expired"):
        verify_record(original[0], ciz.trust, ciz.now())  # what the holder had would no longer do
    await until(lambda: stored_versions_verify(zk, ciz.trust, ciz.now()))
    await until(lambda: _evidence_verifies(za, ciz))
    [(record, _, _)] = await provider_reads_the_indicatie(za, ciz)
    assert record.record_id == IND0


async def _evidence_signed_under(node: Node, cert_id: bytes) -> bool:
    return all(verify_record(e, node.trust, node.now())[1].cert_id == cert_id for e in await held_evidence(node))


async def _evidence_verifies(node: Node, by: Node) -> bool:
    try:
        return all(verify_record(e, by.trust, by.now()) for e in await held_evidence(node))
    except Exception:  # noqa: BLE001 - not yet
        return False


async def test_a_new_key_without_a_restart_and_a_compromised_old_key_signs_nothing_accepted(network: Network) -> None:
    ciz, zk, za = await three(network)
    zk5050 = await start(network, "zk5050")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 1))
    old_identity, old_certificate, old_cert_id = zk.identity, zk.certificate, zk.member.cert_id
    zk.home.rotate_key()
    member = network.net.issue(zk.home, now=int(time.time()), valid_for=3600)
    assert member.supersedes == old_cert_id and member.did != old_identity.did
    assert await zk.reload_certificate()
    assert zk.identity.did == member.did == zk.home.identity().did  # the old key file is gone
    assert not zk.home.next_key_path.exists() and not zk.home.next_certificate_path.exists()

    async def peers_know_the_new_key() -> bool:
        return all(n.peers.get(member.did) is not None and n.peers.get(old_identity.did) is None for n in (ciz, za))

    await until(peers_know_the_new_key)
    await until(lambda: stored_versions_verify(zk, ciz.trust, ciz.now()))
    await until(lambda: _evidence_signed_under(za, member.cert_id))
    [(record, _, _)] = await provider_reads_the_indicatie(za, ciz)
    assert record.record_id == IND0
    changed = sample("bemiddelingen", 0)
    changed["bemiddelingspecificatie"][0]["percentage"] = 80
    await put(zk, "Bemiddeling", changed)  # a notification under the new key
    await network.settle()
    [row] = [r for r in await za.inbox.list() if r["event_type"].startswith("GEWIJZIGDE")]
    assert (row["status"], row["sender_did"]) == ("fetched", member.did)

    # The old key turns out to be stolen: the root revokes its certificate.
    _, data = network.net.revoke([old_cert_id.hex()], now=ciz.now())
    assert ciz.adopt_revocation_list(data)
    forged_data = sample("bemiddelingen", 1) | {"overdracht": {
        "overdrachtID": "4b8e2f6a-9c1d-4e3f-8a5b-7c9d1e2f3a4b", "verantwoordelijkZorgkantoor": "5050",
        "overdrachtDatum": "2026-10-01", "verhuisDatum": "2026-09-15", "overdrachtspecificatie": [{"leveringsstatus": "1"}]}}
    forged = sign_record(old_identity, old_certificate, RecordVersion(
        "Bemiddeling", forged_data["bemiddelingID"], 9, old_identity.did, ciz.now(), False, forged_data))
    with pytest.raises(PeerRefused) as info:
        await zk5050.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": forged_data["wlzIndicatieID"], "uzovi": "5050"},
                                [forged])
    assert (info.value.code, info.value.rule) == ("denied", "UCIR-0003")
    assert await stored_versions_verify(zk, ciz.trust, ciz.now())  # what the source signed again still stands
    [(record, _, _)] = await provider_reads_the_indicatie(za, ciz)
    assert record.record_id == IND0


async def test_a_key_certified_while_the_node_was_down_is_taken_up_at_start(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await zk.stop()
    network.nodes.pop("zk5151")
    zk.home.rotate_key()
    member = network.net.issue(zk.home, now=int(time.time()), valid_for=3600)
    again = Node(zk.home, mdns=False, gossip_interval=0)
    await again.start()
    network.nodes["zk5151"] = again
    assert again.identity.did == member.did and not zk.home.next_key_path.exists()
    assert await again.query_peer(ciz.url, "RECORD-STATUS", {"kind": "WlzIndicatie", "id": IND0}, []) == []


async def test_the_running_node_takes_up_a_certificate_dropped_in_its_home(network: Network) -> None:
    ciz = await start(network, "ciz", certificate_check_interval=0.1)
    member = network.net.issue(ciz.home, now=int(time.time()), valid_for=3600)

    async def switched() -> bool:  # the node takes the new identity first, then writes the switch's audit entry
        entries = await ciz.audit.entries(limit=100)
        return ciz.member.cert_id == member.cert_id and bool(entries) and entries[-1].event == "certificate.switch"

    await until(switched)
    assert (await ciz.audit.verify())[0]  # the chain head is signed under the new certificate's key


async def test_held_evidence_is_checked_a_page_at_a_time_each_piece_once(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder of a whole region's records checks its evidence in pages, not by reading it all at once: every piece
    is still checked, once, and what is stale is fetched again."""
    import node.notify.inbox as inbox_module
    ciz, zk, za = await three(network)
    [(kind, signed, rest)] = await za.store.fetchall("SELECT kind, signed, wlzIndicatieID FROM evidence")
    await za.store.write([("INSERT INTO evidence (kind, record_id, wlzIndicatieID, signed) VALUES (?, ?, ?, ?)",
                           (kind, f"copy-{i}", rest, signed), False) for i in range(6)])
    monkeypatch.setattr(inbox_module, "EVIDENCE_PAGE", 2)
    reads: list[str] = []
    fetchall = za.store.fetchall

    async def counting(sql: str, params: Any = ()) -> Any:
        if "FROM evidence" in sql:
            reads.append(sql)
        return await fetchall(sql, params)

    monkeypatch.setattr(za.store, "fetchall", counting)
    seen: list[bytes] = []
    monkeypatch.setattr(za.inbox, "_stale", lambda signed, source_org, then: seen.append(signed) or False)
    assert await za.inbox.refresh_evidence(now=za.now(), margin=3) == 0
    assert len(seen) == 7 and len(reads) == 4  # 7 pieces in pages of 2: 2, 2, 2, 1
