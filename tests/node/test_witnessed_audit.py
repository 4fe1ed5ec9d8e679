"""An audit log its owner cannot rewrite unseen: heads witnessed by peers, a cut chain refused at start,
and a check that never reports a broken chain that is not."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from keys import Identity
from node.errors import PeerRefused, StorageError
from node.service import Node
from node.store.audit_check import GENESIS, entry_fields, entry_hash
from node.store.offline import read_audit
from protocol import AccessLogRequest, AuditHead, ErrorCode, RemoteProtocolError, Witness, WitnessQuery
from protocol.witness import head_bytes
from tests.node.kit import BSN0, IND0, Network, put, sample

pytestmark = pytest.mark.asyncio


async def busy_ciz(network: Network) -> tuple[Node, Node, Node, Node]:
    ciz, zk, za, cak = await network.start("ciz", "zk5151", "za_a", "cak")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    for _ in range(4):
        await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    await network.settle()
    return ciz, zk, za, cak


def signed_head(identity: Identity, seq: int, digest: bytes) -> AuditHead:
    """An audit head as ``identity`` signs one (the node, its thief, or another member)."""
    return AuditHead(seq=seq, hash=digest, signature=identity.sign(head_bytes(seq, digest)))


def rechain_without(path: Path, identity: Identity, seqs: set[int]) -> None:
    """What an operator holding node.key could do: drop entries, number and chain the rest again, sign a new head."""
    with closing(sqlite3.connect(path)) as db, db:
        rows = [r for r in db.execute("SELECT * FROM audit ORDER BY seq") if r[0] not in seqs]
        requests = dict(db.execute("SELECT seq, request FROM audit_requests"))
        db.execute("DELETE FROM audit")
        db.execute("DELETE FROM audit_checkpoint")
        db.execute("DELETE FROM audit_requests")
        prev = GENESIS
        for n, row in enumerate(rows, start=1):
            fields = (n, *row[1:13])
            digest = entry_hash(prev, entry_fields((*fields, None, row[14], row[15])))
            db.execute(f"INSERT INTO audit VALUES ({', '.join('?' * 16)})", (*fields, digest, row[14], row[15]))
            if row[0] in requests:  # the signed requests kept move with their entries
                db.execute("INSERT INTO audit_requests VALUES (?, ?)", (n, requests[row[0]]))
            prev = digest
        db.execute("UPDATE audit_head SET seq = ?, hash = ?, signature = ? WHERE id = 1",
                   (len(rows), prev, identity.sign(head_bytes(len(rows), prev))))


async def test_deleting_and_re_signing_with_the_node_key_is_caught_by_the_witnesses(network: Network) -> None:
    ciz, zk, za, cak = await busy_ciz(network)
    assert await ciz.witnessing.hand_head() == 3
    held = {row[0] for row in await zk.store.fetchall("SELECT member FROM witnessed")}
    assert held == {"kvk:62253778"}
    assert (await ciz.witnessing.check_against_witnesses())[0]

    await ciz.stop()
    network.nodes.pop("ciz")
    rechain_without(ciz.home.database_path, ciz.home.identity(), {2, 3})
    intact, _, detail, _ = await read_audit(ciz.home, verify=True, limit=0)
    assert intact, detail  # on its own, the rewritten chain looks whole: the key signed it

    again = Node(ciz.home, mdns=False, gossip_interval=0)
    await again.start()
    network.nodes["ciz"] = again
    for node in (zk, za, cak):
        await node.learn_from(again.url, source="bootstrap")
    intact, said = await again.witnessing.check_against_witnesses()
    assert not intact and "no longer has" in said
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {again.home.admin_token()}"}
        async with http.get(f"{again.admin_url}/admin/v1/audit/verify?witnesses=1", headers=headers) as r:
            result = await r.json()
    assert result["intact"] is False and "cut" in result["witnesses"]
    # The witnesses refuse the shorter head it now hands them.
    assert await again.witnessing.hand_head() == 0
    assert (await zk.store.fetchone("SELECT seq FROM witnessed"))[0] > (await again.audit.check()).entries


async def test_a_witness_that_makes_up_a_head_is_told_from_one_that_holds_this_nodes_signature(network: Network) -> None:
    """A witness can claim it pinned anything. The check said "the chain was rewritten" for a head no key of the
    node ever signed, as for one it did: an operator could not tell a lying witness from evidence against himself
    (nor show anyone which it was). A head is now held to the node's keys: one it signed is proof; one it never
    signed fails the check all the same (it cannot be told from a head of a key the node no longer knows), named
    for what it is."""
    ciz, zk, za, cak = await busy_ciz(network)
    assert await ciz.witnessing.hand_head() == 3
    head = ciz.audit.head()
    made_up = signed_head(Identity.generate(), head.seq - 1, b"\x07" * 32)  # signed, but by a key that is not CIZ's
    await zk.store.write([("INSERT INTO witness_pins (member, seq, hash, signature, at) VALUES (?, ?, ?, ?, ?)",
                           ("kvk:62253778", made_up.seq, made_up.hash, made_up.signature, 1), False)])
    intact, said = await ciz.witnessing.check_against_witnesses()
    assert not intact and f"entry {made_up.seq} with another hash" in said, said
    assert "not signed by any key of this node" in said and "rewritten" not in said, said


async def test_a_rewritten_chain_padded_past_the_witnessed_entry_is_caught_too(network: Network) -> None:
    """The operator drops entries, then writes more until his chain is longer than what the witnesses hold, and
    hands them its head: a witness cannot tell that head from an honest one, and once held it was the only one."""
    ciz, zk, za, cak = await busy_ciz(network)
    assert await ciz.witnessing.hand_head() == 3
    witnessed = ciz.audit.head()
    await ciz.stop()
    network.nodes.pop("ciz")
    rechain_without(ciz.home.database_path, ciz.home.identity(), {2, 3})
    again = Node(ciz.home, mdns=False, gossip_interval=0)
    await again.start()
    network.nodes["ciz"] = again
    for node in (zk, za, cak):
        await node.learn_from(again.url, source="bootstrap")
    while again.audit.head().seq <= witnessed.seq:  # reads of his own records: entries nobody else sees made
        await read_twice(again)
    assert await again.witnessing.hand_head() == 3  # taken: it goes forward, and only the node's key signs heads
    intact, said = await again.witnessing.check_against_witnesses()
    assert not intact and f"entry {witnessed.seq} with another hash" in said, said
    assert "the chain was rewritten" in said and "this node's own signature" in said, said
    # What the witness kept of the first chain does not go when the second is handed on.
    await read_twice(again)
    assert await again.witnessing.hand_head() == 3
    assert not (await again.witnessing.check_against_witnesses())[0]


async def read_twice(node: Node) -> None:
    """Two audit entries about the client: the head moves."""
    for _ in range(2):
        await node.store.write(node.audit.shown(await node.registers.find("bsn", BSN0), actor=node.actor,
                                                now=node.now(), event="record.read"))


async def test_a_witness_pins_a_head_at_most_once_an_interval_and_a_check_reads_every_page(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    ciz, zk, za, cak = await busy_ciz(network)
    pins = "SELECT count(*) FROM witness_pins WHERE member = 'kvk:62253778'"
    for _ in range(3):
        assert await ciz.witnessing.hand_head() == 3
        await read_twice(ciz)
    assert (await zk.store.fetchone(pins))[0] == 1  # three heads taken within ten minutes, the first kept for good
    zk.witnessing.pin_every = 0
    for _ in range(4):
        assert await ciz.witnessing.hand_head() == 3
        await read_twice(ciz)
    assert (await zk.store.fetchone(pins))[0] == 5
    monkeypatch.setattr("node.witness.witnessing.MAX_PINS", 2)  # pages of two: the check asks three times
    held = {h.organisation: h for h in await ciz.witnessing.ask_witnesses()}
    assert held[zk.member.organisation].pinned == 5
    assert (await ciz.witnessing.check_against_witnesses())[0]


async def test_a_party_that_hands_its_head_to_every_node_is_pinned_only_where_it_would_choose_its_witnesses(
        network: Network) -> None:
    """Pins are kept for good: a party handing its head to all the nodes it knows would have each keep one every
    interval for it. A node pins for a party that would choose it (with one place to spare for a peer table that
    differs by one), and holds only the latest head for any other."""
    nodes = await network.start("ciz", "cak", "zk5151", "zk5050", "zk5252", "za_a", "za_b")
    ciz, others = nodes[0], nodes[1:]
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    for node in others:
        await ciz.send_to_peer(node.url, Witness(head=ciz.audit.head()))
    chosen = {p.did for p in ciz.witnessing.witnesses()}
    pinned = {node.identity.did for node in others
              if (await node.store.fetchone("SELECT count(*) FROM witness_pins"))[0]}
    held = {node.identity.did for node in others if await node.store.fetchone("SELECT seq FROM witnessed")}
    assert held == {node.identity.did for node in others}  # every one holds the latest, as before
    assert chosen <= pinned and len(pinned) == len(chosen) + 1


async def test_a_head_a_thief_signed_far_ahead_gives_way_once_the_stolen_key_is_revoked(network: Network) -> None:
    """With a stolen key the thief hands a witness a head far ahead of the chain: the node's own heads then go back
    from it and were refused for good, also under its new key after the root revoked the stolen one."""
    ciz, zk, za, cak = await busy_ciz(network)
    assert await ciz.witnessing.hand_head() == 3
    far = signed_head(ciz.identity, 2**40, b"\x09" * 32)
    await ciz.send_to_peer(zk.url, Witness(head=far))  # what the thief sends, with the node's key and certificate
    await read_twice(ciz)
    assert await ciz.witnessing.hand_head() == 2  # zk: the head goes back from the thief's
    stolen = ciz.member.cert_id
    ciz.home.rotate_key()
    network.net.issue(ciz.home, now=ciz.now(), valid_for=3600)
    assert await ciz.reload_certificate()
    _, data = network.net.revoke([stolen.hex()], now=ciz.now())
    for node in (ciz, zk, za, cak):
        node.adopt_revocation_list(data)
    await read_twice(ciz)
    assert await ciz.witnessing.hand_head() == 3
    assert await zk.store.fetchone("SELECT seq, hash FROM witnessed") == (ciz.audit.head().seq, ciz.audit.head().hash)
    # A head under a certificate that is not revoked still may not go back.
    back = signed_head(ciz.identity, 1, b"\x01" * 32)
    with pytest.raises(PeerRefused, match="conflict"):
        await ciz.send_to_peer(zk.url, Witness(head=back))


async def test_a_check_that_reaches_none_of_the_witnesses_holding_receipts_does_not_pass(network: Network) -> None:
    """Witnesses that gave receipts and now cannot be asked (stopped, or kept out of the peer table by whoever runs
    the check) confirm nothing: before, "0 of 3" passed as intact."""
    ciz, zk, za, cak = await busy_ciz(network)
    assert await ciz.witnessing.hand_head() == 3
    assert (await ciz.witnessing.check_against_witnesses())[0]
    for node in (zk, za, cak):
        await node.stop()
        network.nodes.pop(next(name for name, n in network.nodes.items() if n is node))
    intact, said = await ciz.witnessing.check_against_witnesses()
    assert not intact and "none of the 3 witnesses that gave receipts could be asked" in said, said


async def test_no_member_learns_of_a_client_by_witnessing_his_node(network: Network) -> None:
    """A client's node handed its head to three members, the first by a hash among all: each kept his did and
    took his certificate, whose BSN commitment it could guess at (argon2id, ~16 ms a guess over the ~9·10^7
    numbers that pass the 11-proef: weeks of one core, days of a few), and so learned that someone it can name is
    a Wlz client, with no business with him. His node's log is his own (no one else reads it): it hands its head
    to no witness, and a witness keeps nothing of a client's, also when an older node sends it one."""
    ciz, zk, za, client = await network.start("ciz", "zk5151", "za_a", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await client.client_view.grant(to="agb:12345678", templates=["GEGEVENS-MET-TOESTEMMING"], purpose="zorg",
                                   until="2099-12-31", sources=["kvk:62253778"])  # his log moves
    assert client.audit.head().seq > 0 and client.peers.get(zk.identity.did) is not None
    assert client.witnessing.witnesses() == [] and await client.witnessing.hand_head() == 0
    for seq in (5, 6):
        with pytest.raises(PeerRefused) as info:
            await client.send_to_peer(zk.url, Witness(head=signed_head(client.identity, seq, bytes([seq]) * 32)))
        assert (info.value.code, info.value.rule) == ("denied", "WITNESS-CLIENT")
    for node in (ciz, zk, za):
        assert await node.store.fetchone("SELECT count(*) FROM witnessed WHERE did = ?", (client.identity.did,)) == (0,)
    assert await zk.store.fetchone("SELECT count(*) FROM witness_pins") == (0,)
    intact, said = await client.witnessing.check_against_witnesses()
    assert intact and "a client's node hands its audit head to no witness" in said, said


async def test_what_a_witness_kept_of_clients_before_goes_at_the_upgrade() -> None:
    """Schema 19: the heads (latest and pinned) a witness kept for clients' nodes go; a party's stay."""
    from node.store.schema import MIGRATIONS
    with closing(sqlite3.connect(":memory:")) as db:
        for script in MIGRATIONS[:18]:
            db.executescript(script)
        for member in ("did:key:z6MkClient", "uzovi:5151"):
            db.execute("INSERT INTO witnessed (member, did, seq, hash, signature, at, cert) VALUES (?, ?, 7, ?, ?, 1, NULL)",
                       (member, "did:key:z6MkX", b"h" * 32, b"s" * 64))
            db.execute("INSERT INTO witness_pins (member, seq, hash, signature, at) VALUES (?, 3, ?, ?, 1)",
                       (member, b"h" * 32, b"s" * 64))
        db.executescript(MIGRATIONS[18])
        assert db.execute("SELECT member FROM witnessed").fetchall() == [("uzovi:5151",)]
        assert db.execute("SELECT member FROM witness_pins").fetchall() == [("uzovi:5151",)]


async def test_a_witness_from_before_pinned_heads_is_still_asked_for_its_latest(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    ciz, zk, za, cak = await busy_ciz(network)
    assert await ciz.witnessing.hand_head() == 3
    answer = zk.witnessing._on_query

    async def old_witness(incoming, now):  # an older node refuses the field it does not know
        if incoming.message.since is not None:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "WitnessQuery: unknown keys")
        return await answer(incoming, now)

    zk.dispatcher._handlers[WitnessQuery] = old_witness
    held = {h.organisation: h for h in await ciz.witnessing.ask_witnesses()}
    old = held[zk.member.organisation]
    assert old.head == ciz.audit.head() and old.pinned == 0 and old.error is None
    assert held[za.member.organisation].pinned  # the others pinned it


async def test_a_rewritten_entry_at_the_witnessed_number_is_caught_too(network: Network) -> None:
    ciz, zk, za, cak = await busy_ciz(network)
    await ciz.witnessing.hand_head()
    last = ciz.audit.head().seq
    await ciz.stop()
    network.nodes.pop("ciz")
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:  # change an entry, keep the length: the hashes change
        db.execute("UPDATE audit SET result = 'denied' WHERE seq = 2")
    rechain_without(ciz.home.database_path, ciz.home.identity(), set())
    again = Node(ciz.home, mdns=False, gossip_interval=0)
    await again.start()
    network.nodes["ciz"] = again
    assert again.audit.head().seq == last
    intact, said = await again.witnessing.check_against_witnesses()
    assert not intact and "another hash" in said


async def test_a_node_refuses_to_extend_a_chain_that_was_cut(network: Network) -> None:
    ciz, zk, za, cak = await busy_ciz(network)
    await ciz.stop()
    network.nodes.pop("ciz")
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        db.execute("DELETE FROM audit WHERE seq > (SELECT max(seq) - 2 FROM audit)")
        before = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    again = Node(ciz.home, mdns=False, gossip_interval=0)
    with pytest.raises(StorageError, match="was cut"):
        await again.start()
    await again.store.close()
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == before  # nothing was written


async def test_a_witness_refuses_a_head_that_goes_back_or_forks(network: Network) -> None:
    ciz, zk, za, cak = await busy_ciz(network)
    head = ciz.audit.head()
    await ciz.witnessing.hand_head()
    back = signed_head(ciz.identity, head.seq - 1, b"\x01" * 32)
    fork = signed_head(ciz.identity, head.seq, b"\x02" * 32)
    forged = signed_head(zk.identity, head.seq + 5, b"\x03" * 32)
    assert zk.identity.did in {p.did for p in ciz.witnessing.witnesses()}
    for bad, code in ((back, "conflict"), (fork, "conflict"), (forged, "bad-signature")):
        with pytest.raises(PeerRefused, match=code):
            await ciz.send_to_peer(zk.url, Witness(head=bad))
    stored = await zk.store.fetchone("SELECT seq, hash FROM witnessed")
    assert stored == (head.seq, head.hash)


async def test_a_client_gets_the_sources_head_with_his_access_log(network: Network) -> None:
    ciz, zk, za, cak = await busy_ciz(network)
    client = (await network.start("client"))[0]
    reply = await client.send_to_peer(ciz.url, AccessLogRequest(bsn=BSN0, since=0))
    head = reply.message.head
    assert head is not None and head.seq >= 5
    from protocol.witness import head_is_signed_by

    assert head_is_signed_by(head, ciz.identity.did)


async def test_checks_during_concurrent_writes_never_report_a_broken_chain(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    records = [sample("wlzIndicaties", i % 3) for i in range(3)]

    async def writer(n: int) -> None:
        for i in range(30):
            data = dict(records[(n + i) % 3])
            data["besluitnummer"] = f"B-{n}-{i}"
            await ciz.registers.put("WlzIndicatie", data, actor=ciz.actor, now=ciz.now())

    async def checker() -> list[tuple[bool, int, str]]:
        results = []
        for _ in range(20):
            results.append(await ciz.audit.verify())
            await asyncio.sleep(0)
        return results

    *_, checks = await asyncio.gather(*(writer(n) for n in range(4)), checker())
    assert all(intact for intact, _, _ in checks), [d for ok, _, d in checks if not ok]
    await network.settle()  # the notifications the writes caused are delivered and audited too
    final = await ciz.audit.verify(full=True)
    assert final[0] and final[1] == ciz.audit.head().seq


async def test_an_incremental_check_hashes_only_the_new_entries(network: Network) -> None:
    ciz, zk, za, cak = await busy_ciz(network)
    first = await ciz.audit.check()
    assert first.intact and first.checked == first.entries  # no checkpoint yet: everything
    _, at_checkpoint, _ = await ciz.audit.verify()  # leaves a checkpoint
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 1))
    await network.settle()
    later = await ciz.audit.check()
    assert later.intact and later.checked == later.entries - at_checkpoint
    assert "new since the checkpoint" in later.detail
    digest = hashlib.sha256(b"x").digest()
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:  # a forged checkpoint is ignored: full walk again
        db.execute("UPDATE audit_checkpoint SET hash = ?", (digest,))
    forged = await ciz.audit.check()
    assert forged.intact and forged.checked == forged.entries
