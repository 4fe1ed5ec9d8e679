"""The node's SQL binds with plain ``?`` placeholders only.

Python 3.12 before the fix of cpython#117995 (3.12.1 here) takes a numbered placeholder (``?1``) bound from a
sequence for a named one and warns (DeprecationWarning, "an sqlite3.ProgrammingError will be raised" in 3.14): a
deployment that runs with warnings as errors lost its housekeeping, its retention and its outbox's due rows to it;
the suite on 3.12.1 had 11 failures. ``?`` repeated with its value means the same on every Python.
"""

from __future__ import annotations

import re
from pathlib import Path

NODE = Path(__file__).resolve().parents[2] / "node"
NUMBERED = re.compile(r"\?\d")


def test_no_sql_in_the_node_uses_numbered_placeholders() -> None:
    found = [f"{path.relative_to(NODE.parent)}:{number}: {line.strip()}"
             for path in sorted(NODE.rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if NUMBERED.search(line.split("#", 1)[0])]
    assert not found, "\n".join(found)
