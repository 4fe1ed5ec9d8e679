"""Background tasks of a node: started by its parts, all ended when the node stops."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from node.errors import NodeError, UsageError

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start ``coro`` as a task that stop() will end (a finished task leaves the set by itself)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        return list(self._tasks)

    async def stop(self) -> None:
        running = list(self._tasks)
        for task in running:
            task.cancel()
        for task in running:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - ending, nothing to report
                pass
        self._tasks.clear()


class Housekeeping:
    """Periodic jobs in one task: each runs every ``every`` seconds; a failure is logged, not fatal."""

    def __init__(self) -> None:
        self._jobs: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = []
        self._due: dict[str, float] = {}

    def add(self, name: str, every: float, job: Callable[[], Awaitable[Any]], first: float | None = None) -> None:
        """Run ``job`` every ``every`` seconds, the first time after ``first`` (default: ``every``)."""
        self._jobs.append((name, every, job))
        self._due[name] = time.monotonic() + (every if first is None else first)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, min(self._due.values(), default=time.monotonic() + 60) - time.monotonic()))
            for name, every, job in self._jobs:
                if self._due[name] > time.monotonic():
                    continue
                try:
                    await job()
                except NodeError as exc:
                    log.warning("housekeeping job %s failed: %s", name, exc.__class__.__name__)
                self._due[name] = time.monotonic() + every


def event_loop_runner(choice: str) -> asyncio.Runner:
    """uvloop when it is installed (pip install 'iwlz-node[fast]'; bench/query.py measures what it gives), else
    asyncio's own loop."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise UsageError("--event-loop uvloop: uvloop is not installed (pip install 'iwlz-node[fast]')") from None
        else:
            return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    return asyncio.Runner()


# The cyclic collector's thresholds. With Python's (700, 10, 10) a node runs a collection every few requests, and
# with a cache of thousands of decoded records alive the older generations are walked again and again: an import
# of 100,000 records went 18-23% faster with (50,000, 20, 100) (bench.transfer, alternating, same run), its peak
# memory the same. An import batch keeps 100,000-180,000 young objects alive while it is stored (the prepared
# records, their statements and versions), and each young collection walked them all and freed none: at 50,000
# that was 0.9 s of the node's 4.6 s of CPU for 100,000 records; at 200,000 it is gone (45.6 -> 35.7 µs a record
# on the node's main thread). Garbage in cycles waits at most 200,000 allocations: a few MB in practice (what a
# node makes is mostly freed by its reference counts), ~60 MB if every allocation were a cycle.
COLLECTOR_THRESHOLDS = (200_000, 20, 100)


def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may use: those it may run on, and no more than its cgroup's CPU quota (a container
    given 2 CPUs on a 64-core host sees 64 in os.cpu_count())."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def tune_collector() -> None:
    """For a node's processes (owner and workers): collect cycles less often (COLLECTOR_THRESHOLDS)."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


async def start_or_undo(start: Callable[[], Awaitable[None]], undo: Callable[[], Awaitable[None]]) -> None:
    """Start a process's parts; when one cannot start, ``undo`` what was started and let the error go on: an open
    store keeps a thread that would keep the process from ending, neither serving nor exiting."""
    try:
        await start()
    except BaseException:
        try:
            await undo()
        except Exception as exc:  # noqa: BLE001 - the error that stopped the start is the one to report
            log.warning("stopping what had started failed too: %s", exc.__class__.__name__)
        raise


__all__ = ["Background", "Housekeeping", "Spawn", "event_loop_runner", "start_or_undo", "tune_collector", "usable_cores",
           "COLLECTOR_THRESHOLDS"]
