"""A client's node stays private: no announcement, peer table, log line or mDNS record names him."""

from __future__ import annotations

import logging
import time

import pytest

from node.errors import ConfigError, UsageError
from node.home import NodeHome
from node.service import Node
from tests.node.kit import BSN0, IND0, Network, Tap, put, sample

pytestmark = pytest.mark.asyncio


async def test_no_peer_table_announcement_log_or_mdns_record_names_the_client(network: Network, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    ciz, zk = await network.start("ciz", "zk5151")
    client_home = network.home("client")
    client = Node(client_home, bootstrap=[ciz.url], gossip_interval=0.2, mdns=True, mdns_interfaces=["127.0.0.1"])
    await client.start()
    network.nodes["client"] = client
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await client.client_view.overview()
    await client.client_view.access_log()
    await client.client_view.follow(endpoint=client.url, allowed=client.subscriptions.matrix["allowed"])
    await client.gossiper.round()
    await network.settle()
    assert client.peers.get(ciz.identity.did) is not None  # he learns the network ...
    for node in (ciz, zk):  # ... the network does not learn him
        assert node.peers.get(client.identity.did) is None
        stored = await node.store.fetchall("SELECT organisation, announcement FROM peers")
        assert all("Client" not in org and b"Client Jansen" not in ann for org, ann in stored)
        assert client.identity.did not in node.gossiper.table  # nothing to gossip on either
    assert client.identity.did not in client.gossiper.table  # his own table does not offer him
    assert client.mdns is not None and client.mdns._info is None  # browses, announces nothing
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Jansen" not in text and BSN0 not in text


async def test_nothing_on_the_wire_between_him_and_a_source_names_him(network: Network) -> None:
    """Attack: listen on the path between a client's node and a source. His certificate rides in the clear in
    his requests, and it carried the name his node was given at init ("Client Jansen"), for anyone on the path
    (and for the enrolment service). Now a client's home takes no name, one made before keeps its name to itself,
    and his certificate says only "client"; his BSN, name and birth date travel sealed."""
    with pytest.raises(UsageError, match="names no one"):
        NodeHome.create(network.root / "named", role="client", name="Client Jansen", identifiers={"bsn": BSN0},
                        region="5151")
    assert not (network.root / "named").exists()
    [ciz] = await network.start("ciz")
    indicatie = sample("wlzIndicaties", 0)
    await put(ciz, "WlzIndicatie", indicatie)
    home = network.home("client")
    config = home.config()
    config.name = "Client Jansen"  # a home made before the rule, as `iwlz init --name` made it
    home.save_config(config)
    assert network.net.issue(home, now=int(time.time()), days=30).organisation == "client"
    client = Node(home, bootstrap=[ciz.url], mdns=False, gossip_interval=0)
    await client.start()
    network.nodes["client"] = client
    tap = Tap(ciz.port)
    url = await tap.start()
    try:
        records = await client.query_peer(url, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [])
        log = await client.access_log(url, BSN0)
    finally:
        await tap.stop()
    assert [r.record_id for r, _, _ in records] == [IND0]
    assert {e["actor_org"] for e in log} >= {"client"}
    personal = (b"Jansen", BSN0.encode(), indicatie["client"]["geboorteDatum"].encode(), b"1941")
    assert len(tap.seen) > 2000 and [p for p in personal if p in tap.seen] == []


async def test_a_client_node_whose_certificate_names_him_says_so_without_repeating_it(network: Network) -> None:
    """A certificate issued before the rule names him in every message: his node does not start with it, and
    says what to do without writing his name into a log or onto a screen."""
    from keys import cbor, cose

    home = network.home("client")
    claims = cbor.decode(cose.parse_sign1(home.certificate()).payload)
    root = network.net.root()
    named = cose.sign1(root, cbor.encode(dict(claims, org="Client Jansen")), {cose.KID: root.did.encode("ascii")})
    home.install_certificate(named, root.did)
    with pytest.raises(ConfigError) as info:
        home.member()
    assert "names no one" in str(info.value) and "iwlz cert issue" in str(info.value)
    assert "Jansen" not in str(info.value)
    with pytest.raises(ConfigError) as info:  # what `iwlz run` says
        await Node(home, mdns=False, gossip_interval=0).start()
    assert "names no one" in str(info.value) and "iwlz cert issue" in str(info.value)
    assert "Jansen" not in str(info.value)


async def test_his_node_gossips_with_its_bootstrap_peers_only(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each exchange hands the peer his certificate, whose BSN commitment a member can test a BSN it knows against
    (one argon2id guess). His node gossiped with peers drawn at random, three a round, every round: over a day,
    most of the network. It learns the network from its bootstrap peers, which hold all of it, and gossips with
    no one else while it reaches one of them."""
    from protocol import PeerExchange

    members = await network.start("ciz", "zk5151", "zk5050", "za_a", "za_b", "cak")
    heard: dict[str, set[str]] = {}
    for node in members:
        handler = node.dispatcher._handlers[PeerExchange]

        async def recording(incoming, now, handler=handler, node=node):  # type: ignore[no-untyped-def]
            heard.setdefault(node.member.organisation, set()).add(incoming.sender.did)
            return await handler(incoming, now)

        monkeypatch.setitem(node.dispatcher._handlers, PeerExchange, recording)
    client = Node(network.home("client"), bootstrap=[members[0].url], mdns=False, gossip_interval=0)
    await client.start()
    network.nodes["client"] = client
    for _ in range(12):
        await client.gossiper.round()
    assert {p.did for p in client.peers.all()} >= {m.identity.did for m in members}  # he learned the network
    assert {org for org, dids in heard.items() if client.identity.did in dids} == {"CIZ"}


async def test_a_member_that_holds_his_certificate_cannot_test_a_bsn_against_it(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack, by a provider of his region that he asks for its care offer (or a bootstrap peer, or the path): it
    holds his certificate, and with an argon2id commitment one guess (~35 ms) told whether a BSN it knows is his.
    The commitment is keyed now, and the key goes, sealed, only with what names his BSN, to the source that learns
    the BSN from that same message."""
    from protocol import Query

    ciz, za_b = await network.start("ciz", "za_b")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    seen: list[tuple[str, Query, object]] = []
    for node in (ciz, za_b):
        handler = node.dispatcher._handlers[Query]

        async def recording(incoming, now, handler=handler, node=node):  # type: ignore[no-untyped-def]
            seen.append((node.member.organisation, incoming.message, incoming.sender))
            return await handler(incoming, now)

        monkeypatch.setitem(node.dispatcher._handlers, Query, recording)
    [client] = await network.start("client")
    view = await client.client_view.overview()
    assert [i["id"] for i in view["indicaties"]] == [IND0]
    [(_, offer_query, him)] = [(o, q, s) for o, q, s in seen if o == "Thuiszorg Het Anker"]
    assert offer_query.template == "ZORGAANBOD" and offer_query.bsn_key is None
    assert him.bsn_commitment.alg == "blake2b-keyed" and not him.matches_bsn(BSN0)  # the guess fails
    [(_, own_query, _)] = [(o, q, s) for o, q, s in seen if o == "CIZ" and q.template == "CLIENT-EIGEN-GEGEVENS"]
    assert own_query.bsn_key is not None and him.matches_bsn(BSN0, own_query.bsn_key)
