"""A client's node asks the sources of his records about him and puts the answers together.

Sources are found along the chain his records draw, never by asking every
node that holds a register (each would learn his BSN and that he is a Wlz
client): CIZ first, with CLIENT-EIGEN-GEGEVENS for his own BSN, then the
zorgkantoren and zorgaanbieders his records name, found in the peer table,
and the CAK once care is delivered to him. The providers in his region are
asked for their care offer, which names no one. The access log comes from
the same sources and those asked before, each answer signed by its source,
with the source's audit head: a head that goes back or forks since the last
time is reported, because a source that rewrote its log would show it there.

His gemachtigde (a person he gave a machtiging: a Toestemming to the did of
the gemachtigde's own client's node, doel "vertegenwoordiging", at every
source) sees the same from his own node: it follows the same chain for the
client's BSN and presents the machtiging with each question.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from keys import KeysError, Member, check_identifier, is_did
from node.discovery import Peer, PeerTable, Router
from node.errors import NodeError, PeerRefused, ValidationError, shown
from node.store import RECORD_TYPES, Actor, HeldEvidence, Registers, Statement, Store
from node.store.records import EVERY_SOURCE, MACHTIGING, MACHTIGING_COVERS, day_of, is_machtiging, read_record, values_at
from protocol import AccessLogRequest, AccessLogResult, AuditHead, Consent, RemoteProtocolError, Subscribe, Unsubscribe
from protocol.records import RecordVersion, verify_record
from protocol.witness import conflict

log = logging.getLogger(__name__)
SOURCE_REGISTERS = {"indicatie", "bemiddeling", "levering", "eigenbijdrage"}
# Who knows every Wlz client: asked first. The other sources are asked only when his records name them, and the
# CAK once care is delivered to him (it counts his eigen bijdrage from the care it hears of).
FIRST_ASKED = ("ciz",)
CARE_COUNTED_BY = "cak"
# Where his records point on: the zorgkantoren and zorgaanbieders they name, by identifier.
NAMED_BY: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "WlzIndicatie": (("uzovi", "initieelVerantwoordelijkZorgkantoor"),),
    "Bemiddeling": (("uzovi", "verantwoordelijkZorgkantoor"), ("uzovi", "overdracht.verantwoordelijkZorgkantoor"),
                    ("uzovi", "bemiddelingspecificatie[].uitvoerendZorgkantoor"),
                    ("agb", "bemiddelingspecificatie[].instelling"), ("agb", "regiehouder[].instelling")),
    "Levering": (("uzovi", "zorgkantoor"), ("agb", "verzoeken[].aanbieder")),
    "EigenBijdrage": (("uzovi", "zorgkantoor"), ("agb", "zorgperiodes[].aanbieder")),
}
MAX_STEPS = 8  # along the chain: CIZ, zorgkantoren, zorgaanbieders and the CAK, and the ones an Overdracht adds
Answer = tuple[list[RecordVersion], str | None]
OWN_SOURCES = "client.sources"  # the setting that keeps the sources his chain led to
HIS_CHANGES = 50  # the changes shown of a client this node acts for
# Per person followed (.self: his own records; .ID: the client of the machtiging with that id): whether this node
# follows his records ("follow": it subscribes again at start and after a renewal) and where it is subscribed
# ("at": [source did, subscription id], what an unfollow ends).
SUBSCRIBED = "client.subscribed"
LEAVING_WITHIN = 15.0  # seconds a key switch waits for the sources to end what this node follows under the old key
HANDED = "client.handed"  # per consent he gave (.ID): where it was handed, and the SHA-256 of the signed version handed
FOLLOWS = "client.follows"  # per machtiging held (.ID): the subscriptions its client's changes come to this node by


@dataclass(frozen=True, slots=True)
class Whose:
    """Whose data the node asks about: its own client's, or that of a client whose machtiging it holds."""

    bsn: str
    machtiging: bytes | None = None  # presented with every question: the signed Toestemming
    client_did: str | None = None  # his node's, for a client it acts for (the machtiging's signer)
    sources_setting: str = OWN_SOURCES

    @property
    def evidence(self) -> list[bytes]:
        return [self.machtiging] if self.machtiging is not None else []


class ClientView:
    def __init__(self, *, store: Store, peers: PeerTable, router: Router, me: Callable[[], Member], bsn: str | None,
                 clock: Callable[[], float], registers: Registers, actor: Callable[[], Actor],
                 bsn_key: bytes | None = None, url: Callable[[], str] | None = None) -> None:
        self.store = store
        self.url = url  # where his node answers: a machtiging names it, so that a source can ask whether it stands
        self.bsn_key = bsn_key  # goes in his consents: a source checks the consent's signer against it
        self.registers = registers
        self.actor = actor
        self.peers = peers
        self.router = router
        self.me = me
        self.bsn = bsn
        self.clock = clock

    def _bsn(self) -> str:
        if self.bsn is None or self.me().role != "client":
            raise NodeError("only a client's node has an overview of its own data")
        return self.bsn

    async def _whose(self, namens: str | None) -> Whose:
        """His own data (``namens`` None), or that of the client whose machtiging with this id his node holds."""
        if namens is None:
            return Whose(self._bsn())
        if self.me().role != "client":
            raise NodeError("only a client's node acts for another client")
        for record, signer, signed in await self._machtigingen_held():
            if record.record_id == namens:
                return Whose(str((record.data or {})["bsn"]), signed, signer.did, f"{OWN_SOURCES}.{namens}")
        raise NodeError("no machtiging with this id is held here, or it has ended")

    async def _machtigingen_held(self) -> list[tuple[RecordVersion, Member, bytes]]:
        """The machtigingen clients gave this node that verify, name it and have not ended (newest first)."""
        rows = await self.store.fetchall("SELECT signed FROM evidence WHERE kind = 'Toestemming' ORDER BY rowid DESC")
        now = int(self.clock())
        today = day_of(now)  # as the sources end it (policy.pdp)
        held = []
        for (signed,) in rows:
            try:
                record, signer = verify_record(bytes(signed), self.router.trust, now)
            except RemoteProtocolError:
                continue
            data = record.data or {}
            if is_machtiging(data) and data["ontvanger"]["did"] == self.me().did and data["geldigTot"] >= today:
                held.append((record, signer, bytes(signed)))
        return held

    async def represented(self) -> list[dict[str, Any]]:
        """For whom this node acts: the machtigingen it holds, with the client's BSN (his own node's screen), each
        asked after at his node (the endpoint it names; the sources were told of a withdrawal, this node was not).
        One he withdrew is shown once as such and let go of here: it names his BSN."""
        held = await self._machtigingen_held()
        standing = await asyncio.gather(*(self.router.record_status(record, signer) for record, signer, _ in held))
        gone = [(record.record_id, signer.did) for (record, signer, _), stands in zip(held, standing) if stands is False]
        if gone:
            settings = [(f"{name}.{record_id}",) for record_id, _ in gone for name in (OWN_SOURCES, FOLLOWS, SUBSCRIBED)]
            await self.store.write([HeldEvidence.forget_consents(gone),
                                    ("DELETE FROM settings WHERE name = ?", settings, True)])
        return [{"id": record.record_id, "bsn": (record.data or {})["bsn"], "geldig_tot": (record.data or {})["geldigTot"],
                 "client_node": signer.did, "staat": _STANDING[stands]}
                for (record, signer, _), stands in zip(held, standing)]

    def sources(self) -> list[Peer]:
        return [p for p in self.peers.all() if p.role != "client" and SOURCE_REGISTERS & set(p.registers)]

    async def _his_sources(self, whose: Whose) -> list[tuple[Peer, Answer]]:
        """The sources that hold his records, each with its answer: CIZ and those the chain led to before, then whom his
        records name, step by step. Asking every source told each his BSN (sealed to it) and that he is a
        Wlz client: thousands of zorgaanbieders with no part in his care."""
        sources = {p.did: p for p in self.sources()}
        asked: dict[str, tuple[Peer, Answer]] = {}
        remembered = set(await self._remembered(whose))  # so that CIZ away does not hide what the others hold of his
        step = [p for p in sources.values() if p.role in FIRST_ASKED or p.did in remembered]
        for _ in range(MAX_STEPS):
            if not step:
                break
            answers = await asyncio.gather(*(self._ask(p, "CLIENT-EIGEN-GEGEVENS", {"bsn": whose.bsn}, whose.evidence)
                                             for p in step))
            asked.update((p.did, (p, answer)) for p, answer in zip(step, answers))
            named = {peer.did: peer for _, (records, _) in zip(step, answers) for peer in self._named(records)}
            step = [p for did, p in named.items() if did in sources and did not in asked]
        if set(asked) - remembered:
            await self.store.write([_setting(whose.sources_setting, json.dumps(sorted(remembered | set(asked))))])
        return list(asked.values())

    async def _log_sources(self, whose: Whose) -> list[Peer]:
        """CIZ and every source the chain led his node to before (by his overview or his subscriptions; one
        whose records of him have gone still knows who looked at them). Only the first time is the chain followed
        here: each step is a query of his data, which each source then lists in his log."""
        remembered = await self._remembered(whose)
        if not remembered:
            return [p for p, _ in await self._his_sources(whose)]
        first = {p.did for p in self.sources() if p.role in FIRST_ASKED}
        return [p for p in (self.peers.get(did) for did in sorted(first | set(remembered))) if p is not None]

    async def _remembered(self, whose: Whose) -> list[str]:
        """The dids of every source his node asked along the chain before (one that held his records may hold them
        no longer, and still knows who looked at them)."""
        row = await self.store.fetchone("SELECT value FROM settings WHERE name = ?", (whose.sources_setting,))
        return [str(did) for did in json.loads(row[0])] if row else []

    def _named(self, records: list[RecordVersion]) -> list[Peer]:
        """The peers his records name (a zorgkantoor by UZOVI, a zorgaanbieder by any of its AGB codes), and the CAK
        when one of them is care delivered."""
        found = [self.peers.by_identifier(kind, str(value)) for record in records
                 for kind, path in NAMED_BY.get(record.kind, ()) for value in values_at(record.data or {}, path)]
        if any(record.kind == "Levering" for record in records):
            found += [p for p in self.sources() if p.role == CARE_COUNTED_BY]
        return [peer for peer in found if peer is not None]

    # Consents ---------------------------------------------------------------------------

    async def grant(self, *, to: str, templates: list[str], purpose: str, until: str, sources: list[str],
                    endpoint: str | None = None) -> dict[str, Any]:
        """Sign a consent and hand it to the party it is for (``to``: ``agb:…``, ``uzovi:…``, ``kvk:…`` or a did;
        ``endpoint``: where that did's node is, when it is in no peer table: another client's)."""
        kind, _, value = to.partition(":")
        grantee = {"did": to} if to.startswith("did:") else {kind: value}
        data: dict[str, Any] = {"toestemmingID": str(uuid.uuid4()), "bsn": self._bsn(), "ontvanger": grantee,
                                "bronnen": _checked_sources(sources, purpose),
                                "templates": templates, "doel": purpose, "geldigTot": until}
        if EVERY_SOURCE in sources:
            # A source his chain reaches only after he withdraws it never hears of the withdrawal: it asks his node
            # here whether the machtiging stands, once it is older than its freshness bound (policy/consent.py).
            data["endpoint"] = self._own_url()
        if self.bsn_key is not None:
            data["bsnSleutel"] = self.bsn_key.hex()
        stored, _ = await self.registers.put("Toestemming", data, actor=self.actor(), now=int(self.clock()))
        try:
            await self._hand(to, stored.signed, endpoint)
            handed, error = True, None
        except NodeError as exc:
            handed, error = False, str(exc)
        await self._handed(stored.record_id, endpoint, stored.signed if handed else None)
        return {"id": stored.record_id, "handed_over": handed, "error": error}

    def _own_url(self) -> str:
        url = self.url() if self.url is not None else ""
        if not url:
            raise NodeError("this node has no endpoint yet: a machtiging names where a source can ask whether it stands")
        return url

    async def _hand(self, to: str, signed: bytes, endpoint: str | None) -> None:
        """Hand a consent to its party; at ``endpoint`` only when the node there is the did it names (the consent
        names his BSN: it goes to no other node)."""
        if endpoint is None:
            await self.router.send(to, Consent(consents=(signed,)))
            return
        url, did = await self.router.peer_for(endpoint)
        if did != to:
            raise NodeError(f"the node at {shown(endpoint, 100)} is not {to}")
        await self.router.client.request(url, Consent(consents=(signed,)), to=did)

    async def grant_machtiging(self, *, to: str, until: str, endpoint: str | None = None) -> dict[str, Any]:
        """Sign a machtiging: the person whose own node has did ``to`` (at ``endpoint``) may read what he may read, at
        every source of his records, until ``until``."""
        if not to.startswith("did:"):
            raise ValidationError("a machtiging is given to a person: the did of his own node")
        return await self.grant(to=to, templates=list(MACHTIGING_COVERS), purpose=MACHTIGING, until=until,
                                sources=[EVERY_SOURCE], endpoint=endpoint)

    async def hand_over(self, consent_id: str, endpoint: str | None = None) -> bool:
        """Hand a consent to its party again (when it could not be reached at the grant); ``endpoint``: where its
        node is now (else where it was handed before, or the peer table's)."""
        stored = await self.registers.current("Toestemming", consent_id)
        if stored is None or stored.deleted or stored.data is None:
            raise NodeError("no such consent")
        endpoint = endpoint or (await self._handing(consent_id)).get("endpoint")
        await self._hand(_grantee(stored.data), stored.signed, endpoint)
        await self._handed(consent_id, endpoint, stored.signed)
        return True

    async def hand_again(self) -> int:
        """Hand each consent he gave that has not ended again when what its party holds is not its signed version
        now: his node signed it again under a renewed certificate (a signed record holds only while the
        certificate in it does, and a client's is short), or it could not be handed at the grant. Returns how many
        were handed."""
        rows: dict[str, str] = {name: value for name, value in await self.store.fetchall(
            "SELECT name, value FROM settings WHERE name LIKE ?", (f"{HANDED}.%",))}
        # The consents he gave before this node kept where each was handed: handed once more, to their party's node
        # by the peer table (whether what it holds is the version signed now is not known).
        before = {f"{HANDED}.{stored.record_id}": json.dumps({"endpoint": None, "handed": None})
                  for stored in await self.registers.list_current("Toestemming", limit=10_000)
                  if f"{HANDED}.{stored.record_id}" not in rows}
        if before:
            await self.store.write([_setting(name, value) for name, value in before.items()])
        today, handed, gone = day_of(int(self.clock())), 0, []
        for name, value in (rows | before).items():
            consent_id, kept = name[len(HANDED) + 1:], json.loads(value)
            stored = await self.registers.current("Toestemming", consent_id)
            if stored is None or stored.deleted or stored.data is None or str(stored.data["geldigTot"]) < today:
                gone.append((name,))
            elif kept["endpoint"] is None and _grantee(stored.data).startswith("did:") \
                    and self.peers.get(_grantee(stored.data)) is None:
                continue  # a person's node, handed before this node kept where: hand it over with its endpoint
            elif kept["handed"] != _digest(stored.signed):
                try:
                    await self._hand(_grantee(stored.data), stored.signed, kept["endpoint"])
                except NodeError as exc:
                    log.info("could not hand consent %s again: %s", consent_id, exc.__class__.__name__)
                    continue
                await self._handed(consent_id, kept["endpoint"], stored.signed)
                handed += 1
        if gone:
            await self.store.write([("DELETE FROM settings WHERE name = ?", gone, True)])
        return handed

    async def _handing(self, consent_id: str) -> dict[str, Any]:
        row = await self.store.fetchone("SELECT value FROM settings WHERE name = ?", (f"{HANDED}.{consent_id}",))
        return json.loads(row[0]) if row else {}

    async def _handed(self, consent_id: str, endpoint: str | None, signed: bytes | None) -> None:
        """Where a consent was handed (None: by the peer table), and which signed version (None: not yet)."""
        value = {"endpoint": endpoint, "handed": _digest(signed) if signed is not None else None}
        await self.store.write([_setting(f"{HANDED}.{consent_id}", json.dumps(value))])

    async def revoke(self, consent_id: str) -> dict[str, Any]:
        """Withdraw a consent: a tombstone version, and a notification to every source it named, retried until
        each one acknowledges it."""
        stored = await self.registers.current("Toestemming", consent_id)
        if stored is not None and stored.data is not None and EVERY_SOURCE in stored.data["bronnen"]:
            await self._name_every_source(stored.data)
        stored = await self.registers.delete("Toestemming", consent_id, actor=self.actor(), now=int(self.clock()))
        await self.store.write([("DELETE FROM settings WHERE name = ?", (f"{HANDED}.{consent_id}",), False)])
        return {"id": stored.record_id, "withdrawn": True}

    async def _name_every_source(self, data: dict[str, Any]) -> None:
        """A machtiging names no source (``*``): before it is withdrawn, a version that names every source his chain
        leads to now or led to before, so that the withdrawal goes to each of them (a withdrawal goes to the sources a
        consent names) and to none that has no record of his."""
        bsn = self._bsn()
        found = {p.did: p for p, _ in await self._his_sources(Whose(bsn))}
        found.update((did, p) for did in await self._remembered(Whose(bsn)) if (p := self.peers.get(did)) is not None)
        named = sorted({_member_key(p) for p in found.values()} - {EVERY_SOURCE})
        await self.registers.put("Toestemming", dict(data, bronnen=named + [EVERY_SOURCE]), actor=self.actor(),
                                 now=int(self.clock()))

    async def consents(self) -> list[dict[str, Any]]:
        rows = await self.store.fetchall(
            "SELECT record_id FROM records WHERE kind = 'Toestemming' AND current = 1 ORDER BY created_at DESC")
        out = []
        for (record_id,) in rows:
            versions = await self.registers.history("Toestemming", record_id)
            data = next(v.data for v in reversed(versions) if v.data is not None)
            out.append({"id": record_id, "aan": data["ontvanger"], "bronnen": data["bronnen"], "templates": data["templates"],
                        "doel": data["doel"], "geldig_tot": data["geldigTot"], "ingetrokken": versions[-1].deleted})
        return out

    # Following his own records -----------------------------------------------------

    async def follow(self, *, endpoint: str, allowed: dict[str, dict[str, str]],
                     namens: str | None = None) -> list[dict[str, Any]]:
        """Subscribe at every source of his records to their changes that it sends and the matrix lets a client
        follow (``namens``: those of the client whose machtiging this is, presenting it); returns what each source
        said."""
        whose = await self._whose(namens)
        results: list[tuple[str, dict[str, Any]]] = []
        for peer, _ in await self._his_sources(whose):
            events = tuple(sorted(e for e in peer.events if "client" in allowed.get(e, {})))
            if not events:
                continue
            try:
                reply = await self.router.send(peer.did, Subscribe(events=events, bsn=whose.bsn, endpoint=endpoint,
                                                                   machtiging=whose.machtiging))
                results.append((peer.did, {"organisation": peer.organisation, "events": list(events),
                                           "subscription_id": getattr(reply.message, "ref", None)}))
            except NodeError as exc:
                results.append((peer.did, {"organisation": peer.organisation, "events": list(events), "error": str(exc)}))
        subscribed = {(did, sid) for did, sid in (await self._subscribed(namens))["at"]}
        subscribed |= {(did, r["subscription_id"]) for did, r in results if r.get("subscription_id")}
        writes = [_setting(_subscribed_key(namens), json.dumps({"follow": True, "at": sorted(subscribed)}))]
        if namens is not None:  # which notifications are his (kept after an unfollow: those received stay his)
            ids = {r["subscription_id"] for _, r in results if r.get("subscription_id")}
            writes.append(_setting(f"{FOLLOWS}.{namens}", json.dumps(sorted(ids | await self._follows(namens)))))
        await self.store.write(writes)  # also when no source answered: his node follows again at its next start
        return [r for _, r in results]

    async def unfollow(self, *, namens: str | None = None) -> list[dict[str, Any]]:
        """End every subscription this node holds for his records (``namens``: those of the client whose machtiging
        this is), and follow them no more at start; returns what each source said. One a source could not be
        asked to end is asked again at the node's next start."""
        results, remaining = await self._end_at((await self._subscribed(namens))["at"])
        key = _subscribed_key(namens)
        await self.store.write([_setting(key, json.dumps({"follow": False, "at": remaining})) if remaining else
                                ("DELETE FROM settings WHERE name = ?", (key,), False)])
        return results

    async def leave_before_key_switch(self) -> int:
        """End every subscription this node holds, still under the key it is leaving (a source takes an unsubscribe
        only from the did that subscribed); it follows again under the new one. One not ended stays until the
        certificate it was made under ends. Returns how many ended."""
        rows = await self.store.fetchall("SELECT name, value FROM settings WHERE name LIKE ?", (f"{SUBSCRIBED}.%",))
        ended = 0
        try:
            async with asyncio.timeout(LEAVING_WITHIN):  # the switch waits for this: a source away is not waited for
                for name, value in rows:
                    held = json.loads(value)
                    results, remaining = await self._end_at(held["at"])
                    ended += sum(1 for said in results if said["ended"])
                    await self.store.write([_setting(name, json.dumps(dict(held, at=remaining)))])
        except TimeoutError:
            log.info("ended %d subscription(s) under the old key; the sources not reached keep theirs until its "
                     "certificate ends", ended)
        return ended

    async def _end_at(self, at: list[list[str]]) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """Ask each source to end the subscription held there: what each said, and those not ended."""
        results: list[dict[str, Any]] = []
        remaining = []
        for did, sid in at:
            peer = self.peers.get(did)
            said: dict[str, Any] = {"organisation": peer.organisation if peer is not None else did, "subscription_id": sid}
            try:
                await self.router.send(did, Unsubscribe(subscription_id=sid))
                said["ended"] = True
            except PeerRefused as exc:
                said["ended"] = exc.code == "not-found"  # it holds no such subscription (any more)
                if not said["ended"]:
                    said["error"] = str(exc)
            except NodeError as exc:
                said |= {"ended": False, "error": str(exc)}
            if not said["ended"]:
                remaining.append([did, sid])
            results.append(said)
        return results, remaining

    async def follow_again(self, *, endpoint: str, allowed: dict[str, dict[str, str]]) -> int:
        """Subscribe again wherever this node follows his records or those of a client it acts for: the same
        subscriptions, where this node is now (a source sends to the endpoint named last) and on the certificate
        it holds now (a source keeps a client's subscription while the certificate it was made under holds); and
        end what an unfollow could not. Returns at how many sources a subscription stands."""
        rows = await self.store.fetchall("SELECT name, value FROM settings WHERE name LIKE ? OR name LIKE ? OR name LIKE ?",
                                         (f"{SUBSCRIBED}.%", f"{FOLLOWS}.%", f"{OWN_SOURCES}.%"))
        if not rows:  # a node that follows no one and acts for no one: nothing to verify at its start
            return 0
        held = {record.record_id for record, _, _ in await self._machtigingen_held()}
        # A machtiging that ended by its date (one withdrawn was let go of when his node said so): what it kept goes
        ended = {name.split(".", 2)[2] for name, _ in rows} - held - {_SELF}
        if ended:
            await self.store.write([("DELETE FROM settings WHERE name = ?", [
                (f"{name}.{namens}",) for namens in ended for name in (OWN_SOURCES, FOLLOWS, SUBSCRIBED)], True)])
        standing = 0
        for name, value in rows:
            whose = name.split(".", 2)[2]
            if not name.startswith(f"{SUBSCRIBED}.") or whose in ended:
                continue
            namens = None if whose == _SELF else whose
            if json.loads(value)["follow"]:
                results = await self.follow(endpoint=endpoint, allowed=allowed, namens=namens)
                standing += sum(1 for r in results if r.get("subscription_id"))
            else:
                await self.unfollow(namens=namens)
        return standing

    async def moved_to(self, pairs: list[tuple[str, str]]) -> list[Statement]:
        """Sources that moved to a new key (old did, new did): where this node is subscribed, and the sources his
        chain led it to, name them by the new one (an unfollow goes to the did a peer table names)."""
        new_of = dict(pairs)
        rows = await self.store.fetchall("SELECT name, value FROM settings WHERE name LIKE ? OR name = ? OR name LIKE ?",
                                         (f"{SUBSCRIBED}.%", OWN_SOURCES, f"{OWN_SOURCES}.%"))
        out = []
        for name, value in rows:
            held = json.loads(value)
            moved: Any = (dict(held, at=[[new_of.get(did, did), sid] for did, sid in held["at"]])
                          if name.startswith(f"{SUBSCRIBED}.") else [new_of.get(did, did) for did in held])
            if moved != held:
                out.append(_setting(name, json.dumps(moved)))
        return out

    async def _subscribed(self, namens: str | None) -> dict[str, Any]:
        row = await self.store.fetchone("SELECT value FROM settings WHERE name = ?", (_subscribed_key(namens),))
        return json.loads(row[0]) if row else {"follow": False, "at": []}

    async def _follows(self, namens: str | None) -> set[str]:
        """The subscriptions this node follows the client of machtiging ``namens`` by (None: every client it acts
        for)."""
        if namens is not None:
            rows = await self.store.fetchall("SELECT value FROM settings WHERE name = ?", (f"{FOLLOWS}.{namens}",))
        else:
            rows = await self.store.fetchall("SELECT value FROM settings WHERE name LIKE ?", (f"{FOLLOWS}.%",))
        return {str(i) for (value,) in rows for i in json.loads(value)}

    # The overview ----------------------------------------------------------------

    async def overview(self, *, mark_seen: bool = False, namens: str | None = None) -> dict[str, Any]:
        """His data from the sources of his records; ``namens``: that of the client whose machtiging this is (without
        the care offer of a region, the consents and the changes his own node keeps)."""
        whose = await self._whose(namens)
        bsn = whose.bsn
        sources, answers = _split(await self._his_sources(whose))
        region = self.me().region
        providers = [p for p in self.peers.all() if "zorgaanbod" in p.registers and (region is None or p.region == region)
                     and namens is None]
        offers = await asyncio.gather(*(self._ask(p, "ZORGAANBOD", {}) for p in providers))
        records = [(r, p) for p, (rs, _) in zip(sources, answers) for r in rs]
        today = date.fromtimestamp(self.clock()).isoformat()
        seen = await self._last_seen()
        followed = await self._follows(namens)
        view: dict[str, Any] = {
            "asked": [{"organisation": p.organisation, "role": p.role, "answered": error is None, "error": error,
                       "records": len(rs)} for p, (rs, error) in zip(sources, answers)],
            "indicaties": [_indicatie(r, p, today) for r, p in records if r.kind == "WlzIndicatie"],
            "zorgkantoren": [_zorgkantoor(r, p) for r, p in records if r.kind == "Bemiddeling"],
            "zorgaanbieders": [self._toewijzing(spec, r, p, today) for r, p in records if r.kind == "Bemiddeling"
                               for spec in (r.data or {}).get("bemiddelingspecificatie", [])],
            "zorg": [_levering(r, p, today) for r, p in records if r.kind == "Levering"],
            "eigen_bijdrage": [_eigen_bijdrage(r, p) for r, p in records if r.kind == "EigenBijdrage"],
            "zorgaanbod": [dict(r.data or {}, aanbieder=p.organisation) for p, (rs, _) in zip(providers, offers) for r in rs],
            "wijzigingen": await self._changes_since(seen, followed, his=namens is not None),
            "toestemmingen": await self.consents() if namens is None else [],
        }
        if namens is not None:
            view["namens"] = {"id": namens, "bsn": bsn, "volgt": (await self._subscribed(namens))["follow"]}
        elif mark_seen:
            newest = await self.store.fetchone("SELECT coalesce(max(rowid), 0) FROM inbox")
            await self.store.write([_setting("client.last_seen", str(newest[0] if newest else 0))])
        return view

    async def _ask(self, peer: Peer, template: str, params: dict[str, str],
                   evidence: list[bytes] | None = None) -> tuple[list[RecordVersion], str | None]:
        try:
            fetched = [r for r, _, _ in await self.router.query(peer.did, template, params, evidence or [])
                       if not r.deleted]
        except PeerRefused as exc:
            return [], f"{exc.code}{' (' + exc.rule + ')' if exc.rule else ''}"
        except NodeError as exc:
            return [], f"unreachable: {exc.__class__.__name__}"
        kept = [r for r in fetched if _kept_from(r, peer, params.get("bsn"))]
        if len(kept) < len(fetched):
            return kept, (f"{len(fetched) - len(kept)} of its {len(fetched)} records were left out: not of a kind a "
                          f"{peer.role} keeps, not fitting their kind, or not about you")
        return kept, None

    def _toewijzing(self, spec: dict[str, Any], record: RecordVersion, peer: Peer, today: str) -> dict[str, Any]:
        provider = self.peers.by_identifier("agb", spec["instelling"])
        until = spec.get("toewijzingEinddatum")
        return {"aanbieder": provider.organisation if provider else f"AGB {spec['instelling']}", "agb": spec["instelling"],
                "sinds": spec["toewijzingIngangsdatum"], "tot": until, "zzp": spec["zzpCode"],
                "leveringsvorm": spec["leveringsvorm"], "actueel": spec["toewijzingIngangsdatum"] <= today
                and (until is None or until >= today), "via": peer.organisation}

    async def _last_seen(self) -> int:
        """The last notification he saw in his overview (inbox row number)."""
        row = await self.store.fetchone("SELECT value FROM settings WHERE name = 'client.last_seen'")
        return int(row[0]) if row else 0

    async def _changes_since(self, seen: int, followed: set[str], *, his: bool) -> list[dict[str, Any]]:
        """The changes this node was told of since row ``seen``: its own client's, or (``his``) those that came by
        the subscriptions ``followed``, which it holds for a client it acts for (the latest, seen or not)."""
        marks = ", ".join("?" * len(followed))
        if his:
            rows = await self.store.fetchall(
                "SELECT received_at, sender_org, event_type, subjects FROM inbox "
                f"WHERE subscription_id IN ({marks}) ORDER BY rowid DESC LIMIT {HIS_CHANGES}", tuple(followed))
        else:
            rows = await self.store.fetchall(
                "SELECT received_at, sender_org, event_type, subjects FROM inbox WHERE rowid > ? "
                f"AND (subscription_id IS NULL OR subscription_id NOT IN ({marks})) ORDER BY rowid DESC", (seen, *followed))
        return [{"at": at, "bron": org, "gebeurtenis": event, "records": [s["record_id"] for s in json.loads(subjects)]}
                for at, org, event, subjects in rows]

    # Who looked at my data --------------------------------------------------------------

    async def access_log(self, *, since: int = 0, namens: str | None = None) -> dict[str, Any]:
        """Who looked at his data, at every source of his records his node has been led to (newest first);
        ``namens``: at the data of the client whose machtiging this is."""
        whose = await self._whose(namens)
        sources = await self._log_sources(whose)
        answers = await asyncio.gather(*(self._log(p, whose, since) for p in sources))
        names = await self._names(whose)
        entries = sorted((dict(e, bron=p.organisation, wie=_who(e, names)) for p, (es, _, _) in zip(sources, answers)
                          for e in es), key=lambda e: (e["at"], e["seq"]), reverse=True)
        statements = [s for _, (_, _, s) in zip(sources, answers) if s is not None]
        if statements:
            await self.store.write(statements)
        return {"entries": entries, "asked": [{"organisation": p.organisation, "answered": error is None, "error": error}
                                              for p, (_, error, _) in zip(sources, answers)]}

    async def _names(self, whose: Whose) -> dict[str, str]:
        """How his log names the client nodes it knows: his own, and his gemachtigden's (a client's certificate names
        no one); for a client this node acts for, the client's and this one."""
        me = self.me().did
        if whose.client_did is not None:
            return {me: "u (gemachtigde)", whose.client_did: f"de cliënt zelf (…{whose.client_did[-8:]})"}
        given = [c["aan"]["did"] for c in await self.consents() if c["doel"] == MACHTIGING and "did" in c["aan"]]
        return {**{did: f"uw gemachtigde (…{did[-8:]})" for did in given}, me: "u zelf"}

    async def _log(self, peer: Peer, whose: Whose, since: int) -> tuple[list[dict[str, Any]], str | None, Statement | None]:
        try:
            reply = await self.router.send(peer.did, AccessLogRequest(bsn=whose.bsn, since=since,
                                                                      machtiging=whose.machtiging))
        except PeerRefused as exc:
            return [], f"{exc.code}{' (' + exc.rule + ')' if exc.rule else ''}", None
        except NodeError as exc:
            return [], f"unreachable: {exc.__class__.__name__}", None
        result = reply.message
        if not isinstance(result, AccessLogResult):
            return [], "no access log in the answer", None
        warning, statement = await self._check_head(peer, result.head)
        entries = [e for e in map(_access_entry, result.entries) if e is not None]
        if len(entries) < len(result.entries):
            left_out = f"{len(result.entries) - len(entries)} of its {len(result.entries)} entries are not access-log entries"
            warning = f"{warning}; {left_out}" if warning else left_out
        return entries, warning, statement

    async def _check_head(self, peer: Peer, head: AuditHead | None) -> tuple[str | None, Statement | None]:
        """Hold the source to the audit head it gave last time: its log may only have grown."""
        if head is None:
            return None, None
        key = f"head:{_member_key(peer)}"
        row = await self.store.fetchone("SELECT value FROM settings WHERE name = ?", (key,))
        held = AuditHead(seq=int(json.loads(row[0])["seq"]), hash=bytes.fromhex(json.loads(row[0])["hash"]),
                         signature=bytes(64)) if row else None
        why = conflict(held, head)
        if why is not None:
            return f"its audit log does not continue what it showed before: {why}", None
        return None, _setting(key, json.dumps({"seq": head.seq, "hash": head.hash.hex()}))


def _kept_from(record: RecordVersion, peer: Peer, bsn: str | None) -> bool:
    """Whether his overview shows ``record`` from ``peer``. Its signature says who signed it, not that it is a
    record of a kind the signer keeps, that it fits that kind (the overview reads its dates; a field a later version
    added is no misfit), or that it is about him (``bsn``; None: a record about no one, a care offer)."""
    record_type = RECORD_TYPES.get(record.kind)
    if record_type is None or record_type.source_role != peer.role or record.data is None:
        return False
    try:
        data = read_record(record.kind, record.data)
    except ValidationError:
        return False
    return bsn is None or record_type.bsn(data) == bsn


_ENTRY_TEXT = ("event", "action", "result", "actor_did", "actor_role", "actor_org", "record", "trace_id", "rule",
               "request_sha256", "hash")
_ENTRY_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


def _access_entry(entry: dict[str, Any]) -> dict[str, Any] | None:
    """An entry of a source's access log as his node keeps and shows it, or None when it is not one: on the wire it
    is a map of anything, and one of the wrong shape spoiled the whole log (every source's entries are sorted
    together). Only the fields an entry has; each text as it may be shown (no line break, escape or bidi
    override of the source's choosing reaches his screen)."""
    seq, at = entry.get("seq"), entry.get("at")
    if type(seq) is not int or not isinstance(at, str) or not _ENTRY_AT.fullmatch(at):
        return None
    kept: dict[str, Any] = {"seq": seq, "at": at}
    for name in _ENTRY_TEXT:
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            return None
        kept[name] = None if value is None else shown(value, 200)
    return kept


_STANDING: Final = {True: "geldig", False: "ingetrokken", None: "niet bevestigd"}  # what his node answered


def _checked_sources(sources: list[str], purpose: str) -> list[str]:
    """A consent's sources in the forms a source reads as its own names (``kvk:…``, ``uzovi:…``, ``agb:…``, its did),
    which are also the ones his withdrawal can be addressed to; ``*`` in a machtiging only."""
    for source in sources:
        if source == EVERY_SOURCE and purpose == MACHTIGING or is_did(source):
            continue
        kind, _, value = source.partition(":")
        try:
            check_identifier(kind if kind in ("kvk", "uzovi", "agb") else "", value)
        except KeysError:
            raise ValidationError(f"a source is named kvk:…, uzovi:…, agb:… or by its did, not {shown(source, 40)}") from None
    if not sources:
        raise ValidationError("a consent names at least one source")
    return sources


def _member_key(peer: Peer) -> str:
    for name in ("uzovi", "agb", "kvk"):
        if name in peer.identifiers:
            return f"{name}:{peer.identifiers[name]}"
    return peer.did


_SELF = "self"


def _subscribed_key(namens: str | None) -> str:
    return f"{SUBSCRIBED}.{_SELF if namens is None else namens}"


def _grantee(consent: dict[str, Any]) -> str:
    """Whom a consent is handed to: the did of its party's node, or its identifier (``agb:…``)."""
    grantee = consent["ontvanger"]
    return str(grantee.get("did") or next(f"{k}:{v}" for k, v in grantee.items()))


def _digest(signed: bytes) -> str:
    return hashlib.sha256(signed).hexdigest()


def _setting(name: str, value: str) -> Statement:
    return ("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, value), False)


def _indicatie(record: RecordVersion, peer: Peer, today: str) -> dict[str, Any]:
    data = record.data or {}
    end = data.get("einddatum")
    return {"id": record.record_id, "soort": data.get("soortWlzindicatie"), "afgegeven": data.get("afgiftedatum"),
            "geldig_vanaf": data.get("ingangsdatum"), "geldig_tot": end,
            "geldig": data.get("ingangsdatum", "9999") <= today and (end is None or end >= today),
            "zorgzwaartepakketten": [z.get("zzpCode") for z in data.get("geindiceerdZorgzwaartepakket", [])],
            "zorgkantoor_bij_afgifte": data.get("initieelVerantwoordelijkZorgkantoor"), "bron": peer.organisation}


def _split(pairs: list[tuple[Peer, Answer]]) -> tuple[list[Peer], list[Answer]]:
    return [p for p, _ in pairs], [a for _, a in pairs]


STAFF = {"beheerder": "beheerder", "medewerker": "medewerker", "auditor": "auditor"}


def _who(entry: dict[str, Any], names: dict[str, str]) -> str:
    """Who looked, in plain Dutch: a person of an organisation by his function (not his name), a client's node
    (his own or his gemachtigde's as ``names`` says, another by the end of its did: a client's certificate names no
    one), else the party."""
    role, organisation = str(entry.get("actor_role", "")), str(entry.get("actor_org", ""))
    if role == "client":
        did = str(entry.get("actor_did", ""))
        return names.get(did) or f"een cliëntnode (…{did[-8:]})"
    return f"{STAFF[role]} van {organisation}" if role in STAFF else f"{organisation} ({role})"


def _zorgkantoor(record: RecordVersion, peer: Peer) -> dict[str, Any]:
    data = record.data or {}
    moved = (data.get("overdracht") or {}).get("verantwoordelijkZorgkantoor")
    return {"zorgkantoor": peer.organisation, "uzovi": data.get("verantwoordelijkZorgkantoor"),
            "sinds": data.get("verantwoordelijkheidIngangsdatum"), "tot": data.get("verantwoordelijkheidEinddatum"),
            "overgedragen_aan": moved, "indicatie": data.get("wlzIndicatieID")}


def _levering(record: RecordVersion, peer: Peer, today: str) -> dict[str, Any]:
    data = record.data or {}
    periods = data.get("leveringperiodes", [])
    running = any(p["ingangsdatum"] <= today and (p.get("einddatum") is None or p["einddatum"] >= today) for p in periods)
    ends = [p.get("einddatum") for p in periods]
    until = max(ends) if ends and all(ends) else None  # the care's last day, once every period has an end
    return {"aanbieder": peer.organisation, "status": "zorg loopt" if running else "geen zorg op dit moment",
            "tot": until, "periodes": periods}


def _eigen_bijdrage(record: RecordVersion, peer: Peer) -> dict[str, Any]:
    data = record.data or {}
    period = data.get("periode", {})
    return {"bron": peer.organisation, "bedragPerMaand": data.get("bedragPerMaand"), "vanaf": period.get("ingangsdatum"),
            "tot": period.get("einddatum"), "status": data.get("status")}


__all__ = ["ClientView", "SOURCE_REGISTERS"]
