"""The enrolment service's decisions: which request gets a certificate, and which earlier certificate of the same
party it ends.

A replica that lost its disk enrols again under a new key for the same identity (its task slot's AGB code, say);
its predecessor's certificate is then revoked, so that the network drops the stale entry within a few gossip
rounds instead of listing two members with one AGB code until the old announcement expires. Only the token a
party enrolled with may do that: a party certified under another token, or by hand, is refused, so that the
holder of a role's token (the replicas' one names no AGB code) cannot take over a party of that role.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from keys.enrolment import EnrolmentRefused, verify_enrolment_request
from node.errors import UsageError
from node.home import NetworkDir

DEFAULT_VALIDITY = 30 * 24 * 3600


@dataclass(frozen=True)
class Enrolled:
    certificate: bytes
    revocation_list: bytes | None  # the current list (newly signed when a predecessor was revoked)
    revoked: list[str]  # certificate ids this enrolment revoked


class EnrolmentAuthority:
    def __init__(self, network: NetworkDir, *, validity: int = DEFAULT_VALIDITY) -> None:
        self.network = network.require()
        self.root = network.root_did()
        self.validity = validity
        self.used_path = network.path / "enrolment-used.txt"
        self._lock = threading.Lock()  # one enrolment at a time: the issued and used files are read, then appended

    def enrol(self, request: bytes, *, now: int) -> Enrolled:
        """A certificate for the node that signed ``request``, or EnrolmentRefused with the reason."""
        asked = verify_enrolment_request(request, root=self.root, now=now)
        with self._lock:
            token_id = asked.token.token_id.hex()
            if not asked.token.reusable and token_id in self._used():
                raise EnrolmentRefused("this single-use token was used before")
            predecessors = self._predecessors(asked.role, dict(asked.identifiers), asked.subject, token_id)
            try:
                cert, member = self.network.certify(
                    subject=asked.subject, organisation=asked.organisation, role=asked.role,
                    identifiers=dict(asked.identifiers), region=asked.region, vestigingen=asked.vestigingen, now=now,
                    seconds=self.validity, bsn_commitment=asked.bsn_commitment, token=token_id)
            except UsageError as exc:
                raise EnrolmentRefused(str(exc)) from exc
            if not asked.token.reusable:
                with self.used_path.open("a", encoding="ascii") as handle:
                    handle.write(token_id + "\n")
            if predecessors:
                self.network.revoke(predecessors, now=now)
            current = self.network.revocation_path.read_bytes() if self.network.revocation_path.exists() else None
            return Enrolled(cert, current, predecessors)

    def _used(self) -> set[str]:
        if not self.used_path.exists():
            return set()
        return set(self.used_path.read_text(encoding="ascii").split())

    def _predecessors(self, role: str, identifiers: dict[str, str], subject: str, token_id: str) -> list[str]:
        """Certificates issued before to the same party (role and identifiers) for another key, not yet revoked;
        EnrolmentRefused when one of them was not enrolled with this token. A client is never matched: his
        certificate names no identifier but a commitment to his BSN."""
        if not identifiers:
            return []
        revoked = {c.hex() for c in self.network.revoked()}
        earlier = [e for e in self.network.issued()
                   if e.get("role") == role and e.get("ids") == identifiers and e.get("did") != subject
                   and e["cert_id"] not in revoked]
        if any(e.get("token") != token_id for e in earlier):
            raise EnrolmentRefused("this party was enrolled with another token (or certified by hand)")
        return sorted({e["cert_id"] for e in earlier})
