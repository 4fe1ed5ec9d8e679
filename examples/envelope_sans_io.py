"""The wire protocol without any I/O: two members sign, seal, verify and answer, given bytes and a clock value.

    python examples/envelope_sans_io.py
"""

from __future__ import annotations

import time

from keys import Identity, TrustStore, issue_certificate
from protocol import Endpoint, Query, QueryResult, RemoteProtocolError

now = int(time.time())
root = Identity.generate()  # the network root; in real life its key stays offline


def member(role: str, identifiers: dict[str, str]) -> Endpoint:
    identity = Identity.generate()
    cert = issue_certificate(root, subject=identity.did, organisation=f"Example {role}", role=role,
                             identifiers=identifiers, not_before=now - 60, expires=now + 86400, issued_at=now)
    return Endpoint(identity, cert, TrustStore([root.did]))


zorgkantoor = member("zorgkantoor", {"uzovi": "5151"})
ciz = member("ciz", {"kvk": "62253778"})

query = Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": "31835d1d-3933-4ffe-9f57-8985f41fae4a", "uzovi": "5151"},
              evidence=(), history=False)
request = zorgkantoor.send(query, to=ciz.did, now=now)
print(f"request: {len(request.data)} bytes of COSE_Sign1, body sealed to CIZ")

incoming = ciz.receive(request.data, now=now)
print(f"CIZ verified a {incoming.envelope.type} from {incoming.sender.organisation} ({incoming.sender.role})")
reply = ciz.reply(incoming, QueryResult(records=()), now=now)
answer = zorgkantoor.receive_reply(reply.data, request, now=now)
print(f"reply bound to the request, signed by {answer.sender.organisation}: {answer.message}")

try:
    ciz.receive(request.data, now=now)
except RemoteProtocolError as error:
    print(f"the same bytes again: refused with code {error.code.value!r} ({error.reason})")
