"""The demo's care chain: care starts at the provider on its toewijzing, the zorgkantoor and the CAK hear of it,
the eigen bijdrage follows, care ends, and a melding is sent, answered and closed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from node.admin.client import AdminClient
from node.errors import UsageError

PROVIDER, OTHER_PROVIDER, ZK = "zorgaanbieder-12345678", "zorgaanbieder-87654321", "zorgkantoor-5151"
LEVERING_ID = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def levering(bemiddeling: dict[str, Any], periods: list[dict[str, str]]) -> dict[str, Any]:
    """Care for the bemiddeling's client at the provider of its first specificatie."""
    spec = bemiddeling["bemiddelingspecificatie"][0]
    return {"leveringID": LEVERING_ID, "bemiddelingspecificatieID": spec["bemiddelingspecificatieID"],
            "wlzIndicatieID": bemiddeling["wlzIndicatieID"], "bsn": bemiddeling["client"]["bsn"],
            "zorgkantoor": bemiddeling["verantwoordelijkZorgkantoor"], "zzpCode": spec["zzpCode"],
            "leveringsvorm": spec["leveringsvorm"], "leveringperiodes": periods, "verzoeken": []}


class CareChain:
    """Mixed into the demo, which gives it its admin clients, peer URLs, steps and settling."""

    admin: dict[str, AdminClient]
    url: dict[str, str]
    step: Callable[[str], None]
    explain: Callable[[str], None]
    query: Callable[..., list[dict[str, Any]]]
    _settle: Callable[..., None]
    expect: Callable[[str, object, object], None]

    def care_chain(self, bemiddeling: dict[str, Any], indicatie_id: str) -> None:
        provider, cak = self.admin[PROVIDER], self.admin["cak"]
        self.step("Care starts: the provider records the levering on the toewijzing it holds as evidence")
        self._refused_levering(bemiddeling)
        provider.call("POST", "/admin/v1/records/Levering", levering(bemiddeling, [{"ingangsdatum": "2026-10-01"}]))
        print(f"   {PROVIDER} records care from 2026-10-01 (Levering/{LEVERING_ID})")
        self._settle(names=(PROVIDER, "cak"))
        self._told("NIEUWE_LEVERING")

        self.step("The CAK keeps an eigen bijdrage from its rule table; the zorgkantoor sees that one exists, not the amount")
        self._eigen_bijdrage(cak)
        for record in self.query(ZK, "cak", "QEB-0001-ZK", {"wlzIndicatieID": indicatie_id, "uzovi": "5151"}):
            print(f"      fields the zorgkantoor sees: {', '.join(sorted(record['data']))}")

        self.step("Care ends: the last period gets an end date; the eigen bijdrage period closes")
        ended = [{"ingangsdatum": "2026-10-01", "einddatum": "2026-12-31", "reden": "verhuizing"}]
        provider.call("POST", "/admin/v1/records/Levering", levering(bemiddeling, ended))
        self._settle(names=(PROVIDER, "cak"))
        self._told("BEEINDIGDE_LEVERING")
        self._eigen_bijdrage(cak)

        self.step("A melding: the zorgkantoor reports an error in the indicatie; CIZ answers it within a working day")
        self._melding(indicatie_id)

    def _refused_levering(self, bemiddeling: dict[str, Any]) -> None:
        try:
            self.admin[OTHER_PROVIDER].call("POST", "/admin/v1/records/Levering",
                                            levering(bemiddeling, [{"ingangsdatum": "2026-10-01"}]))
            print(f"   {OTHER_PROVIDER} recorded care without a toewijzing: THIS SHOULD NOT HAPPEN")
        except UsageError as exc:
            print(f"   {OTHER_PROVIDER}, which holds no toewijzing for this client: REFUSED {exc}")
            self.explain(str(exc))

    def _told(self, event: str) -> None:
        for name in (ZK, "cak"):
            told = [row for row in self.admin[name].call("GET", "/admin/v1/inbox")["inbox"]
                    if row["event_type"].startswith(event)]
            for row in told:
                print(f"   {name:24} got {row['event_type']:34} from {row['sender_org']:20} {row['status']}: {row['detail']}")
            self.expect(f"{name} told of {event}", bool(told), True)

    def _eigen_bijdrage(self, cak: AdminClient) -> None:
        for record in cak.call("GET", "/admin/v1/records/EigenBijdrage")["records"]:
            data = record["data"]
            period = f"{data['periode']['ingangsdatum']} .. {data['periode'].get('einddatum', '(open)')}"
            print(f"   cak EigenBijdrage v{record['version']}: {data['status']:10} {period}, "
                  f"EUR {data['bedragPerMaand']} per month (illustrative)")

    def _melding(self, indicatie_id: str) -> None:
        zk, ciz = self.admin[ZK], self.admin["ciz"]
        record = f"WlzIndicatie/{indicatie_id}"
        sent = zk.call("POST", "/admin/v1/melding", {"peer": self.url["ciz"], "record": record, "rule": "IRG0012",
                                                      "description": "ingangsdatum zorgzwaartepakket ligt voor het besluit"})
        print(f"   {ZK} sends melding {sent['melding_id']}: {sent['status']} in its outbox")
        other = self.admin[OTHER_PROVIDER].call("POST", "/admin/v1/melding", {
            "peer": self.url["ciz"], "record": record, "rule": "IRG0012", "description": ""})
        self._settle(names=(ZK, OTHER_PROVIDER))
        for row in ciz.call("GET", "/admin/v1/meldingen?state=open")["meldingen"]:
            print(f"   ciz received {row['regel']} about {row['record']} from {row['melderOrganisatie']}: "
                  f"{row['status']}, deadline {row['termijn']}")
        for status, reason in (("in_behandeling", None), ("afgehandeld", "datum hersteld in een nieuwe versie")):
            ciz.call("POST", f"/admin/v1/meldingen/{sent['melding_id']}/answer", {"status": status, "reason": reason})
            print(f"   ciz: {status}{' - ' + reason if reason else ''}")
            self._settle(names=("ciz",))
        self._answered(ZK, sent["melding_id"])
        self._answered(OTHER_PROVIDER, other["melding_id"])

    def _answered(self, name: str, melding_id: str, timeout: float = 10) -> None:
        reporter = self.admin[name]
        deadline = time.monotonic() + timeout
        while True:
            [row] = [m for m in reporter.call("GET", "/admin/v1/meldingen/sent")["meldingen"] if m["melding_id"] == melding_id]
            if row["status"] in ("afgehandeld", "afgewezen", "geweigerd") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        detail = row["reden"] or row["last_error"] or ""
        print(f"   {name} sees its melding: {row['status']} ({detail})")
        self.explain(detail)


__all__ = ["CareChain"]
