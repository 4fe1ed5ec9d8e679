"""Authority over a record, from signed evidence: who holds it now, and through which steps.

An authority in the matrix (policy.json "authority") names where it starts
(a field of the record, e.g. the initieelVerantwoordelijkZorgkantoor) and
what a step looks like (a signed record of a given kind whose signer is the
party holding authority at that point, about the same record and client,
naming the next holder). The holder is found by walking the steps from the
start: each step must be signed by the holder reached so far, in date order,
and the latest version of each signed record replaces its earlier ones, so
a superseded or withdrawn step no longer counts. A step signed by anyone
else — a party that never held authority, the requester itself — is never
reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.policy.evidence import Evidence
from node.store import Link, values_at


@dataclass(frozen=True, slots=True)
class Holder:
    party: str | None  # the identifier of the party holding authority now
    steps: tuple[Link, ...]  # the steps that led there from the start, in order


def _first(values: list[Any]) -> str | None:
    return str(values[0]) if values else None


def steps_in(spec: dict[str, Any], subject: str, record: dict[str, Any], evidence: list[Evidence]) -> list[Link]:
    """The evidence items that are well-formed steps about ``record`` (who signed them is checked by the walk)."""
    step = spec["step"]
    out = []
    for item in evidence:
        data = item.record.data
        holder = item.signer.identifiers.get(step["signer_identifier"])
        if item.record.kind != step["kind"] or item.signer.role != step["signer_role"] or holder is None or data is None:
            continue
        if not all(_first(values_at(data, path)) == _expected(source, record, holder)
                   for path, source in step["match"].items()):
            continue
        out.append(Link(subject, item.record.path, holder, _first(values_at(data, step["to"])), item.record.version,
                        _first(values_at(data, step["order"])) or "", item.signer.did, item.signer.cert_id))
    return out


def _expected(source: str, record: dict[str, Any], holder: str) -> str | None:
    kind, _, name = source.partition(":")
    if kind == "record":
        return _first(values_at(record, name))
    if kind == "signer":
        return holder
    raise ValueError(f"unknown source {source!r} in an authority step")


def holder_of(spec: dict[str, Any], record: dict[str, Any], links: list[Link]) -> Holder:
    """Walk the steps from the start named by ``spec``; ``links`` may hold several versions of a step."""
    latest: dict[str, Link] = {}
    for link in links:
        if link.record not in latest or link.version > latest[link.record].version:
            latest[link.record] = link
    current = _expected(spec["start"], record, "")
    order, used, chain = "", set[str](), []
    while current is not None:
        options = [link for link in latest.values()
                   if link.holder == current and link.target and link.record not in used and link.order >= order]
        if not options:
            break
        step = max(options, key=lambda link: (link.order, link.version))
        used.add(step.record)
        chain.append(step)
        current, order = step.target, step.order
    return Holder(current, tuple(chain))


__all__ = ["Holder", "steps_in", "holder_of"]
