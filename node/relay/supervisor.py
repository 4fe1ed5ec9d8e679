"""The owner keeps its workers running: started with the node, started again when one dies, stopped with it."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from node.errors import ConfigError

log = logging.getLogger(__name__)
READY = b"ready"
START_TIMEOUT = 60.0


class Workers:
    def __init__(self, count: int, *, command: Callable[[int], list[str]], restart_delay: float = 0.5) -> None:
        self.count = count
        self.command = command  # the argv of worker i
        self.restart_delay = restart_delay
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        """Start every worker and wait until each listens; ConfigError if one does not come up."""
        started = await asyncio.gather(*(self._start(i) for i in range(self.count)), return_exceptions=True)
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise ConfigError(f"a worker process did not start: {failed[0]}")
        self._keepers = [asyncio.create_task(self._keep(i), name=f"worker-{i}") for i in range(self.count)]

    async def _start(self, index: int) -> None:
        process = await asyncio.create_subprocess_exec(*self.command(index), stdin=asyncio.subprocess.DEVNULL,
                                                       stdout=asyncio.subprocess.PIPE)
        self.processes[index] = process
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(READY):
            if process.returncode is None:
                process.kill()
            await process.wait()
            raise ConfigError(f"worker {index} exited with {process.returncode} before it listened (see its log)")

    async def _keep(self, index: int) -> None:
        delay = self.restart_delay
        while not self._stopping:
            code = await self.processes[index].wait()
            if self._stopping:
                return
            log.warning("worker %d exited (%s); starting it again", index, code)
            await asyncio.sleep(delay)
            try:
                await self._start(index)
                delay = self.restart_delay
            except (ConfigError, OSError) as exc:
                log.error("worker %d did not start again: %s", index, exc)
                delay = min(delay * 2, 30.0)

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            process.terminate()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), timeout)
        except asyncio.TimeoutError:
            for process in running:
                if process.returncode is None:
                    process.kill()
            await asyncio.gather(*(p.wait() for p in running))


_PRIVATE_PREFIX = "iwlz-node-"
_OWNER_FILE = "owner.pid"


def private_dir() -> Path:
    """A new directory only this user may enter, for the owner's socket, change count and worker settings.

    A killed owner cannot remove its own: those of this user whose owner is gone are removed first (an owner
    that still runs is left alone; one whose pid was taken by another process is left for later).
    """
    for stale in Path(tempfile.gettempdir()).glob(_PRIVATE_PREFIX + "*"):
        try:
            if stale.lstat().st_uid != os.getuid() or not stat.S_ISDIR(stale.lstat().st_mode):
                continue
            os.kill(int((stale / _OWNER_FILE).read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (OSError, ValueError):
            continue
    made = Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX))
    with open(os.open(made / _OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(f"{os.getpid()}\n")
    return made


def worker_command(settings_path: str) -> list[str]:
    return [sys.executable, "-m", "node.worker", settings_path]


__all__ = ["Workers", "worker_command", "private_dir", "READY"]
