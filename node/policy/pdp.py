"""The policy decision point inside every node.

The matrix is data (node/policy/policy.json, served at GET /iwlz/v1/policy); this
module only interprets it: template and parameters first (before the register
is touched), then the rule for the requester's role, its bindings to the
requester's certificate, the evidence the requester presents, and finally
which records and fields the requester sees. Deny by default.

Evidence is judged by authority, not by role alone: a step of responsibility
counts only when signed by the party that held it (policy/authority.py), and
evidence names the same record and the same client as the record it opens.
Evidence that is presented but does not hold is a denial with its rule named,
never an empty answer; what a denied request presented is never kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keys import Member, TrustStore
from keys.certificate import KEYED
from node.policy.authority import Holder, holder_of, steps_in
from node.policy.consent import CONSENT_KIND, CONSENT_KINDS, consent_fault, machtiging_fault, not_asked_after
from node.policy.evidence import Confirm, Confirmations, Evidence, unconfirmed, verified_evidence
from node.policy.matrix import load_matrix
from node.store import RECORD_TYPES, AuthorityLinks, Registers, RevokedConsents, Statement, StoredVersion, values_at
from node.store.records import day_of
from protocol import ErrorCode, Query, RemoteProtocolError
from protocol.records import RecordVersion, verify_record

MAX_RESULTS = 1000


class Denied(RemoteProtocolError):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(ErrorCode.DENIED, reason, rule=rule)
        self.subjects: set[str] = set()  # the clients whose records the refused request was about


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
    # What the source keeps because this decision allowed the read: the verified steps of authority.
    remember: list[Statement] = field(default_factory=list)
    # Subjects (BSNs) of the records the decision was about, shown or not: a denial is tied to them too.
    subjects: set[str] = field(default_factory=set)
    # Held evidence to hand along with the records ("attach_evidence"): (kinds, value of the 'about' field).
    attach: set[tuple[tuple[str, ...], str]] = field(default_factory=set)


@dataclass(slots=True)
class Asking:
    """One request being decided: who asks, with which parameters and which verified evidence."""

    requester: Member
    params: dict[str, str]
    evidence: list[Evidence]
    presented: bool  # evidence was presented, valid or not: when it opens nothing, that is a denial
    holders: dict[tuple[str, str], Holder] = field(default_factory=dict)  # (authority, subject) -> holder


def _evidence_specs(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """The evidence a rule names: what it requires, and what its conditions rely on."""
    specs = [rule.get("require_evidence")] + [c.get("evidence") for c in rule.get("show_if", [])]
    return [spec for spec in specs if spec]


class PolicyDecisionPoint:
    def __init__(self, registers: Registers, trust: TrustStore, *, authority: AuthorityLinks | None = None,
                 matrix: dict[str, Any] | None = None, freshness: int = 3600, confirm: Confirm | None = None,
                 source_ids: Callable[[], set[str]] | None = None) -> None:
        self.registers = registers
        self.trust = trust
        self.authority = authority or AuthorityLinks(registers.store)
        self.revoked_consents = RevokedConsents(registers.store)
        self.source_ids = source_ids or (lambda: set())  # how consents name this source: "kvk:…", did
        self.matrix = matrix or load_matrix()
        self.freshness = freshness
        self.confirm = Confirmations(confirm) if confirm is not None else None
        self._bsn_checks: OrderedDict[tuple[bytes, str, bytes | None], bool] = OrderedDict()
        self._answered: list[str] | None = None
        self._kinds_by_rule: dict[int, frozenset[str]] = {}  # by the rule's identity: the matrix does not change

    def templates(self) -> list[str]:
        """The templates this node answers: those over the registers it holds."""
        if self._answered is None:  # the matrix and the role do not change while the node runs
            self._answered = [name for name, t in self.matrix["templates"].items()
                              if t["kind"] == "*" or RECORD_TYPES[t["kind"]].source_role in ("*", self.registers.role)]
        return list(self._answered)

    async def decide(self, requester: Member, query: Query, now: int) -> Decision:
        template = self._template(query)
        rule = self._rule(template, requester)
        params = query.params
        for param, source in rule.get("bind", {}).items():
            if not self._matches([params[param]], self._resolve(source, requester, params, None)):
                raise Denied(rule["id"], f"parameter {param} must be your own {source.split(':')[1]}")
        acting_for = "bind_bsn" in rule and not self.is_client(requester, params["bsn"], query.bsn_key)
        if acting_for and not rule.get("machtiging"):
            raise Denied(rule["id"], "a client may only ask about his own BSN")
        dropped: list[str] = []
        evidence = await verified_evidence(query.evidence, self.trust, now, freshness=self.freshness, confirm=self.confirm,
                                           kinds=self._evidence_kinds(rule), not_asked=not_asked_after, dropped=dropped)
        if acting_for:
            fault = await self.machtiging_fault(requester, params["bsn"], query.template, evidence, now, dropped)
            if fault is not None:
                raise Denied(rule["id"], f"a client may only ask about his own BSN, or for a client whose machtiging "
                                         f"he presents: {fault}")
        asking = Asking(requester, params, evidence, presented=bool(query.evidence))
        if "require_evidence" in rule and not self._evidence_met(rule["require_evidence"], asking, None):
            raise Denied(rule["id"], f"no valid {rule['require_evidence']['kind']} evidence names you for this record")
        if rule.get("consent"):
            await self._require_consent(rule, query.template, asking, now)
        decision = Decision(rule["machtiging"] if acting_for else rule["id"])
        last_content: dict[tuple[str, str], dict[str, Any]] = {}
        for stored in await self._lookup(template, params, query.history):
            if stored.data is not None:
                last_content[(stored.kind, stored.record_id)] = stored.data
            for view in self._views(template, stored, params, last_content.get((stored.kind, stored.record_id))):
                if view.bsn:
                    decision.subjects.add(view.bsn)
                await self._load_authority(rule, view, asking)
                matched = self._shown(rule, view, asking)
                if matched is None:
                    continue
                decision.views.append(self._project(rule, view))
                attach = rule.get("attach_evidence")
                if attach and view.auth_data and attach["about"] in view.auth_data:
                    decision.attach.add((tuple(attach["kinds"]), str(view.auth_data[attach["about"]])))
                if matched != rule["id"]:
                    decision.rule = matched
        if decision.views:
            decision.remember = self._steps_to_remember(asking)
        return decision

    async def subjects_of(self, query: Query) -> set[str]:
        """The clients (BSNs) whose records a query is about, whatever the rules say: a refusal is audited for them."""
        try:
            template = self._template(query)
            stored = await self._lookup(template, query.params, False)
        except RemoteProtocolError:
            stored = []
        subjects = {bsn for s in stored if s.data and (bsn := RECORD_TYPES[s.kind].bsn(s.data))}
        bsn = query.params.get("bsn")
        return subjects | ({bsn} if bsn else set())

    # Template, rule, bindings ---------------------------------------------

    def _template(self, query: Query) -> dict[str, Any]:
        template = self.matrix["templates"].get(query.template)
        answered = self._answered or self.templates()
        if template is None or query.template not in answered:
            # What the peer asked for is not named back (a reason reaches this node's log); what it could ask is.
            raise RemoteProtocolError(ErrorCode.NOT_FOUND,
                                      f"this node answers no such template; it answers {', '.join(sorted(answered))}")
        missing = [p for p in template["params"] if p not in query.params]
        extra = [p for p in query.params if p not in template["params"]]
        if missing or extra:
            detail = (f"missing {', '.join(missing)}" if missing
                      else f"{len(extra)} not in the template, which takes {', '.join(template['params'])}")
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{query.template} parameters: {detail}", rule=query.template)
        return template  # type: ignore[no-any-return]

    def _rule(self, template: dict[str, Any], requester: Member) -> dict[str, Any]:
        for rule in template["rules"]:
            if rule["role"] in ("*", requester.role):
                return rule  # type: ignore[no-any-return]
        raise Denied("DENY-BY-DEFAULT", f"role {requester.role} may not use this template")

    def _resolve(self, source: str, requester: Member, params: dict[str, str], view: View | None) -> list[str] | str | None:
        kind, _, name = source.partition(":")
        if kind == "identifier":  # a zorgaanbieder with vestigingen is each of its AGB codes
            values = requester.identifier_values(name)
            return list(values) if len(values) > 1 else (values[0] if values else None)
        if kind == "requester" and name == "did":
            return requester.did
        if kind == "param":
            return params.get(name)
        if kind == "record" and view is not None and view.auth_data is not None:
            return [str(v) for v in values_at(view.auth_data, name)]
        return None

    def is_client(self, requester: Member, bsn: str, key: bytes | None = None) -> bool:
        """Whether ``requester`` is the client with ``bsn``, by his certificate's commitment (``key``: the one his node
        sent with it, for a keyed commitment)."""
        commitment = requester.bsn_commitment
        # An argon2id commitment (~35 ms a check) ignores the key: a sender varying it must not pass the cache by.
        asked = (requester.cert_hash, bsn, key if commitment is not None and commitment.alg == KEYED else None)
        result = self._bsn_checks.get(asked)
        if result is None:
            result = requester.role == "client" and requester.matches_bsn(bsn, key)
            self._bsn_checks[asked] = result
            if len(self._bsn_checks) > 10_000:
                self._bsn_checks.popitem(last=False)
        return result

    # Consent --------------------------------------------------------------------

    async def _require_consent(self, rule: dict[str, Any], template: str, asking: Asking, now: int) -> None:
        """The client's consent, presented as evidence, must hold (policy/consent.py)."""
        today = day_of(now)
        faults = await self._faults(asking.evidence, lambda item: consent_fault(
            item, requester=asking.requester, bsn=asking.params["bsn"], template=template,
            purpose=asking.params.get("doel", ""), today=today, source=self.source_ids(), is_client=self.is_client))
        if faults is not None:
            raise Denied(rule["id"], f"no consent of the client for this: {faults[0]}" if faults
                         else "no consent of the client was presented")

    async def machtiging_fault(self, requester: Member, bsn: str, template: str, evidence: list[Evidence],
                               now: int, dropped: list[str] | tuple[str, ...] = ()) -> str | None:
        """Why ``requester`` may not read ``template`` for the client with ``bsn`` as his gemachtigde, by the
        evidence he presented (verified; ``dropped``: why pieces that verified did not count), or None: a machtiging
        of that client names him and covers it."""
        today = day_of(now)
        faults = await self._faults(evidence, lambda item: machtiging_fault(
            item, requester=requester, bsn=bsn, template=template, today=today, source=self.source_ids(),
            is_client=self.is_client))
        if faults is None:
            return None
        return faults[0] if faults else dropped[0] if dropped else "no machtiging was presented"

    async def _faults(self, evidence: list[Evidence], fault_of: Callable[[Evidence], str | None]) -> list[str] | None:
        """None once a piece of ``evidence`` is the client's consent ``fault_of`` asks for and he has not withdrawn
        it here; else why each is not (empty: none was presented)."""
        faults = []
        for item in evidence:
            fault = fault_of(item)
            if fault is None and await self.revoked_consents.revoked(item.record, item.signer):
                fault = "the client has withdrawn it"
            if fault is None:
                return None
            faults.append(fault)
        return faults

    async def machtiging_for(self, requester: Member, bsn: str, template: str, presented: bytes, now: int, *,
                             confirmed: bool = False) -> Evidence | str:
        """The machtiging presented with a message that is not a query (an access-log request, a subscription) that
        lets ``requester`` act for the client with ``bsn`` on ``template``; or why it does not. ``confirmed``: once
        it passes every other check, his node is asked whether it stands however young it is (what it opens lasts:
        a subscription)."""
        dropped: list[str] = []
        evidence = await verified_evidence((presented,), self.trust, now, freshness=self.freshness, confirm=self.confirm,
                                           kinds=CONSENT_KINDS, not_asked=not_asked_after, dropped=dropped)
        fault = await self.machtiging_fault(requester, bsn, template, evidence, now, dropped)
        if fault is not None:
            return fault
        held = evidence[0]
        if confirmed and not (stands := await self._asked_now(held.record, held.signer, now)):
            return f"the {held.record.kind} presented is confirmed with its signer first, and {unconfirmed(stands)}"
        return held

    async def machtiging_stands(self, signed: bytes, now: int) -> bool | None:
        """Whether the machtiging (signed, as it was presented) still stands: not when this node heard he withdrew
        it (also from another key of his than the one that signed it), else as his node says; None: it could not be
        asked, or it no longer verifies here (what that ends, its signer's revoked certificate, is ended so)."""
        try:
            record, signer = verify_record(signed, self.trust, now)
        except RemoteProtocolError:
            return None
        if await self.revoked_consents.revoked(record, signer):
            return False
        return await self._asked_now(record, signer, now)

    async def _asked_now(self, record: RecordVersion, signer: Member, now: int) -> bool | None:
        """Whether its signer says this version stands, asked however young it is (an answer it gave within the last
        minute counts, as for all evidence)."""
        return None if self.confirm is None else await self.confirm.confirm(record, signer, now, freshness=0)

    # Authority ----------------------------------------------------------------

    def _evidence_kinds(self, rule: dict[str, Any]) -> frozenset[str]:
        """The kinds of signed record ``rule`` can use as evidence: what it requires, what its conditions and the
        authorities it names rely on, and the client's consent where it asks for one."""
        kinds = self._kinds_by_rule.get(id(rule))
        if kinds is None:
            used = {self.matrix["authority"][name]["step"]["kind"] for name in self._authorities_in(rule)}
            used.update(spec["kind"] for spec in _evidence_specs(rule))
            if rule.get("consent") or rule.get("machtiging"):
                used.add(CONSENT_KIND)
            kinds = self._kinds_by_rule[id(rule)] = frozenset(used)
        return kinds

    def _authorities_in(self, rule: dict[str, Any]) -> set[str]:
        names = {c["authority"] for c in rule.get("show_if", []) if "authority" in c}
        for spec in _evidence_specs(rule):
            if spec.get("signer", "").startswith("authority:"):
                names.add(spec["signer"].split(":", 1)[1])
        return names

    async def _load_authority(self, rule: dict[str, Any], view: View, asking: Asking) -> None:
        """Who holds each authority the rule names over ``view``'s record: what this source knows plus the evidence."""
        for name in self._authorities_in(rule):
            spec = self.matrix["authority"][name]
            if view.kind != spec["record_kind"] or view.auth_data is None:
                continue
            subject = str(view.auth_data[spec["subject"]])
            if (name, subject) in asking.holders:
                continue
            links = await self.authority.known(name, subject) + steps_in(spec, subject, view.auth_data, asking.evidence)
            # A step signed under a certificate revoked since is void, also when this source kept it earlier.
            valid = [link for link in links if not self.trust.is_revoked(link.signer_cert)]
            asking.holders[(name, subject)] = holder_of(spec, view.auth_data, valid)

    def _holder(self, name: str, view: View, asking: Asking) -> Holder | None:
        spec = self.matrix["authority"][name]
        if view.kind != spec["record_kind"] or view.auth_data is None:
            return None
        return asking.holders.get((name, str(view.auth_data[spec["subject"]])))

    def _steps_to_remember(self, asking: Asking) -> list[Statement]:
        return [statement for (name, _), holder in asking.holders.items()
                for statement in self.authority.remember(name, list(holder.steps))]

    async def parties(self, name: str, kind: str, data: dict[str, Any]) -> set[str]:
        """Every party that holds, held or was handed authority ``name`` over a record, as this source knows it."""
        spec = self.matrix["authority"][name]
        if kind != spec["record_kind"] or spec["subject"] not in data:
            return set()
        start = {str(v) for v in values_at(data, spec["start"].split(":", 1)[1])}
        return start | await self.authority.parties(name, str(data[spec["subject"]]))

    async def all_parties(self, kind: str, data: dict[str, Any]) -> set[str]:
        """The parties of every authority over a record of ``kind`` (they are notified when it changes)."""
        out: set[str] = set()
        for name, spec in self.matrix["authority"].items():
            if isinstance(spec, dict):
                out |= await self.parties(name, kind, data)
        return out

    async def may_report(self, requester: Member, kind: str, data: dict[str, Any], bsn_key: bytes | None = None) -> bool:
        """Whether ``requester`` may report an error in this record: it is about him or was sent to him (the matrix's
        'meldingen' relations). Identifiers are compared by type: an AGB and a KVK number can be the same digits."""
        for relation in self.matrix["meldingen"]["relations"].get(kind, []):
            if relation.get("role") == requester.role:
                return True
            if relation.get("client"):
                bsn = RECORD_TYPES[kind].bsn(data)
                if bsn is not None and self.is_client(requester, bsn, bsn_key):
                    return True
            if "identifier" in relation:
                mine = set(requester.identifier_values(relation["identifier"]))
                if any(str(v) in mine for path in relation["in"] for v in values_at(data, path)):
                    return True
            if "authority" in relation:
                key = self.matrix["authority"][relation["authority"]]["step"]["signer_identifier"]
                if set(requester.identifier_values(key)) & await self.parties(relation["authority"], kind, data):
                    return True
        return False

    async def check_reporter(self, requester: Member, kind: str, data: dict[str, Any],
                             bsn_key: bytes | None = None) -> None:
        """Denied (rule MELDING-MELDER, tied to the client the record is about) unless ``may_report``."""
        if await self.may_report(requester, kind, data, bsn_key):
            return
        denied = Denied(self.matrix["meldingen"]["rule"], "only the parties a record is about or was sent to may "
                                                          "report an error in it")
        bsn = RECORD_TYPES[kind].bsn(data)
        if bsn is not None:
            denied.subjects.add(bsn)
        raise denied

    # Evidence -------------------------------------------------------------

    def _evidence_met(self, spec: dict[str, Any], asking: Asking, view: View | None) -> bool:
        """Whether an evidence item fits ``spec``; without a view, only what the parameters can tell."""
        signer = spec.get("signer", "")
        holder = self._holder(signer.split(":", 1)[1], view, asking) if view and signer.startswith("authority:") else None
        for item in asking.evidence:
            if item.record.kind != spec["kind"] or item.signer.role != spec["signer_role"]:
                continue
            if view is not None and signer.startswith("authority:"):
                key = self.matrix["authority"][signer.split(":", 1)[1]]["step"]["signer_identifier"]
                if holder is None or holder.party is None or item.signer.identifiers.get(key) != holder.party:
                    continue
            if all(self._matches(values_at(item.record.data, path), self._resolve(source, asking.requester, asking.params, view))
                   for path, source in spec["match"].items() if view is not None or not source.startswith("record:")):
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

    def _shown(self, rule: dict[str, Any], view: View, asking: Asking) -> str | None:
        """The rule that lets the requester see ``view``, None when it is simply not his, or Denied when the
        evidence he presented for it does not hold."""
        if "require_evidence" in rule and not self._evidence_met(rule["require_evidence"], asking, view):
            raise Denied(rule["id"], f"the {rule['require_evidence']['kind']} you present is not signed by the party "
                                     "responsible for this record, or is about another record or client")
        conditions = rule.get("show_if")
        if not conditions:
            return rule["id"]  # type: ignore[no-any-return]
        for condition in conditions:
            matched = self._condition(condition, rule, view, asking)
            if matched is not None:
                return matched
        self._deny_unmet_evidence(conditions, rule, asking)
        return None

    def _condition(self, condition: dict[str, Any], rule: dict[str, Any], view: View, asking: Asking) -> str | None:
        name: str = condition.get("rule", rule["id"])
        if "evidence" in condition:
            return name if self._evidence_met(condition["evidence"], asking, view) else None
        if "authority" in condition:
            holder = self._holder(condition["authority"], view, asking)
            expected = self._resolve(condition["equals"], asking.requester, asking.params, view)
            if holder is None or holder.party is None or holder.party != expected:
                return None
            return condition["moved_rule"] if holder.steps and "moved_rule" in condition else name
        if view.auth_data is not None and self._matches(values_at(view.auth_data, condition["record"]),
                                                        self._resolve(condition["equals"], asking.requester, asking.params, view)):
            return name
        return None

    def _deny_unmet_evidence(self, conditions: list[dict[str, Any]], rule: dict[str, Any], asking: Asking) -> None:
        """Evidence was presented for a condition that relies on it and did not open the record: a denial."""
        if not asking.presented:
            return
        for condition in conditions:
            if "authority" in condition:
                kind = self.matrix["authority"][condition["authority"]]["step"]["kind"]
                name = condition.get("moved_rule", condition.get("rule", rule["id"]))
            elif "evidence" in condition:
                kind, name = condition["evidence"]["kind"], condition.get("rule", rule["id"])
            else:
                continue
            raise Denied(name, f"the {kind} evidence you present does not give you authority over this record: it must "
                               "verify, be signed by the party responsible at that point, and be about the same record and client")

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
