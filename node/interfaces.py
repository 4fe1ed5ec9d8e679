"""The narrow interfaces that parts of a node are given instead of the whole node."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from node.store import Statement
from protocol import Incoming, Message

# A handler for one message type: the reply and the writes that must commit before it leaves.
Handler = Callable[[Incoming, int], Awaitable[tuple[Message, list[Statement]]]]
Handlers = dict[type[Message], Handler]


class Requester(Protocol):
    """Sends a signed request to a peer and returns its verified reply (node.client.PeerClient)."""

    async def request(self, base_url: str, message: Message, *, to: str, trace_id: str | None = None) -> Incoming: ...


__all__ = ["Handler", "Handlers", "Requester"]
