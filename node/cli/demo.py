"""``iwlz demo``: a local network of separate node processes on 127.0.0.1, with the sample data and scenarios.

The parties follow shared/fixtures/iwlz-sample.json: CIZ, CAK, zorgkantoren
5151 and 5050, zorgaanbieders 12345678 and 87654321, a client and his daughter, his gemachtigde.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from node.admin.client import AdminClient
from node.cli.client import render_access_log, render_overview
from node.cli.demo_care import CareChain
from node.errors import NodeError, UsageError
from node.home import NetworkDir, NodeHome
from node.policy.matrix import load_uitleg
from node.store.records import masked

PARTIES: dict[str, tuple[str, str | None, dict[str, str], str | None]] = {
    "ciz": ("ciz", "CIZ", {"kvk": "62253778"}, None),
    "cak": ("cak", "CAK", {"kvk": "27364237"}, None),
    "zorgkantoor-5151": ("zorgkantoor", "Zorgkantoor Noord", {"uzovi": "5151"}, None),
    "zorgkantoor-5050": ("zorgkantoor", "Zorgkantoor Zuid", {"uzovi": "5050"}, None),
    "zorgaanbieder-12345678": ("zorgaanbieder", "Zorggroep De Linde", {"agb": "12345678"}, "5151"),
    "zorgaanbieder-87654321": ("zorgaanbieder", "Thuiszorg Het Anker", {"agb": "87654321"}, "5151"),
    "client-jansen": ("client", None, {"bsn": "106658037"}, "5151"),  # a client's node takes no name
    "dochter-jansen": ("client", None, {"bsn": "737459086"}, "5151"),  # his daughter, his gemachtigde
}


def sample_data() -> dict[str, Any]:
    here = Path(__file__).resolve().parent / "sample.json"
    return json.loads(here.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _prepare(root: Path) -> dict[str, NodeHome]:
    root.mkdir(parents=True, exist_ok=True)
    net = NetworkDir(root / "network")
    if not net.info_path.exists():
        net = NetworkDir.create(root / "network", "iwlz-demo")
    homes = {}
    for name, (role, org, ids, region) in PARTIES.items():
        home = NodeHome(root / name)
        if not home.config_path.exists():
            home = NodeHome.create(root / name, role=role, name=org, identifiers=ids, region=region)
        if not home.certificate_path.exists():
            net.issue(home, now=int(time.time()), days=365)
        homes[name] = home
    return homes


def _start(homes: dict[str, NodeHome], base_port: int, log_level: str) -> dict[str, subprocess.Popen[str]]:
    procs: dict[str, subprocess.Popen[str]] = {}
    first_url: str | None = None
    for i, (name, home) in enumerate(homes.items()):
        (home.path / "run.json").unlink(missing_ok=True)
        # One process per node: eight nodes already share this machine's cores.
        cmd = [sys.executable, "-m", "node", "run", str(home.path), "--log-level", log_level, "--no-mdns",
               "--gossip-interval", "1", "--workers", "1", "--port", str(base_port + i if base_port else 0),
               "--admin-port", str(base_port + 100 + i if base_port else 0)]
        if first_url:
            cmd += ["--bootstrap", first_url]
        log = open(home.path / "node.log", "a", encoding="utf-8")
        proc = procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("ready "):
            raise NodeError(f"{name} did not start; see {home.path / 'node.log'}")
        first_url = first_url or line.split()[1]
    return procs


def _stop(procs: dict[str, subprocess.Popen[str]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Demo(CareChain):
    """The story, told through each party's admin API: of local processes (iwlz demo) or of a running network's
    nodes anywhere (iwlz demo --against, e.g. the containers of docker/e2e.sh). What the story expects and does
    not see is kept in ``failures``."""

    def __init__(self, admin: dict[str, AdminClient]) -> None:
        self.admin = admin
        self.uitleg: dict[str, str] = load_uitleg()["regels"]
        self.url = {name: client.info["url"] for name, client in self.admin.items()}
        self.failures: list[str] = []

    def expect(self, what: str, seen: object, wanted: object) -> None:
        if seen != wanted:
            self.failures.append(f"{what}: saw {seen}, expected {wanted}")

    def step(self, title: str) -> None:
        print(f"\n== {title}")

    def query(self, who: str, peer: str, template: str, params: dict[str, str], evidence: list[str] | None = None,
              *, expect: int | str | None = None) -> list[dict[str, Any]]:
        """``expect``: how many records the story should see, or the rule that should refuse it."""
        try:
            result = self.admin[who].call("POST", "/admin/v1/query", {"peer": self.url[peer], "template": template,
                                                                        "params": params, "evidence": evidence or []})
        except UsageError as exc:
            print(f"   {who} -> {peer} {template}: REFUSED {exc}")
            self.explain(str(exc))
            if expect is not None:  # the refusal names the rule expected, or it is a failure
                refused_by = expect if isinstance(expect, str) and f"rule {expect}" in str(exc) else str(exc)
                self.expect(f"{who} -> {peer} {template}", refused_by, expect)
            return []
        records = result["records"]
        if expect is not None:
            self.expect(f"{who} -> {peer} {template}", len(records), expect)
        print(f"   {who} -> {peer} {template}: {len(records)} record(s)"
              + "".join(f"\n      {r['kind']}/{r['id']} v{r['version']}" for r in records))
        return records  # type: ignore[no-any-return]

    def explain(self, text: str) -> None:
        """A rule code shown to a person comes with what it means (node/policy/uitleg.json)."""
        for code, meaning in self.uitleg.items():
            if f"rule {code}" in text or f"{code}:" in text:
                print(f"      ({code}: {meaning})")

    def web_interface(self, keep_running: bool) -> None:
        self.step("The web interface, for the people of each organisation")
        name = "zorgkantoor-5151"
        url = f"{self.admin[name].base}/beheer"
        if keep_running:
            taken = {u["name"] for u in self.admin[name].call("GET", "/admin/v1/users")["users"]}
            user = next(f"Demo medewerker {n}" for n in range(1, 1000) if f"Demo medewerker {n}" not in taken)
            token = self.admin[name].call("POST", "/admin/v1/users", {"name": user, "role": "medewerker"})["token"]
            print(f"   {name}: open {url}#code={token}\n   (signed in as {user!r}, a medewerker; the code is shown once)")
        else:
            print(f"   each node serves it at /beheer on its admin listener, e.g. {url} while it runs;\n"
                  f"   a person signs in with his own code: iwlz user add HOME NAME --role medewerker")

    def _settle(self, timeout: float = 60, names: tuple[str, ...] = ("ciz", "zorgkantoor-5151")) -> None:
        """Wait until the sources have delivered what they had to say."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = sum(self.admin[n].call("GET", "/admin/v1/outbox/stats").get("pending", 0) for n in names)
            received = sum(1 for n in self.admin for r in self.admin[n].call("GET", "/admin/v1/inbox")["inbox"]
                           if r["status"] in ("received", "fetch-failed"))
            if not pending and not received:
                return
            time.sleep(0.3)
        print(f"   (after {timeout:.0f} s, {pending} notification(s) still pending and {received} not yet acted on)")

    def run(self) -> None:
        data = sample_data()
        ind, bem = data["wlzIndicaties"], data["bemiddelingen"]
        self.step("CIZ registers the indicaties; zorgkantoor 5151 registers its bemiddelingen; providers publish their zorgaanbod")
        for record in ind:
            self.admin["ciz"].call("POST", "/admin/v1/records/WlzIndicatie", record)
        for record in bem:
            self.admin["zorgkantoor-5151"].call("POST", "/admin/v1/records/Bemiddeling", record)
        for name, offer in data["zorgaanbod"].items():
            self.admin[name].call("POST", "/admin/v1/records/Zorgaanbod", offer)
        print(f"   {len(ind)} indicaties at CIZ, {len(bem)} bemiddelingen at 5151")

        i0 = ind[0]["wlzIndicatieID"]
        self.step("Scenario 1-2: the responsible zorgkantoor reads the indicatie; another one cannot")
        self.query("zorgkantoor-5151", "ciz", "QIR-0001-ZKi", {"wlzIndicatieID": i0, "uzovi": "5151"}, expect=1)
        self.query("zorgkantoor-5050", "ciz", "QIR-0001-ZKi", {"wlzIndicatieID": i0, "uzovi": "5050"}, expect=0)
        self.query("zorgkantoor-5050", "ciz", "QIR-0001-ZKi", {"wlzIndicatieID": i0, "uzovi": "5151"},
                   expect="UCIR-0001")

        spec = bem[0]["bemiddelingspecificatie"][0]["bemiddelingspecificatieID"]
        self.step("Scenario 4-6: the provider reads its Bemiddelingspecificatie and shows it to CIZ as evidence")
        found = self.query("zorgaanbieder-12345678", "zorgkantoor-5151", "QBR-0001-ZA",
                           {"bemiddelingspecificatieID": spec, "instelling": "12345678"}, expect=1)
        evidence = [r["signed"] for r in found]
        self.query("zorgaanbieder-12345678", "ciz", "QIR-0002-ZA", {"wlzIndicatieID": i0, "agb": "12345678"}, evidence,
                   expect=1)
        self.query("zorgaanbieder-87654321", "ciz", "QIR-0002-ZA", {"wlzIndicatieID": i0, "agb": "87654321"}, evidence,
                   expect="UCIR-0002")
        self.query("zorgaanbieder-87654321", "zorgkantoor-5151", "QBR-0001-ZA",
                   {"bemiddelingspecificatieID": spec, "instelling": "12345678"}, expect="QBR-0001-ZA")

        self.step("Scenario 8: the client moves; an Overdracht to 5050 lets 5050 read the indicatie")
        moved = copy.deepcopy(bem[1])
        moved["overdracht"] = data["overdracht"]
        self.admin["zorgkantoor-5151"].call("POST", "/admin/v1/records/Bemiddeling", moved)
        found = self.query("zorgkantoor-5050", "zorgkantoor-5151", "QBR-0007-ZK",
                           {"bemiddelingID": moved["bemiddelingID"], "uzovi": "5050"}, expect=1)
        self.query("zorgkantoor-5050", "ciz", "QIR-0001-ZKi", {"wlzIndicatieID": moved["wlzIndicatieID"], "uzovi": "5050"},
                   [r["signed"] for r in found], expect=1)

        self.step("Zorgaanbod: any member reads a provider's care offer")
        self.query("cak", "zorgaanbieder-12345678", "ZORGAANBOD", {}, expect=1)

        self.step("The client sees his own data and who looked at it")
        self.query("client-jansen", "ciz", "CLIENT-EIGEN-GEGEVENS", {"bsn": "106658037"}, expect=1)
        self.query("client-jansen", "zorgkantoor-5151", "CLIENT-EIGEN-GEGEVENS", {"bsn": "106658037"}, expect=1)
        log = self.admin["client-jansen"].call("POST", "/admin/v1/access-log", {"peer": self.url["ciz"]})
        for entry in log["entries"]:
            print(f"      {entry['at']} {entry['actor_org']:22} {entry['event']:28} {entry['result']:8} {entry['rule'] or ''}")

        self.step("Notifications: each source told the parties that must know, and they fetched the records")
        self._settle()
        for name in ("ciz", "zorgkantoor-5151"):
            stats = self.admin[name].call("GET", "/admin/v1/outbox/stats")
            print(f"   {name:24} outbox {stats}")
            self.expect(f"{name} outbox pending and dead", (stats.get("pending"), stats.get("dead")), (0, 0))
        for name in ("zorgkantoor-5151", "zorgkantoor-5050", "zorgaanbieder-12345678"):
            for row in self.admin[name].call("GET", "/admin/v1/inbox")["inbox"]:
                print(f"   {name:24} got {row['event_type']:46} from {row['sender_org']:18} {row['status']}")

        self.care_chain(bem[0], i0)
        self.client_at_the_centre()

        self.step("Every node's audit chain verifies")
        for name, admin in self.admin.items():
            result = admin.call("GET", "/admin/v1/audit/verify")
            print(f"   {name:24} {'intact' if result['intact'] else 'BROKEN'} ({result['entries']} entries)")
            self.expect(f"{name} audit chain", result["intact"], True)


    def client_at_the_centre(self) -> None:
        client = self.admin["client-jansen"]
        self._wait_for_peers("client-jansen", 6)
        self.step("The client at the centre: his data from every source, in one view (iwlz client overview)")
        print(indent(render_overview(client.call("GET", "/admin/v1/client/overview?seen=1"))))
        self.step("Who looked at his data, at every source, newest first (iwlz client access-log)")
        print(indent(render_access_log(client.call("GET", "/admin/v1/client/access-log"))))
        self.step("Consent: the client lets a provider outside the matrix read his data at CIZ, then withdraws it")
        query = {"peer": self.url["ciz"], "template": "GEGEVENS-MET-TOESTEMMING",
                 "params": {"bsn": "106658037", "doel": "second opinion"}, "held_evidence": True}
        self._try("zorgaanbieder-87654321", query, "before any consent", allowed=False)
        consent = client.call("POST", "/admin/v1/client/consents", {
            "to": "agb:87654321", "templates": ["GEGEVENS-MET-TOESTEMMING"], "purpose": "second opinion",
            "until": "2099-12-31", "sources": ["kvk:62253778"]})
        print(f"   client-jansen gives consent {consent['id']} to AGB 87654321 (handed over: {consent['handed_over']})")
        self._try("zorgaanbieder-87654321", query, "with his consent", allowed=True)
        client.call("POST", f"/admin/v1/client/consents/{consent['id']}/revoke", {})
        print("   client-jansen withdraws it; CIZ hears of it through his outbox, and the provider lets go of the copy "
              "it held")
        self._settle(names=("client-jansen",))
        self._try("zorgaanbieder-87654321", query, "after he withdrew it", allowed=False)
        print(f"   his own page: {client.base}/mijn (sign in with the node's admin token, or a code of iwlz user add)")
        self.gemachtigde()

    def gemachtigde(self) -> None:
        client, dochter = self.admin["client-jansen"], self.admin["dochter-jansen"]
        self.step("His daughter, his gemachtigde: her own node sees what he sees, for him (iwlz machtiging grant, "
                  "iwlz client overview --namens)")
        her = dochter.call("GET", "/admin/v1/client/namens")["deze_node"]
        given = client.call("POST", "/admin/v1/client/machtigingen", {"to": her["did"], "endpoint": her["endpoint"],
                                                                       "until": "2099-12-31"})
        print(f"   client-jansen gives machtiging {given['id']} to the node of his daughter (handed over: "
              f"{given['handed_over']})")
        self._wait_for_peers("dochter-jansen", 6)
        view = dochter.call("GET", f"/admin/v1/client/overview?namens={given['id']}")
        print(indent(render_overview(masked(view))))
        self.expect("his daughter sees his indicatie", len(view["indicaties"]), 1)
        log = client.call("GET", "/admin/v1/client/access-log")
        seen = [e for e in log["entries"] if e["wie"].startswith("uw gemachtigde")]
        print(indent("\n".join(render_access_log({"entries": seen[:3], "asked": []}).splitlines()[1:])))
        self.expect("his access log shows that his gemachtigde looked", bool(seen), True)
        followed = dochter.call("POST", "/admin/v1/client/follow", {"namens": given["id"]})["sources"]
        print("   dochter-jansen follows his changes (iwlz client follow --namens) at "
              + ", ".join(s["organisation"] for s in followed if s.get("subscription_id")))
        self._change_his_indicatie("2027-12-31")
        heard = dochter.call("GET", f"/admin/v1/client/overview?namens={given['id']}")["wijzigingen"]
        print(f"   CIZ changes his indicatie; her node hears of it: {', '.join(c['bron'] + ' ' + c['gebeurtenis'] for c in heard)}")
        self.expect("his daughter hears of the change to his indicatie", [c["gebeurtenis"] for c in heard],
                    ["GEWIJZIGDE_INDICATIE_ZORGKANTOOR"])
        client.call("POST", f"/admin/v1/client/consents/{given['id']}/revoke", {})
        print("   client-jansen withdraws it; every source of his records hears of it through his outbox")
        self._settle(names=("client-jansen",))
        self._change_his_indicatie("2028-12-31")
        after = dochter.call("GET", f"/admin/v1/client/overview?namens={given['id']}")
        print(f"   CIZ changes his indicatie again; her node hears of it no more: {len(after['wijzigingen'])} change(s) "
              "heard in all")
        self.expect("his daughter after he withdrew it hears of no change", len(after["wijzigingen"]), 1)
        refused = [a for a in after["asked"] if not a["answered"]]
        print(f"   dochter-jansen after he withdrew it: {len(refused)} of {len(after['asked'])} sources refuse "
              f"({refused[0]['error'] if refused else '-'})")
        self.expect("his daughter after he withdrew the machtiging", len(refused), len(after["asked"]))
        listed = dochter.call("GET", "/admin/v1/client/namens")["namens"]
        print(f"   dochter-jansen's node asks his whether it stands: {', '.join(m['staat'] for m in listed) or '-'} "
              "(it lets go of it: it names his BSN)")
        self.expect("her node learns from his that he withdrew it", [m["staat"] for m in listed], ["ingetrokken"])

    def _change_his_indicatie(self, einddatum: str) -> None:
        his = next(r for r in sample_data()["wlzIndicaties"] if r["bsn"] == "106658037")
        self.admin["ciz"].call("POST", "/admin/v1/records/WlzIndicatie", dict(his, einddatum=einddatum))
        self._settle(names=("ciz",))

    def _try(self, who: str, query: dict[str, Any], when: str, *, allowed: bool) -> None:
        try:
            records = self.admin[who].call("POST", "/admin/v1/query", query)["records"]
            print(f"   {who} {when}: {len(records)} record(s)")
            self.expect(f"{who} {when}", "allowed", "allowed" if allowed else "refused")
        except UsageError as exc:
            print(f"   {who} {when}: REFUSED {exc}")
            self.explain(str(exc))
            self.expect(f"{who} {when}", "refused", "allowed" if allowed else "refused")

    def _wait_for_peers(self, name: str, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.admin[name].call("GET", "/admin/v1/peers")["peers"]) < count and time.monotonic() < deadline:
            time.sleep(0.2)


def indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


def run_demo(root: Path, *, keep_running: bool, base_port: int = 0, log_level: str = "warning") -> int:
    homes = _prepare(root)
    procs = _start(homes, base_port, log_level)
    failures: list[str] = []
    try:
        demo = Demo({name: AdminClient(home) for name, home in homes.items()})
        print("iwlz demo network: " + ", ".join(f"{n} {demo.url[n]}" for n in homes))
        demo.run()
        demo.web_interface(keep_running)
        failures = demo.failures
        report(failures)
        if keep_running:
            print(f"\nThe network keeps running (homes in {root}); try: iwlz peers {root / 'ciz'}\nPress Ctrl-C to stop.")
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            while all(p.poll() is None for p in procs.values()):
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(procs)
    return 1 if failures else 0


def run_demo_against(parties: Path) -> int:
    """The story against nodes that run elsewhere: ``parties`` is a JSON file {name: {"admin": URL, "token": T}}
    naming each party of PARTIES (docker/e2e.sh writes it for the containers of a swarm stack)."""
    try:
        given = json.loads(parties.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {parties}: {exc.__class__.__name__}") from exc
    missing = sorted(set(PARTIES) - set(given))
    if missing:
        raise UsageError(f"{parties} names no {', '.join(missing)}")
    demo = Demo({name: AdminClient.at(given[name]["admin"], given[name]["token"]) for name in PARTIES})
    print("iwlz demo against: " + ", ".join(f"{n} {demo.url[n]}" for n in PARTIES))
    demo.run()
    report(demo.failures)
    return 1 if demo.failures else 0


def report(failures: list[str]) -> None:
    if failures:
        print("\nThe story did not go as expected:\n" + "\n".join(f"   {f}" for f in failures))
    else:
        print("\nEvery step went as the story expects.")


__all__ = ["run_demo", "run_demo_against", "PARTIES"]
