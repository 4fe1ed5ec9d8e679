"""The steps of authority a source knows are read on every decision, so the process that commits every write
keeps them in memory. An Overdracht committed later, by this process or handed over by a worker, must count
from the next decision on: a stale cache would leave the previous zorgkantoor its access."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.store import AuthorityLinks, Link, Store

pytestmark = pytest.mark.asyncio
SUBJECT = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


def step(version: int, target: str) -> Link:
    return Link(SUBJECT, "Overdracht/1", "did:key:z6MkNoord", target, version, "2026-01-0" + str(version),
                "did:key:z6MkNoord", b"\x01" * 32)


async def test_a_committed_step_counts_from_the_next_decision_whoever_wrote_it(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.sqlite3") as store:
        links = AuthorityLinks(store, cache_size=16)
        assert await links.known("zorgkantoor", SUBJECT) == []  # read, and kept
        await store.write(AuthorityLinks.remember("zorgkantoor", [step(1, "did:key:z6MkZuid")]))
        assert [link.target for link in await links.known("zorgkantoor", SUBJECT)] == ["did:key:z6MkZuid"]
        # A worker's hand-over reaches the store as plain statements; the cache learns of those too.
        plain = AuthorityLinks(store)  # as a worker builds it: no cache of its own
        await store.write(plain.remember("zorgkantoor", [step(2, "did:key:z6MkWest")]))
        assert [link.target for link in await links.known("zorgkantoor", SUBJECT)] == ["did:key:z6MkWest"]


async def test_a_read_that_overlaps_a_commit_is_not_kept(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.sqlite3") as store:
        links = AuthorityLinks(store, cache_size=16)
        reading = asyncio.ensure_future(links.known("zorgkantoor", SUBJECT))  # starts before the commit below
        await asyncio.sleep(0)
        await store.write(AuthorityLinks.remember("zorgkantoor", [step(1, "did:key:z6MkZuid")]))
        await reading
        assert [link.target for link in await links.known("zorgkantoor", SUBJECT)] == ["did:key:z6MkZuid"]


async def test_without_a_cache_every_decision_reads_the_store(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.sqlite3") as store, Store(tmp_path / "node.sqlite3") as other:
        worker = AuthorityLinks(store)  # another process commits: this one hears of nothing
        assert await worker.known("zorgkantoor", SUBJECT) == []
        await other.write(AuthorityLinks.remember("zorgkantoor", [step(1, "did:key:z6MkZuid")]))
        assert [link.target for link in await worker.known("zorgkantoor", SUBJECT)] == ["did:key:z6MkZuid"]
