"""Who must know: which record changes notify whom, the outbox that delivers, the inbox that receives,
voluntary subscriptions and meldingen."""

from node.notify.events import ID_TYPE_OF_ROLE, Planned, plan
from node.notify.inbox import Inbox
from node.notify.meldingen import Meldingen
from node.notify.outbox import Outbox
from node.notify.subscriptions import Subscriptions

__all__ = ["ID_TYPE_OF_ROLE", "Planned", "plan", "Inbox", "Meldingen", "Outbox", "Subscriptions"]
