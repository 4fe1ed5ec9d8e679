"""Bodies that arrive in several chunks are read whole: a single ``StreamReader.read(n)`` returns only what has
arrived, which cut a worker's hand-over of a batch's writes (and would cut a large reply or revocation list)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from node.client import read_bounded
from tests.helpers import served

PIECE = 50_000


async def _slow_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for n in range(4):
        await response.write(bytes([n]) * PIECE)
        await asyncio.sleep(0.02)
    await response.write_eof()
    return response


@pytest_asyncio.fixture
async def url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/", _slow_body)
    async with served(app) as base:
        yield base + "/"


@pytest.mark.asyncio
async def test_a_body_in_chunks_is_read_to_its_end(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            first = await response.content.read(4 * PIECE + 1)
        assert len(first) < 4 * PIECE  # what one read returned: the defect this guards against
        async with session.get(url) as response:
            data = await read_bounded(response.content, 4 * PIECE)
    assert data == b"".join(bytes([n]) * PIECE for n in range(4))


@pytest.mark.asyncio
async def test_a_body_over_the_limit_is_read_only_one_byte_past_it(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            data = await read_bounded(response.content, PIECE + 10)
    assert len(data) == PIECE + 11 and data[:PIECE] == bytes(PIECE)
