"""Who must know: which record changes notify whom, the outbox that delivers, the inbox that receives,
voluntary subscriptions and meldingen."""

from node.notify.events import ID_TYPE_OF_ROLE, Planned, plan
from node.notify.inbox import Inbox
from node.notify.meldingen import MeldingenSent
from node.notify.outbox import Outbox
from node.notify.subscriptions import Subscriptions

__all__ = ["ID_TYPE_OF_ROLE", "Planned", "plan", "Inbox", "MeldingenSent", "Outbox", "Subscriptions"]
