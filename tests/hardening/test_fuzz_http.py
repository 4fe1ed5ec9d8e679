"""Fuzzing the peer endpoint of a real node process: no 5xx, nothing unhandled in its log, its data unchanged.

Inputs: random bytes; real signed messages mutated (bits flipped, bytes
inserted, removed, truncated, spliced); raw HTTP with wrong lengths, odd
encodings and broken headers; all sent over many connections at once.
The short form (1,000 inputs) runs with every test run; IWLZ_LONG=1 sends
100,000 and prints the statuses seen.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from pathlib import Path

import pytest

from node.home import NetworkDir
from protocol import MEDIA_TYPE, Endpoint, Query
from tests.hardening.conftest import LONG
from tests.hardening.kit import NodeProcess, raise_file_limit
from tests.helpers import Network as Keys
from tests.helpers import seeded

INPUTS = 100_000 if LONG else 1_000
IND0 = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


def real_messages(sender: Endpoint, to: str) -> list[bytes]:
    now = int(time.time())
    queries = [Query(template=t, params=p, evidence=(), history=False) for t, p in (
        ("QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}),
        ("RECORD-STATUS", {"kind": "WlzIndicatie", "id": IND0}),
        ("CLIENT-EIGEN-GEGEVENS", {"bsn": "106658037"}))]
    return [sender.send(q, to=to, now=now).data for q in queries]


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        position = rng.randrange(len(data)) if data else 0
        if choice < 0.4 and data:
            data[position] ^= 1 << rng.randrange(8)
        elif choice < 0.6:
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice < 0.8 and data:
            del data[position:position + rng.randint(1, 8)]
        elif data:
            del data[rng.randint(0, len(data) - 1):]
    return bytes(data)


def raw_request(rng: random.Random, body: bytes) -> bytes:
    """HTTP that is wrong in some way: lengths, encodings, headers, framing."""
    length = len(body)
    variants = [
        f"Content-Length: {length + rng.randint(1, 50)}\r\n",
        f"Content-Length: {max(0, length - rng.randint(1, 50))}\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 99999999999999999999\r\n",
        f"Content-Length: {length}\r\nContent-Length: {length + 1}\r\n",
        "Transfer-Encoding: chunked\r\n",
        f"Content-Length: {length}\r\nContent-Encoding: gzip\r\n",
        f"Content-Length: {length}\r\nContent-Encoding: {'x' * rng.randint(1, 300)}\r\n",
        f"Content-Length: {length}\r\nX-Long: {'a' * rng.randint(8000, 9000)}\r\n",
        f"Content-Length: {length}\r\n\xff\xfe: \x00\r\n",
        f"Content-Length: {length}\r\n" + "".join(f"X-{i}: {i}\r\n" for i in range(rng.randint(100, 200))),
    ]
    head = rng.choice(["POST /iwlz/v1/messages HTTP/1.1", "POST /iwlz/v1/messages HTTP/1.0", "GET /health HTTP/1.1",
                       "POST /iwlz/v1/revocations HTTP/1.1", "PUT /iwlz/v1/messages HTTP/1.1", "POST / HTTP/9.9",
                       "POST /iwlz/v1/messages?%zz HTTP/1.1", "\x00\x01\x02"])
    text = f"{head}\r\nHost: x\r\nContent-Type: {MEDIA_TYPE}\r\n{rng.choice(variants)}\r\n"
    if "chunked" in text:
        body = f"{rng.randint(0, 100):x}\r\n".encode() + body[:50] + rng.choice([b"\r\n0\r\n\r\n", b"zz\r\n", b""])
    return text.encode("latin-1", "replace") + body


async def send_raw(port: int, data: bytes) -> int | None:
    """The status the node answered with, or None when it closed the connection without answering."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    try:
        writer.write(data)
        await writer.drain()
        # A request that declares more body than it sends gets no answer until it gives up: after 2 s here.
        line = await asyncio.wait_for(reader.readline(), 2)
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    except (ConnectionError, asyncio.TimeoutError, OSError):
        return None
    finally:
        writer.close()


def inputs(rng: random.Random, messages: list[bytes], count: int) -> list[bytes]:
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 10, 100, 1000, 20000])))
        else:
            body = mutate(rng, rng.choice(messages))
        if kind == 3:
            out.append(raw_request(rng, body))
        else:
            out.append(f"POST /iwlz/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: {MEDIA_TYPE}\r\n"
                       f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    return out


@pytest.mark.asyncio
async def test_fuzzed_input_gets_no_5xx_leaves_no_trace_and_changes_no_data(tmp_path: Path) -> None:
    raise_file_limit(4096)
    net = NetworkDir.create(tmp_path / "net", "test")
    ciz = NodeProcess(tmp_path, "ciz", net)
    ciz.start()
    try:
        keys = Keys(root=net.root())  # a member of the same network, so that signatures get as far as they can
        sender = Endpoint(seeded(7), keys.certificate(seeded(7), "zorgkantoor"), keys.trust())
        did = ciz.home.identity().did
        before = ciz.dump()
        rng = random.Random(20261129)
        statuses: collections.Counter[int | None] = collections.Counter()
        started = time.monotonic()
        queue = inputs(rng, real_messages(sender, did), INPUTS)
        limit = asyncio.Semaphore(50)

        async def one(data: bytes) -> None:
            async with limit:
                statuses[await send_raw(ciz.port, data)] += 1

        for first in range(0, len(queue), 2000):
            await asyncio.gather(*(one(d) for d in queue[first:first + 2000]))
        elapsed = time.monotonic() - started
        print(f"\n{INPUTS:,} fuzzed inputs in {elapsed:.1f} s; statuses: {dict(sorted(statuses.items(), key=str))}")
        assert not [s for s in statuses if s is not None and s >= 500], statuses
        assert ciz.errors_in_log() == []
        assert ciz.dump() == before
    finally:
        ciz.stop()
