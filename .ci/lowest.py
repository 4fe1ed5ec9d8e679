"""Print pip constraints that pin every dependency in pyproject.toml to the lowest version it allows.

A floor is a promise: someone who already has that version installed keeps it. CI installs these
constraints in a virtual environment of their own and runs the tests that use each dependency, so
a floor below what the node needs (an API it calls, a resolver it relies on) fails CI instead of a
deployment. Test-only dependencies are left to pip: they never run in production.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = list(project["dependencies"]) + list(project.get("optional-dependencies", {}).get("fast", []))
    pins = []
    for requirement in wanted:
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"{requirement!r}: every dependency needs a floor (name>=version)")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    print("\n".join(floors(root / "pyproject.toml")))
