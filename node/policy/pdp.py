"""The policy decision point inside every node.

The matrix is data (node/policy/policy.json, served at GET /iwlz/v1/policy); this
module only interprets it: template and parameters first (before the register
is touched), then the rule for the requester's role, its bindings to the
requester's certificate, the evidence the requester presents, and finally
which records and fields the requester sees. Deny by default.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from keys import Member, TrustStore
from node.policy.evidence import Confirm, Evidence, verified_evidence
from node.policy.matrix import load_matrix
from node.store import RECORD_TYPES, Registers, StoredVersion, values_at
from protocol import ErrorCode, Query, RemoteProtocolError

MAX_RESULTS = 1000


class Denied(RemoteProtocolError):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(ErrorCode.DENIED, reason, rule=rule)


@dataclass(frozen=True, slots=True)
class View:
    """One record as the requester may see it."""

    kind: str
    record_id: str
    version: int
    deleted: bool
    data: dict[str, Any] | None
    source: StoredVersion
    bsn: str | None
    auth_data: dict[str, Any] | None  # what the rules look at: a tombstone is judged by its last content

    @property
    def path(self) -> str:
        return f"{self.kind}/{self.record_id}"

    @property
    def unchanged(self) -> bool:
        """True when the view is the stored version itself (its stored signature can be reused)."""
        return self.kind == self.source.kind and self.data == self.source.data


@dataclass(slots=True)
class Decision:
    rule: str
    views: list[View] = field(default_factory=list)
    # Relations the source keeps because this rule allowed the read ("remember" in the matrix).
    remember: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class PolicyDecisionPoint:
    def __init__(self, registers: Registers, trust: TrustStore, *, matrix: dict[str, Any] | None = None,
                 freshness: int = 3600, confirm: Confirm | None = None) -> None:
        self.registers = registers
        self.trust = trust
        self.matrix = matrix or load_matrix()
        self.freshness = freshness
        self.confirm = confirm
        self._bsn_checks: OrderedDict[tuple[bytes, str], bool] = OrderedDict()

    def templates(self) -> list[str]:
        """The templates this node answers: those over the registers it holds."""
        return [name for name, t in self.matrix["templates"].items()
                if t["kind"] == "*" or RECORD_TYPES[t["kind"]].source_role == self.registers.role]

    async def decide(self, requester: Member, query: Query, now: int) -> Decision:
        template = self._template(query)
        rule = self._rule(template, requester)
        params = query.params
        for param, source in rule.get("bind", {}).items():
            if params[param] != self._resolve(source, requester, params, None):
                raise Denied(rule["id"], f"parameter {param} must be your own {source.split(':')[1]}")
        if "bind_bsn" in rule and not self.is_client(requester, params["bsn"]):
            raise Denied(rule["id"], "a client may only ask about his own BSN")
        evidence = await self._evidence(query.evidence, now)
        if "require_evidence" in rule:
            if not self._evidence_met(rule["require_evidence"], evidence, requester, params, None):
                raise Denied(rule["id"], f"no valid {rule['require_evidence']['kind']} evidence names you for this record")
        decision = Decision(rule["id"])
        last_content: dict[tuple[str, str], dict[str, Any]] = {}
        for stored in await self._lookup(template, params, query.history):
            if stored.data is not None:
                last_content[(stored.kind, stored.record_id)] = stored.data
            for view in self._views(template, stored, params, last_content.get((stored.kind, stored.record_id))):
                matched = self._shown(rule, view, evidence, requester, params)
                if matched is not None:
                    decision.views.append(self._project(rule, view))
                    if matched != rule["id"]:
                        decision.rule = matched
        if decision.views and "remember" in rule:
            spec = rule["remember"]
            values = {name: str(self._resolve(source, requester, params, None)) for name, source in spec["values"].items()}
            decision.remember.append((spec["relation"], values))
        return decision

    # Template, rule, bindings ---------------------------------------------

    def _template(self, query: Query) -> dict[str, Any]:
        template = self.matrix["templates"].get(query.template)
        if template is None or query.template not in self.templates():
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, f"this node answers no template {query.template}")
        missing = [p for p in template["params"] if p not in query.params]
        extra = [p for p in query.params if p not in template["params"]]
        if missing or extra:
            detail = f"missing {', '.join(missing)}" if missing else f"not in the template: {', '.join(extra)}"
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{query.template} parameters: {detail}", rule=query.template)
        return template  # type: ignore[no-any-return]

    def _rule(self, template: dict[str, Any], requester: Member) -> dict[str, Any]:
        for rule in template["rules"]:
            if rule["role"] in ("*", requester.role):
                return rule  # type: ignore[no-any-return]
        raise Denied("DENY-BY-DEFAULT", f"role {requester.role} may not use this template")

    def _resolve(self, source: str, requester: Member, params: dict[str, str], view: View | None) -> list[str] | str | None:
        kind, _, name = source.partition(":")
        if kind == "identifier":
            return requester.identifiers.get(name)
        if kind == "param":
            return params.get(name)
        if kind == "record" and view is not None and view.auth_data is not None:
            return [str(v) for v in values_at(view.auth_data, name)]
        return None

    def is_client(self, requester: Member, bsn: str) -> bool:
        key = (requester.cert_hash, bsn)
        result = self._bsn_checks.get(key)
        if result is None:
            result = requester.role == "client" and requester.matches_bsn(bsn)
            self._bsn_checks[key] = result
            if len(self._bsn_checks) > 10_000:
                self._bsn_checks.popitem(last=False)
        return result

    # Evidence -------------------------------------------------------------

    async def _evidence(self, presented: tuple[bytes, ...], now: int) -> list[Evidence]:
        return await verified_evidence(presented, self.trust, now, freshness=self.freshness, confirm=self.confirm)

    def _evidence_met(self, spec: dict[str, Any], evidence: list[Evidence], requester: Member,
                      params: dict[str, str], view: View | None) -> bool:
        for item in evidence:
            if item.record.kind != spec["kind"] or item.signer.role != spec["signer_role"]:
                continue
            if all(self._matches(values_at(item.record.data, path), self._resolve(source, requester, params, view))
                   for path, source in spec["match"].items()):
                return True
        return False

    @staticmethod
    def _matches(values: list[Any], expected: list[str] | str | None) -> bool:
        if expected is None or expected == []:
            return False
        wanted = expected if isinstance(expected, list) else [expected]
        return any(str(v) in wanted for v in values)

    # Records, views, fields -------------------------------------------------

    async def _lookup(self, template: dict[str, Any], params: dict[str, str], history: bool) -> list[StoredVersion]:
        lookup, kind = template["lookup"], template["kind"]
        kinds = tuple(RECORD_TYPES) if kind == "*" else (kind,)
        by = lookup["by"]
        if by == "id":
            kind = params[lookup["kind_param"]] if "kind_param" in lookup else kind
            record_id = params[lookup["param"]]
            if kind == "Bemiddelingspecificatie":
                found = await self.registers.find("bemiddelingspecificatieID", record_id, kinds=("Bemiddeling",))
                return found[:1]
            if history:
                return (await self.registers.history(kind, record_id))[-MAX_RESULTS:]
            current = await self.registers.current(kind, record_id)
            return [current] if current is not None and (not current.deleted or template.get("view") == "status") else []
        if by == "all":
            return await self.registers.list_current(kind, limit=MAX_RESULTS)
        return (await self.registers.find(by, params[lookup["param"]], kinds=kinds, history=history))[:MAX_RESULTS]

    def _views(self, template: dict[str, Any], stored: StoredVersion, params: dict[str, str],
               content: dict[str, Any] | None) -> list[View]:
        bsn = RECORD_TYPES[stored.kind].bsn(content or {})
        view_name = template.get("view")
        if view_name == "status":
            status = {"version": stored.version, "deleted": stored.deleted}
            return [View(params.get("kind", stored.kind), params["id"], stored.version, False, status, stored, None, status)]
        if view_name == "bemiddelingspecificatie":
            views = []
            for spec in (stored.data or {}).get("bemiddelingspecificatie", []):
                if spec["bemiddelingspecificatieID"] != params["bemiddelingspecificatieID"]:
                    continue
                data = {**spec, **{k: stored.data[k] for k in ("bemiddelingID", "wlzIndicatieID", "verantwoordelijkZorgkantoor", "client")}}  # type: ignore[index]
                views.append(View("Bemiddelingspecificatie", spec["bemiddelingspecificatieID"], stored.version, False,
                                  data, stored, bsn, data))
            return views
        return [View(stored.kind, stored.record_id, stored.version, stored.deleted, stored.data, stored, bsn, content)]

    def _shown(self, rule: dict[str, Any], view: View, evidence: list[Evidence], requester: Member,
               params: dict[str, str]) -> str | None:
        """The rule that lets the requester see ``view``, or None."""
        conditions = rule.get("show_if")
        if not conditions:
            return rule["id"]  # type: ignore[no-any-return]
        for condition in conditions:
            if "evidence" in condition:
                if self._evidence_met(condition["evidence"], evidence, requester, params, view):
                    return condition.get("rule", rule["id"])  # type: ignore[no-any-return]
            elif view.auth_data is not None and self._matches(values_at(view.auth_data, condition["record"]),
                                                         self._resolve(condition["equals"], requester, params, view)):
                return condition.get("rule", rule["id"])  # type: ignore[no-any-return]
        return None

    @staticmethod
    def _project(rule: dict[str, Any], view: View) -> View:
        if view.data is None or not ("only" in rule or "hide" in rule):
            return view
        data = view.data
        if "only" in rule:
            data = {k: v for k, v in data.items() if k in rule["only"]}
        if "hide" in rule:
            data = _without(data, set(rule["hide"]))
        return View(view.kind, view.record_id, view.version, view.deleted, data, view.source, view.bsn, view.auth_data)


def _without(value: Any, hidden: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, hidden) for k, v in value.items() if k not in hidden}
    if isinstance(value, list):
        return [_without(v, hidden) for v in value]
    return value


__all__ = ["PolicyDecisionPoint", "Decision", "View", "Denied", "load_matrix"]
