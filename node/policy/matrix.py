"""The authorization matrix: data in policy.json, read once, served at GET /iwlz/v1/policy."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_matrix() -> dict[str, Any]:
    return json.loads(resources.files("node.policy").joinpath("policy.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def load_uitleg() -> dict[str, Any]:
    """What each rule code means, in plain Dutch (uitleg.json), for the web interface, the demo and the docs."""
    return json.loads(resources.files("node.policy").joinpath("uitleg.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


__all__ = ["load_matrix", "load_uitleg"]
