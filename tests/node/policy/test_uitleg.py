"""Every rule code a node names to people has a plain Dutch explanation, and the glossary in docs/ says the same."""

from __future__ import annotations

import re
from pathlib import Path

from node.policy.matrix import load_matrix, load_uitleg

ROOT = Path(__file__).resolve().parents[3]


def _rule_codes() -> set[str]:
    codes: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                if key in ("id", "rule", "moved_rule") and isinstance(sub, str):
                    codes.add(sub)
                walk(sub)
        elif isinstance(value, list):
            for sub in value:
                walk(sub)

    walk(load_matrix())
    for path in (ROOT / "node").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'rule="([A-Z][A-Z0-9-]+)"', text))
        codes |= set(re.findall(r'RULE(?:: Final)? = "([A-Z][A-Z0-9-]+)"', text))
        codes |= set(re.findall(r'Denied\("([A-Z][A-Z0-9-]+)"', text))
    return codes


def test_every_rule_code_has_an_explanation() -> None:
    explained = set(load_uitleg()["regels"])
    codes = _rule_codes()
    assert len(codes) > 20
    assert codes <= explained, f"no uitleg for: {sorted(codes - explained)}"


def test_the_glossary_page_says_what_uitleg_json_says() -> None:
    page = (ROOT / "docs" / "WOORDENLIJST.md").read_text(encoding="utf-8")
    uitleg = load_uitleg()
    for code, text in {**uitleg["regels"], **uitleg["begrippen"]}.items():
        assert f"| {code} | {text} |" in page, code
