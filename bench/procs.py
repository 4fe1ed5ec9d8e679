"""What /proc says of a process: its memory (kB lines of /proc/PID/status) and open files."""

from __future__ import annotations

import os
from pathlib import Path


def status_kib(pid: int, field: str) -> int:
    """A kB line of /proc/PID/status: VmRSS (resident now), VmHWM (the peak), ...; 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


__all__ = ["status_kib", "open_files"]
