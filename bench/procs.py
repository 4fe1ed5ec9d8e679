"""The node processes a benchmark starts: their bytecode, and what /proc says of them (memory, open files)."""

from __future__ import annotations

import compileall
import os
from pathlib import Path


def compile_bytecode() -> None:
    """Write the node's bytecode, as an installed node has it (pip compiles a wheel's modules when it installs
    them; the Dockerfile's image holds them). Run from a source checkout with PYTHONDONTWRITEBYTECODE set, as on
    the machines these benchmarks run on, every node process would compile its ~110 modules again: ~90 ms of a
    start of ~420, which fifty receivers starting at once on two cores pay fifty times."""
    root = Path(__file__).resolve().parents[1]
    for package in ("keys", "protocol", "node"):
        compileall.compile_dir(root / package, quiet=1)


def status_kib(pid: int, field: str) -> int:
    """A kB line of /proc/PID/status: VmRSS (resident now), VmHWM (the peak), ...; 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


__all__ = ["compile_bytecode", "cpu_seconds", "status_kib", "open_files"]
