"""Writing outbox rows as an import does: CPU per row with the node's notification ids against random UUIDs.

    python -m bench.outbox [--rows 1000000]

A store of the node's schema and settings (its page cache among them) takes ``--rows`` notification rows in
writes of 500, once with ids made as the node makes them (the time first) and once with random UUIDs, each in a
fresh store; it prints the CPU per row of the process (every thread) and their ratio, measured in one run. The
key index of random ids outgrows the page cache at several hundred thousand rows, and from then on nearly every
insert reads a page back.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from node.notify.outbox import INSERT_NOTIFICATION, NO_PEER_YET, WAITING, _subjects, new_notification_id
from node.store import Store

WRITE = 500  # rows in one write, as an import batch of 500 records makes


async def _per_row(path: Path, rows: int, make_id: Callable[[], str]) -> float:
    """CPU seconds per row for ``rows`` rows written into a new store at ``path``."""
    async with Store(path) as store:
        started = time.process_time()
        for first in range(0, rows, WRITE):
            await store.write([
                (INSERT_NOTIFICATION,
                 (make_id(), "NIEUWE_INDICATIE_ZORGKANTOOR", "UZOVI", str(5100 + n % 10), None, None,
                  _subjects(f"WlzIndicatie/{uuid.uuid4()}", f"WlzIndicatie/{uuid.uuid4()}"), int(time.time()), WAITING,
                  None, NO_PEER_YET), False)
                for n in range(first, min(rows, first + WRITE))])
        spent = time.process_time() - started
        stored = await store.fetchone("SELECT count(*) FROM outbox WHERE status = 'pending'")
        assert stored is not None and stored[0] == rows, f"{stored} of {rows} rows stored"
        return spent / rows


def measure(rows: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="iwlz-outbox-"))
    try:
        ordered = asyncio.run(_per_row(tmp / "ordered.sqlite3", rows, new_notification_id))
        random = asyncio.run(_per_row(tmp / "random.sqlite3", rows, lambda: str(uuid.uuid4())))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{rows:,} outbox rows in writes of {WRITE}: {ordered * 1e6:.1f} µs a row with the node's notification ids, "
          f"{random * 1e6:.1f} µs with random UUIDs (ratio {ordered / random:.2f})")
    return {"ordered_us": ordered * 1e6, "random_us": random * 1e6, "ratio": ordered / random}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    measure(parser.parse_args(argv).rows)


if __name__ == "__main__":
    main()
