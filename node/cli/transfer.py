"""iwlz import and iwlz export: a register to and from JSON Lines or CSV, at any size.

Import reads the file as a stream, cuts it into batches and hands them to
the node (over its admin API when it runs, else to the node started here for
the import), two at a time, while the next batch is being read. Each line is one record
(JSON Lines) or one row (CSV, columns named as in node/store/tabular.py); a
line that cannot be read or is refused goes to the rejects file with its
reason. Running the same file again adds no version. Exit code 0 when every
line was taken, 4 when some were rejected.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from node.cli.common import command, emit
from node.errors import UsageError
from node.home import NodeHome, open_private

BATCH_ITEMS = 2000
BATCH_BYTES = 2 * 1024 * 1024  # well below the admin API's 4 MiB per request
REJECTED_EXIT = 4


@dataclass
class Line:
    number: int
    raw: Any  # the line's text (JSON Lines) or its row (CSV), for the rejects file
    item: dict[str, Any] | None = None  # {"line", "record"} or {"line", "delete"}
    reason: str | None = None  # why it could not be read
    text: str | None = None  # the item as JSON, when the line holds it as it is (made from ``item`` when not)

    def item_json(self) -> str:
        if self.text is None:
            self.text = json.dumps(self.item, separators=(",", ":"))
        return self.text


@dataclass
class Summary:
    lines: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0
    seconds: float = 0.0
    rejects_file: str | None = None

    def add(self, result: dict[str, Any]) -> None:
        for key in ("created", "updated", "deleted", "unchanged"):
            setattr(self, key, getattr(self, key) + int(result[key]))


class Counting(io.RawIOBase):
    """A binary file that counts what was read from it (for the progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.done = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.done += n or 0
        return n or 0


def _jsonl(stream: IO[str]) -> Iterator[Line]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Line(number, text.rstrip("\n"), reason=f"not JSON: {exc.msg} at column {exc.colno}")
            continue
        if isinstance(value, dict) and "version" in value and "record" in value and "id" in value:  # a history export
            item = {"line": number, "delete": value["id"]} if value.get("deleted") else {"line": number, "record": value["record"]}
            yield Line(number, text.rstrip("\n"), item=item)
        else:  # the line is the record's JSON already: it goes as it is (read above by the same parser as the node's)
            yield Line(number, text.rstrip("\n"), item={"line": number, "record": value},
                       text=f'{{"line":{number},"record":{text.strip()}}}')


def _csv(stream: IO[str], kind: str) -> Iterator[Line]:
    from node.errors import ValidationError
    from node.store.tabular import unflatten

    reader = csv.DictReader(stream)
    for row in reader:
        number = reader.line_num
        if None in row:
            yield Line(number, row, reason="more cells than the header has columns")
            continue
        try:
            yield Line(number, row, item={"line": number, "record": unflatten(kind, row)})
        except ValidationError as exc:
            yield Line(number, row, reason=str(exc))


def _batches(lines: Iterator[Line]) -> Iterator[list[Line]]:
    batch: list[Line] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line.item_json()) if line.item else 0
        if len(batch) >= BATCH_ITEMS or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _read_ahead(batches: Iterator[list[Line]], depth: int = 2) -> Iterator[list[Line]]:
    """Read and parse the next batches in a thread while the node stores the current one."""
    ahead: queue.Queue[list[Line] | BaseException | None] = queue.Queue(maxsize=depth)

    def fill() -> None:
        try:
            for batch in batches:
                ahead.put(batch)
            ahead.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side, which raises it
            ahead.put(exc)

    threading.Thread(target=fill, daemon=True, name="import-reader").start()
    while (batch := ahead.get()) is not None:
        if isinstance(batch, BaseException):
            raise batch
        yield batch


class Rejects:
    """The rejects file: each refused line as it was, with its number and reason."""

    def __init__(self, path: Path | None, fmt: str, header: list[str] | None) -> None:
        self.path, self.fmt, self.header = path, fmt, header
        self._file: IO[str] | None = None
        self._csv: Any = None

    def write(self, line: Line, reason: str) -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = open_private(self.path, encoding="utf-8", newline="")  # the lines as written: personal data
            if self.fmt == "csv":
                self._csv = csv.DictWriter(self._file, fieldnames=["line", "reason", *(self.header or [])],
                                           extrasaction="ignore", lineterminator="\n")
                self._csv.writeheader()
        if self._csv is not None:
            self._csv.writerow({"line": line.number, "reason": reason, **line.raw})
        else:
            self._file.write(json.dumps({"line": line.number, "reason": reason, "input": line.raw}, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


Store = Callable[[bytes], dict[str, Any]]  # an import request's body ({"items": [...]}) to its result


def _run_import(path: Path, kind: str, fmt: str, store: Store, rejects: Rejects, progress: Any) -> Summary:
    summary = Summary()
    started = time.monotonic()
    with path.open("rb") as raw:
        counting = Counting(raw)
        text = io.TextIOWrapper(io.BufferedReader(counting, 1 << 20), encoding="utf-8-sig", newline="")
        if fmt == "csv":
            lines = _csv(text, kind)
        else:
            lines = _jsonl(text)
        with Pipeline(store, kind) as pipeline:
            for batch in _read_ahead(_batches(lines)):
                summary.lines += len(batch)
                for line in batch:
                    if line.reason is not None:
                        rejects.write(line, line.reason)
                        summary.rejected += 1
                for done, result in pipeline.send(batch):
                    _take(summary, rejects, done, result)
                progress.update(counting.done - progress.n)
                progress.set_postfix(records=summary.lines, refresh=False)
            for done, result in pipeline.drain():
                _take(summary, rejects, done, result)
    summary.seconds = time.monotonic() - started
    return summary


def _take(summary: Summary, rejects: Rejects, batch: list[Line], result: dict[str, Any]) -> None:
    by_number = {line.number: line for line in batch}
    summary.add(result)
    for refused in result["rejected"]:
        rejects.write(by_number[refused["line"]], refused["reason"])
        summary.rejected += 1


class Pipeline:
    """Batches to the node, IN_FLIGHT at a time and their results in the order sent: the node checks one batch
    while it writes the one before (measured: bench/transfer.py). A batch naming a record that a batch still
    in flight names waits for it, so that every record's versions are stored in the file's order."""

    IN_FLIGHT = 2

    def __init__(self, store: Store, kind: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.store, self.kind = store, kind
        self.pool = ThreadPoolExecutor(self.IN_FLIGHT, thread_name_prefix="import")
        self.pending: list[tuple[list[Line], set[str] | None, Any]] = []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def send(self, batch: list[Line]) -> Iterator[tuple[list[Line], dict[str, Any]]]:
        """Hand ``batch`` on; yields the batches that finished first, with their results."""
        items = [line for line in batch if line.item is not None]
        if not items:
            return
        ids = self._ids([line.item for line in items if line.item is not None])
        while self.pending and (len(self.pending) >= self.IN_FLIGHT or ids is None or any(
                other is None or ids & other for _, other, _ in self.pending)):
            yield self._oldest()
        body = ('{"items":[' + ",".join(line.item_json() for line in items) + "]}").encode()
        self.pending.append((batch, ids, self.pool.submit(self.store, body)))

    def drain(self) -> Iterator[tuple[list[Line], dict[str, Any]]]:
        while self.pending:
            yield self._oldest()

    def _oldest(self) -> tuple[list[Line], dict[str, Any]]:
        batch, _, future = self.pending.pop(0)
        return batch, future.result()

    def _ids(self, items: list[dict[str, Any]]) -> set[str] | None:
        """The record ids a batch names; None when one cannot be told (the batch then goes alone)."""
        from node.store.records import RECORD_TYPES

        record_type = RECORD_TYPES.get(self.kind)
        if record_type is None:
            return None
        ids = set()
        for item in items:
            try:
                ids.add(str(item["delete"]) if "delete" in item else record_type.record_id(item["record"]))
            except (KeyError, TypeError):  # a record the node will refuse, with its reason: the batch goes alone
                return None
        return ids


def _header(path: Path, fmt: str) -> list[str] | None:
    if fmt != "csv":
        return None
    with path.open(encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f), [])


def _format(path: Path, given: str | None) -> str:
    fmt = given or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise UsageError("the format is jsonl or csv")
    return fmt


def import_file(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from node.tasks import tune_collector

    # The batches read ahead and in flight are thousands of live objects: with Python's thresholds a full
    # collection walked them every few batches and freed nothing, ~10 µs a record (a third of this process's CPU).
    tune_collector()

    home = NodeHome(Path(args.home)).require()
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no file {path}")
    fmt = _format(path, args.format)
    rejects = Rejects(Path(args.rejects) if args.rejects else None, fmt, _header(path, fmt))
    quiet = args.quiet or getattr(args, "json", False) or not sys.stderr.isatty()
    with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"import {path.name}", disable=quiet,
              file=sys.stderr) as progress:
        try:
            if (home.path / "run.json").exists():
                from node.admin.client import AdminClient

                client = AdminClient(home, timeout=600)
                summary = _run_import(path, args.kind, fmt, lambda body: client.call(
                    "POST", f"/admin/v1/import/{args.kind}", body), rejects, progress)
            else:
                summary = asyncio.run(_direct_import(home, path, args.kind, fmt, rejects, progress))
        finally:
            rejects.close()
    summary.rejects_file = args.rejects if summary.rejected else None
    rate = summary.lines / summary.seconds if summary.seconds else 0.0
    emit(args, summary.__dict__ | {"records_per_second": round(rate)}, (
        f"{path.name}: {summary.lines} lines in {summary.seconds:.1f} s ({rate:,.0f}/s): {summary.created} new, "
        f"{summary.updated} changed, {summary.deleted} deleted, {summary.unchanged} unchanged, {summary.rejected} rejected"
        + (f" (see {args.rejects})" if summary.rejected and args.rejects else
           " (give --rejects FILE to keep them)" if summary.rejected else "")))
    return REJECTED_EXIT if summary.rejected else 0


async def _direct_import(home: NodeHome, path: Path, kind: str, fmt: str, rejects: Rejects, progress: Any) -> Summary:
    """The node is stopped: start it here for the import (notifications wait in its outbox until it runs again)."""
    async with _node_here(home) as node:
        loop = asyncio.get_running_loop()

        def store(body: bytes) -> dict[str, Any]:
            future = asyncio.run_coroutine_threadsafe(
                node.registers.put_many(kind, body, actor=node.actor, now=node.now()), loop)
            result = future.result()
            return {"created": result.created, "updated": result.updated, "deleted": result.deleted,
                    "unchanged": result.unchanged, "rejected": [{"line": n, "reason": r} for n, r in result.rejected]}

        return await asyncio.to_thread(_run_import, path, kind, fmt, store, rejects, progress)


class _node_here:
    """A stopped node, started in this process for one command (no mDNS, no gossip; its outbox delivers as usual)."""

    def __init__(self, home: NodeHome) -> None:
        self.home = home

    async def __aenter__(self) -> Any:
        from node.service import Node

        self.node = Node(self.home, host="127.0.0.1", port=0, mdns=False, gossip_interval=0, bootstrap=[])
        await self.node.start()
        return self.node

    async def __aexit__(self, *exc: object) -> None:
        await self.node.stop()


def export_file(args: argparse.Namespace) -> int:
    home = NodeHome(Path(args.home)).require()
    fmt = args.format
    out = open_private(args.output, "wb") if args.output else sys.stdout.buffer
    try:
        if (home.path / "run.json").exists():
            from node.admin.client import AdminClient

            query = f"?format={fmt}" + ("&history=1" if args.history else "")
            for chunk in AdminClient(home, timeout=600).stream("GET", f"/admin/v1/export/{args.kind}{query}"):
                out.write(chunk)
        else:
            asyncio.run(_direct_export(home, args.kind, fmt, args.history, out))
    finally:
        if args.output:
            out.close()
    return 0


async def _direct_export(home: NodeHome, kind: str, fmt: str, history: bool, out: IO[bytes]) -> None:
    from node.admin.transfer import export_chunks

    async with _node_here(home) as node:
        async def seen(page: list[Any]) -> None:
            entries = node.audit.shown(page, actor=node.actor, now=node.now(), event="admin.export")
            if entries:
                await node.store.write(entries)

        async for chunk in export_chunks(node.registers, kind, fmt=fmt, history=history, seen=seen):
            out.write(chunk)


def register(sub: Any) -> None:
    p = command(sub, "import", import_file, "load records from JSON Lines or CSV (idempotent; any size)")
    p.add_argument("kind")
    p.add_argument("file")
    p.add_argument("--format", choices=("jsonl", "csv"), help="default: by the file's extension (.csv, else jsonl)")
    p.add_argument("--rejects", metavar="FILE", help="write every refused line here, with its number and reason")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = command(sub, "export", export_file, "write a register as JSON Lines or CSV (what import reads)")
    p.add_argument("kind")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--history", action="store_true", help="every version, with its signature (JSON Lines)")
    p.add_argument("--output", "-o", metavar="FILE", help="default: standard output")


__all__ = ["register"]
