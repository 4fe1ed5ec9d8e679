"""Envelope throughput next to bare PyNaCl, measured in one run.

    python -m bench.envelope [--seconds 2]

Prints the rates of: bare Ed25519 sign and verify (PyNaCl), envelope
sign+encode (Endpoint.send) and decode+verify (Endpoint.receive) of a sealed
indicatie query and of a clear notification, and their ratios to the bare
operations. The design target: one signature verification per request, so
receive should stay within a small factor of bare verify.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import nacl.signing

from keys import Identity, TrustStore, issue_certificate
from protocol import Endpoint, Notification, Query, Subject

NOW = 1_790_000_000
INDICATIE = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


def rate(fn: Callable[[int], None], seconds: float) -> float:
    """Calls per second of fn(i), over about ``seconds``."""
    n, start, batch = 0, time.perf_counter(), 200
    while time.perf_counter() - start < seconds:
        for i in range(n, n + batch):
            fn(i)
        n += batch
    return n / (time.perf_counter() - start)


def endpoints() -> tuple[Endpoint, Endpoint]:
    root = Identity.generate()
    nodes = []
    for role, ids in (("zorgkantoor", {"uzovi": "5151"}), ("ciz", {"kvk": "62253778"})):
        node = Identity.generate()
        cert = issue_certificate(root, subject=node.did, organisation=role, role=role, identifiers=ids,
                                 not_before=NOW - 10, expires=NOW + 10**7, issued_at=NOW)
        nodes.append(Endpoint(node, cert, TrustStore([root.did])))
    return nodes[0], nodes[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    measure(parser.parse_args(argv).seconds)


def measure(seconds: float) -> dict[str, float]:
    """Envelope send and receive rates and their ratios to bare PyNaCl sign and verify."""
    key = nacl.signing.SigningKey.generate()
    message = b"x" * 200
    signed = key.sign(message)
    verify_key = key.verify_key
    bare_sign = rate(lambda i: key.sign(message), seconds)
    bare_verify = rate(lambda i: verify_key.verify(signed), seconds)

    alice, bob = endpoints()
    query = Query(template="indicatie-by-id", params={"wlzIndicatieID": INDICATIE}, evidence=(), history=False)
    note = Notification(notification_id="0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", event_type="NIEUWE_INDICATIE_ZORGKANTOOR",
                        timestamp=NOW, sender_id_type="KVK", sender_id="62253778", receiver_id_type="UZOVI",
                        receiver_id="5151", subscription_id=None,
                        subjects=(Subject(subject=f"WlzIndicatie/{INDICATIE}", record_id=f"WlzIndicatie/{INDICATIE}"),))
    rows = [("bare PyNaCl sign", bare_sign, bare_sign), ("bare PyNaCl verify", bare_verify, bare_verify)]
    for name, msg in (("sealed query", query), ("clear notification", note)):
        send_rate = rate(lambda i: alice.send(msg, to=bob.did, now=NOW), seconds)
        pool = [alice.send(msg, to=bob.did, now=NOW).data for _ in range(int(bare_verify * seconds * 1.2) + 1000)]
        receive_rate = rate(lambda i: bob.receive(pool[i], now=NOW), seconds)
        rows.append((f"envelope send ({name})", send_rate, bare_sign))
        rows.append((f"envelope receive ({name})", receive_rate, bare_verify))
    size = len(alice.send(query, to=bob.did, now=NOW).data)
    print(f"{'operation':38} {'per second':>11} {'ratio to bare':>14}")
    for name, value, base in rows:
        print(f"{name:38} {value:11,.0f} {value / base:14.2f}")
    print(f"sealed query envelope size: {size} bytes (certificate included)")
    return {name: value / base for name, value, base in rows[2:]} | {"bare_verify_rate": bare_verify}


if __name__ == "__main__":
    main()
