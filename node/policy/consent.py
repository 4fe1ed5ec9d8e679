"""A client's consent as evidence: it opens what the matrix lets consent open, for the party it names.

A consent is a Toestemming record signed by the client's own node. It holds
when it verifies, its signer is the client whose BSN the query is about (the
BSN commitment in his certificate), it names the requester, the template
asked, the purpose given and this source, it has not ended, and the client
has not withdrawn it here.

A machtiging is a consent of one form: to a person (his own client's node, by
did), for what the client himself may read (his data, his access log), at
every source of his records (``*``), with doel "vertegenwoordiging": his
gemachtigde acts for him, at the sources his chain leads to, which neither
knows in advance.
"""

from __future__ import annotations

from collections.abc import Callable

from keys import Member
from node.policy.evidence import Evidence
from node.store.records import EVERY_SOURCE, MACHTIGING, bsn_key_of, fits, is_machtiging
from protocol.records import RecordVersion

CONSENT_KIND = "Toestemming"
CONSENT_KINDS = frozenset({CONSENT_KIND})


def not_asked_after(record: RecordVersion) -> bool:
    """Evidence not confirmed with its signer when old: a consent naming its sources, whose withdrawal is pushed to
    each, and one that does not fit the schema, which opens nothing. A machtiging names every source, and one his
    chain reaches only after he withdrew it never heard: it is confirmed with his node (at the ``endpoint`` it
    names) as other evidence is with its source."""
    if record.kind != CONSENT_KIND:
        return False
    return not fits(CONSENT_KIND, record.data) or EVERY_SOURCE not in (record.data or {})["bronnen"]


# Whether a member is the client with this BSN, by his certificate's commitment and the key he sent with it.
IsClient = Callable[[Member, str, bytes | None], bool]


def _names(grantee: dict[str, str], requester: Member) -> bool:
    return grantee.get("did") == requester.did or any(
        v in requester.identifier_values(k) for k, v in grantee.items() if k != "did")


def consent_fault(item: Evidence, *, requester: Member, bsn: str, template: str, purpose: str, today: str,
                  source: set[str], is_client: IsClient) -> str | None:
    """Why this piece of evidence is no consent for the request (None: it is one)."""
    data = item.record.data or {}
    if item.record.kind != CONSENT_KIND or item.signer.role != "client":
        return "it is not a client's consent"
    if not fits(CONSENT_KIND, data):  # a client signs what he likes
        return "it is not a well-formed Toestemming"
    if data.get("bsn") != bsn or not is_client(item.signer, bsn, bsn_key_of(data)):
        return "it is not signed by the client the data is about"
    if not _names(data.get("ontvanger", {}), requester):
        return "it is given to another party"
    if template not in data.get("templates", []):
        return f"it does not cover {template}"
    if data.get("doel") != purpose:
        return "it is for another purpose"
    if data.get("geldigTot", "") < today:
        return "it has ended"
    sources = set(data.get("bronnen", []))
    if not source & sources and not (EVERY_SOURCE in sources and is_machtiging(data) and requester.role == "client"):
        return "it does not name this source"
    return None


def machtiging_fault(item: Evidence, *, requester: Member, bsn: str, template: str, today: str, source: set[str],
                     is_client: IsClient) -> str | None:
    """Why this piece of evidence is no machtiging for ``requester`` to read ``template`` of the client (None: it
    is one)."""
    if requester.role != "client":
        return "a gemachtigde is a person, with his own client's node"
    if not is_machtiging(item.record.data or {}):
        return "it is no machtiging"
    return consent_fault(item, requester=requester, bsn=bsn, template=template, purpose=MACHTIGING, today=today,
                         source=source, is_client=is_client)


__all__ = ["consent_fault", "machtiging_fault", "not_asked_after", "CONSENT_KIND", "CONSENT_KINDS"]
