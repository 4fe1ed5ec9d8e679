"""docs/PROTOCOL.md and the code say the same: error codes and their HTTP status, message types, and to whom an
error is addressed with which trace."""

from __future__ import annotations

import re
from pathlib import Path

from keys import cbor, cose
from protocol import MESSAGE_TYPES, Endpoint, ErrorCode, Query, RemoteProtocolError
from protocol.errors import STATUS_HINTS
from tests.helpers import NOW, Network, seeded

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()


def test_every_error_code_is_documented_with_the_status_the_node_answers() -> None:
    cddl = DOC[DOC.index("error-code ="):DOC.index("```", DOC.index("error-code ="))]
    table = {}
    for status, codes in re.findall(r"^\| (\d{3}) \| (.+) \|$", DOC, re.M):
        for code in re.findall(r"`([a-z-]+)`", codes):
            table[code] = int(status)
    for code in ErrorCode:
        assert f'"{code.value}"' in cddl, code
        assert table.get(code.value) == STATUS_HINTS[code], code


def test_every_message_type_is_in_the_table() -> None:
    documented = set(re.findall(r"^\| `([a-z-]+)` \| (?:yes|no) \|", DOC, re.M))
    assert documented == set(MESSAGE_TYPES)


def _query() -> Query:
    return Query(template="RECORD-STATUS", params={"kind": "WlzIndicatie", "id": "31835d1d-3933-4ffe-9f57-8985f41fae4a"},
                 evidence=(), history=False)


def _error_for(bob: Endpoint, data: bytes) -> dict:
    try:
        bob.receive(data, now=NOW)
    except RemoteProtocolError as exc:
        return cbor.decode(cose.parse_sign1(bob.error_reply(data, exc, now=NOW).data).payload)
    raise AssertionError("accepted")


def test_errors_go_to_the_sender_once_it_is_known_and_keep_its_trace_once_its_envelope_is_read() -> None:
    net = Network()
    alice, bob = net.endpoint(seeded(2), "zorgkantoor"), net.endpoint(seeded(3), "ciz")
    good = alice.send(_query(), to=bob.did, now=NOW, trace_id="ab" * 16)
    payload = cbor.decode(cose.parse_sign1(good.data).payload)
    broken = _error_for(bob, good.data[:-1])  # check 2: the frame; the sender is not known
    assert broken["to"] == "*" and broken["re"]["id"] is None and broken["trace"] != "ab" * 16
    wrong = alice.send(_query(), to=seeded(9).did, now=NOW, trace_id="cd" * 16)  # check 8: read, and to someone else
    error = _error_for(bob, wrong.data)
    assert error["to"] == alice.did and error["trace"] == "cd" * 16 and error["re"]["id"] == cbor.decode(
        cose.parse_sign1(wrong.data).payload)["id"]
    bob.receive(good.data, now=NOW)
    replayed = _error_for(bob, good.data)  # check 10
    assert replayed["to"] == alice.did and replayed["trace"] == "ab" * 16 and replayed["re"]["id"] == payload["id"]
