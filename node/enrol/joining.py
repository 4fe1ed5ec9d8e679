"""A node's side of enrolment: sign a request with its own key, present the token, keep the certificate.

The token names the network root that signed it, and the node checks the certificate it gets back against
that root: an enrolment service that does not hold the root cannot make the node trust anything.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from keys import KeysError, Member, TrustStore, cbor
from keys.enrolment import EnrolmentRefused, read_enrolment_token, sign_enrolment_request, token_bytes
from node.errors import NetworkError, UsageError
from node.home import NodeHome


def enrol_home(home: NodeHome, url: str, token: str, *, wait: float = 120.0) -> Member:
    """Obtain ``home``'s certificate from the enrolment service at ``url``, waiting up to ``wait`` seconds for
    the service to answer (in a fresh stack it may start after the node). Raises UsageError when refused."""
    try:
        data = token_bytes(token)
        root = read_enrolment_token(data)[1].issuer
    except EnrolmentRefused as exc:
        raise UsageError(f"enrolment token: {exc.reason}") from exc
    config, identity = home.config(), home.identity()
    request = sign_enrolment_request(identity, token=data, organisation=config.organisation, role=config.role,
                                     identifiers=config.identifiers, region=config.region,
                                     vestigingen=config.vestigingen, issued_at=int(time.time()), bsn_key=home.bsn_key())
    answer = _post(url.rstrip("/") + "/iwlz/v1/enrol", request, wait)
    trust = TrustStore([root])
    try:
        if not isinstance(answer, dict) or not isinstance(answer.get("certificate"), bytes):
            raise EnrolmentRefused("the enrolment service's answer holds no certificate")
        member = trust.verify_certificate(answer["certificate"], int(time.time()))
        revocations = answer.get("revocations")
        if isinstance(revocations, bytes):
            trust.apply_revocation_list(revocations)
    except KeysError as exc:
        raise NetworkError(f"the enrolment service answered with something unusable: {exc.reason}") from exc
    if member.did != identity.did or member.role != config.role:
        raise NetworkError("the enrolment service answered with a certificate for another key or role")
    home.install_certificate(answer["certificate"], root)
    if isinstance(revocations, bytes):
        home.store_revocation_list(revocations)
    return member


def _post(url: str, body: bytes, wait: float) -> object:
    deadline = time.monotonic() + wait
    pause = 0.5
    while True:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/cose"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return cbor.decode(response.read(), max_size=64 * 1024)
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 413):
                raise UsageError(f"enrolment refused: {_reason(exc)}") from exc
            failure: str = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            failure = exc.__class__.__name__
        except KeysError as exc:
            raise NetworkError(f"the enrolment service's answer is malformed: {exc.reason}") from exc
        if time.monotonic() + pause > deadline:
            raise NetworkError(f"no enrolment service answered at {url} ({failure})")
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["reason"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc.reason)


__all__ = ["enrol_home"]
