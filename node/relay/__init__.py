"""Every core: worker processes that answer queries on the node's port beside the process that owns writes
(docs/DECISIONS.md, "Every core"). The owner side is WriterDesk and Workers; the worker side is PrimaryLink."""

from node.relay.desk import WriterDesk
from node.relay.link import PrimaryLink
from node.relay.supervisor import Workers

__all__ = ["WriterDesk", "PrimaryLink", "Workers"]
