"""A client's node stays private: no announcement, peer table, log line or mDNS record names him."""

from __future__ import annotations

import logging

import pytest

from node.service import Node
from tests.node.kit import BSN0, Network, put, sample

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
