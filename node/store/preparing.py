"""The part of storing an imported record that needs nothing but the record: check it against its schema, strip
its nulls, encode and pack it, derive its lookup keys and its retention date.

That is half the CPU an import costs the node (bench/transfer.py), and none of it touches the database, so a
large batch is prepared in a process of its own while the node's own process writes the batch before it. A
small batch is prepared in place: the trip to the other process would cost more than it saves. Either way
it is the same function, ``prepare``, so what is stored does not depend on where it was prepared.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import signal
import sys
from pathlib import Path
from typing import Any, NamedTuple

from node.errors import ValidationError
from node.store.packing import pack
from keys import cbor
from node.store.records import RECORD_TYPES, checked_record, is_text, values_at

log = logging.getLogger(__name__)

PATHS_OF_KEYS: dict[str, list[tuple[str, str]]] = {
    # record kind -> (lookup key name, dotted path; [] walks a list)
    "WlzIndicatie": [("bsn", "bsn"), ("zorgkantoor", "initieelVerantwoordelijkZorgkantoor")],
    "Bemiddeling": [
        ("bsn", "client.bsn"), ("wlzIndicatieID", "wlzIndicatieID"),
        ("bemiddelingspecificatieID", "bemiddelingspecificatie[].bemiddelingspecificatieID"),
        ("instelling", "bemiddelingspecificatie[].instelling"), ("instelling", "regiehouder[].instelling"),
        ("zorgkantoor", "verantwoordelijkZorgkantoor"), ("zorgkantoor", "overdracht.verantwoordelijkZorgkantoor"),
    ],
    "Levering": [("bsn", "bsn"), ("bemiddelingspecificatieID", "bemiddelingspecificatieID"), ("zorgkantoor", "zorgkantoor"),
                 ("wlzIndicatieID", "wlzIndicatieID"), ("instelling", "verzoeken[].aanbieder")],
    "Zorgaanbod": [("instelling", "instelling"), ("regio", "regio")],
    "Toestemming": [("bsn", "bsn")],
    "Melding": [("melder", "melder"), ("status", "status")],
    "VerzoekAntwoord": [("bsn", "bsn"), ("verzoekID", "verzoekID"), ("leveringID", "leveringID"), ("instelling", "aanvrager")],
    "EigenBijdrage": [("bsn", "bsn"), ("wlzIndicatieID", "wlzIndicatieID"), ("zorgkantoor", "zorgkantoor")],
}

Key = tuple[str, str, str, str]  # (name, value, kind, record id)


def record_keys(kind: str, record_id: str, data: dict[str, Any] | None) -> list[Key]:
    """The lookup keys of one version's content."""
    return [(name, str(v), kind, record_id) for name, path in PATHS_OF_KEYS[kind] for v in values_at(data or {}, path)]


class Prepared(NamedTuple):
    """One line of a batch, ready to be written. A delete has no content and nothing derived from it."""

    line: int
    record_id: str
    data: dict[str, Any] | None
    encoded: bytes | None
    packed: bytes | None
    keys: list[Key]
    retain_until: str | None


Item = tuple[int, str | None, Any]  # (line, id of the record to delete or None, record)
Batch = list[Item] | bytes  # the lines, or the admin API's request body that holds them (JSON)
MAX_BATCH = 5000


def batch_items(body: Any) -> list[Item]:
    """The lines of an import request's JSON: {"items": [{"line": n, "record": {...}} or {"line": n, "delete": id}]}."""
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) > MAX_BATCH:
        raise ValidationError(f"an import batch is {{\"items\": [...]}} with at most {MAX_BATCH} items")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("line"), int):
            raise ValidationError("each item is {\"line\": n, \"record\": {...}} or {\"line\": n, \"delete\": id}")
        delete = item.get("delete")
        out.append((item["line"], str(delete) if delete else None, item.get("record")))
    return out


def lines_of(batch: Batch) -> list[Item]:
    if not isinstance(batch, bytes):
        return batch
    try:
        return batch_items(json.loads(batch))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValidationError("request body is not JSON") from exc


def prepare(kind: str, batch: Batch, ended_years: int | None) -> tuple[list[Prepared], list[tuple[int, str]]]:
    """(the lines that can be stored, the refused ones with their reasons); ``ended_years``: the node's retention
    after a record ended, None for the kind's own. A batch that is not one raises ValidationError."""
    record_type = RECORD_TYPES[kind]
    items = lines_of(batch)
    ready: list[Prepared] = []
    refused: list[tuple[int, str]] = []
    for line, delete_id, data in items:
        if delete_id:
            if is_text(delete_id):
                ready.append(Prepared(line, delete_id, None, None, None, [], None))
            else:  # a lone surrogate (JSON's \ud800) names no record, and no database could hold it
                refused.append((line, "delete is not a valid record id"))
            continue
        try:
            data = checked_record(kind, data)
            record_id = record_type.record_id(data)
        except ValidationError as exc:
            refused.append((line, str(exc)))
            continue
        encoded = cbor.encode(data)
        ready.append(Prepared(line, record_id, data, encoded, pack(encoded), record_keys(kind, record_id, data),
                              record_type.retain_until(data, ended_years)))
    return ready, refused


class Preparer:
    """Where import batches are prepared: in a process of its own when the machine has a core to spare (started at
    the first large batch, ended after IDLE seconds without one), else here. The process runs ``serve``: it reads
    requests from its stdin and answers on its stdout, one at a time, in order."""

    SMALL = 256  # lines (or 400 bytes each of a body): a smaller batch is prepared here
    IDLE = 60.0
    AFTER_FAILURE = 60.0  # seconds of preparing here after the process failed (one that cannot start is not tried per batch)

    def __init__(self, use_process: bool) -> None:
        self.use_process = use_process
        self._process: asyncio.subprocess.Process | None = None
        self._turn = asyncio.Lock()  # one request with the process at a time
        self._idle: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._failed_until = 0.0  # event loop time

    @property
    def started(self) -> bool:
        return self._process is not None

    async def prepare(self, kind: str, batch: Batch, ended_years: int | None
                      ) -> tuple[list[Prepared], list[tuple[int, str]]]:
        small = len(batch) < self.SMALL * (400 if isinstance(batch, bytes) else 1)
        if not self.use_process or small or asyncio.get_running_loop().time() < self._failed_until:
            return await self._here(kind, lines_of(batch), ended_years)
        async with self._turn:
            self._stop_idle_timer()
            try:
                return await self._there(kind, batch, ended_years)
            except (OSError, EOFError, asyncio.IncompleteReadError, pickle.UnpicklingError) as exc:
                log.warning("the import's preparing process failed (%s); preparing here for %.0f s",
                            type(exc).__name__, self.AFTER_FAILURE)
                self._failed_until = asyncio.get_running_loop().time() + self.AFTER_FAILURE
                await self.close()
                return await self._here(kind, lines_of(batch), ended_years)
            finally:
                if self._process is not None:
                    self._idle = asyncio.get_running_loop().call_later(self.IDLE, self._close_when_idle)

    async def _there(self, kind: str, batch: Batch, ended_years: int | None) -> tuple[list[Prepared], list[tuple[int, str]]]:
        if self._process is None:
            # -P: not the working directory first on its path (whoever may write there could plant a package
            # named node); the node's own code is found where this module was.
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-c", _PROGRAM, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, limit=_MAX_ANSWER, env=_child_environment())
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        _write(process.stdin.write, (kind, batch, ended_years))
        await process.stdin.drain()
        size = int.from_bytes(await process.stdout.readexactly(8), "big")
        answer = pickle.loads(await process.stdout.readexactly(size))  # our own child's answer
        if isinstance(answer, BaseException):
            raise answer  # a fault in prepare itself, as it would be raised here
        ready, refused = answer
        return [Prepared(*fields) for fields in ready], refused

    @staticmethod
    async def _here(kind: str, items: list[Item], ended_years: int | None) -> tuple[list[Prepared], list[tuple[int, str]]]:
        """In this process, a few lines at a time: preparing 16 takes ~0.7 ms, and requests are let through."""
        ready: list[Prepared] = []
        refused: list[tuple[int, str]] = []
        for start in range(0, len(items), 16):
            if start:
                await asyncio.sleep(0)
            some, refused_some = prepare(kind, items[start:start + 16], ended_years)
            ready += some
            refused += refused_some
        return ready, refused

    def _stop_idle_timer(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _close_when_idle(self) -> None:
        task = asyncio.get_running_loop().create_task(self.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """End the process (it exits when its stdin closes) and wait for it."""
        self._stop_idle_timer()
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


# The collector as in the node's own processes (node/tasks.py): a batch's thousands of young objects are not
# walked again and again.
_PROGRAM = "from node.tasks import tune_collector; tune_collector(); from node.store.preparing import serve; serve()"
_MAX_ANSWER = 64 * 1024 * 1024  # the pipe's read buffer: an answer (a few MiB) comes in without pausing the pipe


def _child_environment() -> dict[str, str]:
    """This environment, with the directory that holds this node's code (the ``node`` package) first on the path."""
    code = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": code + (os.pathsep + path if path else "")}


def _write(write: Any, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    write(len(data).to_bytes(8, "big"))
    write(data)


def serve() -> None:
    """The preparing process: answer each request on stdin until it closes."""
    # Ctrl-C in a terminal reaches the whole process group: the node ends this process by closing its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the answers
    while len(head := requests.read(8)) == 8:
        kind, batch, ended_years = pickle.loads(requests.read(int.from_bytes(head, "big")))  # our parent's request
        try:
            ready, refused = prepare(kind, batch, ended_years)
            answer: Any = ([tuple(p) for p in ready], refused)
        except Exception as exc:  # noqa: BLE001 - a batch that is not one, or a fault: the parent raises it
            answer = exc
        _write(answers.write, answer)
        answers.flush()


__all__ = ["MAX_BATCH", "PATHS_OF_KEYS", "Batch", "Item", "Prepared", "Preparer", "batch_items", "prepare", "record_keys"]
