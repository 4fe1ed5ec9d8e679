"""Who may read what: the authorization matrix as data, evidence verified offline, the decision point."""

from node.policy.evidence import Confirm, Confirmations, Evidence, one_message
from node.policy.matrix import load_matrix
from node.policy.pdp import Decision, Denied, PolicyDecisionPoint, View

__all__ = ["Confirm", "Confirmations", "Evidence", "one_message", "load_matrix", "Decision", "Denied", "PolicyDecisionPoint", "View"]
