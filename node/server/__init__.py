"""The peer listener: the HTTP app, dispatch of verified messages to their handlers, and the query handlers."""

from node.server.app import MessageDesk, PeerApp
from node.server.dispatch import Dispatcher, load_replay_guard
from node.server.queries import QueryHandlers

__all__ = ["MessageDesk", "PeerApp", "Dispatcher", "load_replay_guard", "QueryHandlers"]
