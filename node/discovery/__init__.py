"""Who is out there: the peer table, our signed announcement, bootstrap, gossip, mDNS, and routing a request to a peer."""

from node.discovery.discovery import Discovery
from node.discovery.gossip import Gossiper
from node.discovery.peers import Peer, PeerTable
from node.discovery.routing import Router

__all__ = ["Discovery", "Gossiper", "Peer", "PeerTable", "Router"]
