"""Fault injection for the end-to-end tests: exit hard at a named point, once."""

from __future__ import annotations

import os


def crash_point(name: str) -> None:
    """Armed only when IWLZ_CRASH_AT names the point and IWLZ_CRASH_FLAG names a file that exists;
    the file is removed first, so the restarted process runs normally."""
    flag = os.environ.get("IWLZ_CRASH_FLAG")
    if os.environ.get("IWLZ_CRASH_AT") == name and flag and os.path.exists(flag):
        os.unlink(flag)
        os._exit(137)


__all__ = ["crash_point"]
