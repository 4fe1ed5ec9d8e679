"""A hostile member's envelopes: correctly signed by a member with a valid certificate, with any body at all."""

from __future__ import annotations

from typing import Any

import nacl.utils

from keys import cose
from protocol import Endpoint, codec
from protocol.envelope import CERT_LABEL, new_trace_id


def forge(sender: Endpoint, typ: str, body: Any, *, to: str, now: int, sealed: bool = False,
          iat: int | None = None, exp: int | None = None) -> bytes:
    """An envelope signed by ``sender`` whose body bypasses every local check of the message classes."""
    if sealed:
        body = sender.boxes.seal(to, codec.encode(body))
    payload = {"v": 1, "typ": typ, "id": nacl.utils.random(16), "from": sender.did, "to": to,
               "iat": now if iat is None else iat, "exp": (now + 60) if exp is None else exp,
               "trace": new_trace_id(), "re": None, "body": body}
    header = {cose.KID: sender.did.encode("ascii"), CERT_LABEL: sender.certificate}
    return cose.sign1(sender.identity, codec.encode(payload), header)


__all__ = ["forge"]
