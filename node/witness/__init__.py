"""Audit heads witnessed by others: a node hands its signed head to a few peers, keeps their receipts, keeps the
heads others hand it, and checks its own chain against what its witnesses hold."""

from node.witness.witnessing import Witnessing, member_key

__all__ = ["Witnessing", "member_key"]
