"""How many workers `iwlz run` starts when not told: one per core this process may use, within its container's
CPU quota, and IWLZ_WORKERS or --workers when given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.cli.run import _workers, usable_cores
from node.errors import UsageError


def test_a_cgroup_quota_caps_the_cores(tmp_path: Path) -> None:
    may_run_on = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    assert usable_cores(quota) == may_run_on
    quota.write_text("150000 100000\n")  # 1.5 CPUs: two workers
    assert usable_cores(quota) == min(may_run_on, 2)
    quota.write_text("50000 100000\n")  # half a CPU: still one
    assert usable_cores(quota) == 1
    assert usable_cores(tmp_path / "absent") == may_run_on


def test_the_environment_and_the_flag_decide_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IWLZ_WORKERS", "3")
    assert _workers(None) == 3
    assert _workers(5) == 5
    monkeypatch.setenv("IWLZ_WORKERS", "many")
    with pytest.raises(UsageError):
        _workers(None)
    with pytest.raises(UsageError):
        _workers(0)
