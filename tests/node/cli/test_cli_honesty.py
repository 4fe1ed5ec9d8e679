"""The CLI shows personal data only when asked, takes --json anywhere, stops quietly in a pipe, and prints a
JSON Schema of each record type that says what the node's own validators say."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import jsonschema
import pytest

from node.cli import main
from node.errors import ValidationError
from node.store.records import RECORD_TYPES, json_schema, validate_record
from tests.node.kit import BSN0, IND0, Network, put, sample


@pytest.mark.asyncio
async def test_record_get_and_query_mask_personal_data_unless_asked(network: Network, capsys) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    home = str(ciz.home.path)
    assert await asyncio.to_thread(main, ["record", "get", home, "WlzIndicatie", IND0]) == 0
    masked = capsys.readouterr().out
    assert BSN0 not in masked and "Jansen" not in masked and '"bsn": "***"' in masked
    assert await asyncio.to_thread(main, ["record", "get", home, "WlzIndicatie", IND0, "--show-personal-data"]) == 0
    assert BSN0 in capsys.readouterr().out
    args = ["query", str(zk.home.path), "--peer", ciz.url, "QIR-0001-ZKi", f"wlzIndicatieID={IND0}", "uzovi=5151"]
    assert await asyncio.to_thread(main, args) == 0
    assert BSN0 not in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*args, "--json"]) == 0  # --json after the subcommand
    out = json.loads(capsys.readouterr().out)
    assert out["records"][0]["data"]["bsn"] == "***" and out["records"][0]["signed"]
    assert await asyncio.to_thread(main, ["--json", *args, "--show-personal-data"]) == 0  # ... and before it
    assert json.loads(capsys.readouterr().out)["records"][0]["data"]["bsn"] == BSN0


def test_json_works_before_and_after_the_subcommand(capsys) -> None:
    assert main(["--json", "schema", "Zorgaanbod"]) == 0
    before = capsys.readouterr().out
    assert main(["schema", "Zorgaanbod", "--json"]) == 0
    assert capsys.readouterr().out == before


def test_a_pipe_that_closes_early_ends_the_command_quietly() -> None:
    result = subprocess.run(f"{sys.executable} -m node schema WlzIndicatie | head -1", shell=True, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout == "{\n" and result.stderr == ""


@pytest.mark.parametrize("kind", list(RECORD_TYPES))
def test_the_json_schema_agrees_with_the_validators(kind: str) -> None:
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    section = {"WlzIndicatie": "wlzIndicaties", "Bemiddeling": "bemiddelingen"}.get(kind)
    good = sample(section, 0) if section else {
        "Levering": {"leveringID": "5d1e7a3c-2b4f-4c6e-9a8b-1c3e5f7a9b2d", "bemiddelingspecificatieID":
                     "d9cf7a0c-449a-4166-8186-68568c529b48", "bsn": BSN0, "zorgkantoor": "5151",
                     "leveringperiodes": [{"ingangsdatum": "2026-10-01"}], "verzoeken": []},
        "VerzoekAntwoord": {"antwoordID": "3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f", "verzoekID": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
                            "leveringID": "5d1e7a3c-2b4f-4c6e-9a8b-1c3e5f7a9b2d", "aanvrager": "12345678", "bsn": BSN0,
                            "status": "geaccepteerd", "datum": "2026-10-16"},
        "EigenBijdrage": {"eigenBijdrageID": "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a", "bsn": BSN0, "zorgkantoor": "5151",
                          "periode": {"ingangsdatum": "2026-10-01"}, "bedragPerMaand": 876, "zorgperiodes": [],
                          "status": "lopend"},
        "Zorgaanbod": {"zorgaanbodID": "5d1e7a3c-2b4f-4c6e-9a8b-1c3e5f7a9b2d", "instelling": "12345678", "regio": "5151",
                       "zzpCodes": ["5VV"], "leveringsvormen": ["1"], "vrijeCapaciteit": 3, "peildatum": "2026-11-01"},
        "Toestemming": {"toestemmingID": "0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f", "bsn": BSN0, "ontvanger": {"agb": "87654321"},
                        "bronnen": ["kvk:62253778"], "templates": ["GEGEVENS-MET-TOESTEMMING"], "doel": "second opinion",
                        "geldigTot": "2099-12-31"},
        "Melding": {"meldingID": "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b", "record": "WlzIndicatie/31835d1d-3933-4ffe-9f57-8985f41fae4a",
                    "regel": "IRG0012", "melder": "did:key:z6Mk", "melderOrganisatie": "Zorgkantoor Noord",
                    "melderRol": "zorgkantoor", "antwoordAan": {"idType": "UZOVI", "id": "5151"}, "status": "ontvangen",
                    "ontvangen": "2026-11-27", "termijn": "2026-11-30"},
    }[kind]
    validate_record(kind, good)
    jsonschema.validate(good, schema)
    id_field = RECORD_TYPES[kind].id_field
    for bad in ({**good, "unknown": 1}, {**good, id_field: "not-a-uuid"}, {k: v for k, v in good.items() if k != id_field}):
        with pytest.raises(ValidationError):
            validate_record(kind, bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_text_for_a_person_carries_no_control_character_a_peer_could_have_put_in_it(capsys) -> None:
    """Commands print what peers sent (records, refusals, access-log entries): an escape sequence there would act on
    the terminal (clear it, retitle it, hide what follows), a bidi override would reorder what he reads. Line breaks
    and tabs are the command's own layout and stay; --json escapes everything already."""
    from argparse import Namespace

    from node.cli.common import emit

    emit(Namespace(), {}, "CIZ\x1b[2J: geweigerd\u202e\x07\r\nregel\tUCIR-0002\x9b")
    assert capsys.readouterr().out == "CIZ\\u001b[2J: geweigerd\\u202e\\u0007\\u000d\nregel\tUCIR-0002\\u009b\n"
    emit(Namespace(json=True), {"reason": "\x1b[2J"}, "")
    assert "\\u001b[2J" in capsys.readouterr().out
