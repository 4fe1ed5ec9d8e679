"""Nodes as separate processes for the hardening suite: their own logs, file limits, environment."""

from __future__ import annotations

import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from node.home import NetworkDir, NodeHome
from tests.node.kit import PARTIES, reap

ERROR_MARKERS = ("Traceback", " ERROR ", " CRITICAL ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_file_limit(wanted: int = 8192) -> None:
    """The test process itself opens many sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


class NodeProcess:
    def __init__(self, root: Path, name: str, net: NetworkDir, **config: Any) -> None:
        role, org, ids, region = PARTIES[name]
        self.home = NodeHome.create(root / name, role=role, name=org, identifiers=ids, region=region)
        net.issue(self.home, now=int(__import__("time").time()), days=1)
        settings = self.home.config()
        settings.outbox_first_delay, settings.outbox_max_delay = 0.1, 0.5
        for key, value in config.items():
            setattr(settings, key, value)
        self.home.save_config(settings)
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.log = self.home.path / "node.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str, files: int | None = None, prefix: list[str] | None = None, host: str | None = None) -> None:
        def limit() -> None:
            if files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

        cmd = [*(prefix or []), sys.executable, "-m", "node", "run", str(self.home.path), "--no-mdns", "--port",
               str(self.port), "--gossip-interval", "0", *(["--host", host] if host else []), *extra]
        (self.home.path / "run.json").unlink(missing_ok=True)
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=limit,
                                         env={**os.environ, "PYTHONPATH": os.getcwd()})
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert line.startswith("ready "), self.log.read_text()[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        if self.proc is not None:
            reap(self.proc)
        self.proc = None

    def errors_in_log(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if any(m in f" {line} " for m in ERROR_MARKERS)]

    def dump(self, *, skip: tuple[str, ...] = ("replay",)) -> list[str]:
        """The database as SQL, without the tables a refused message may legitimately touch in memory only."""
        with closing(sqlite3.connect(self.home.database_path)) as db, db:
            return [line for line in db.iterdump() if not any(f'"{t}"' in line for t in skip)]


__all__ = ["NodeProcess", "free_port", "raise_file_limit", "ERROR_MARKERS"]
