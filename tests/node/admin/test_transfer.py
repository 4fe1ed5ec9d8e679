"""iwlz import and export: JSON Lines and CSV, against a running node and a stopped one, idempotent, with the lines
that fail in a rejects file, and an export that import reads back."""

from __future__ import annotations

import asyncio
import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from bench import data
from node.cli import main
from node.service import Node
from node.store.records import strip_nulls
from tests.node.kit import Network

pytestmark = pytest.mark.asyncio


async def iwlz(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def stored(node: Node) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    after = ("", 0)
    while page := await node.registers.page("WlzIndicatie", after=after):
        out.update({v.record_id: v.data for v in page})
        after = (page[-1].record_id, 0)
    return out


async def versions(node: Node) -> int:
    row = await node.store.fetchone("SELECT count(*) FROM records")
    return int(row[0])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_import_is_idempotent_and_export_round_trips(network: Network, tmp_path: Path, fmt: str,
                                                           capsys: Any) -> None:
    (ciz,) = await network.start("ciz")
    home = str(ciz.home.path)
    source = tmp_path / f"in.{fmt}"
    written = list(data.indicaties(2100, seed=3))  # more than one batch
    (data.write_csv if fmt == "csv" else data.write_jsonl)(source, iter(written))
    assert await iwlz("--json", "import", home, "WlzIndicatie", str(source)) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["lines"], first["created"], first["rejected"]) == (2100, 2100, 0)
    assert await stored(ciz) == {r["wlzIndicatieID"]: strip_nulls(r) for r in written}
    # The same file again: nothing new. One changed record: one new version.
    before = await versions(ciz)
    assert await iwlz("--json", "import", home, "WlzIndicatie", str(source)) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2100)
    assert await versions(ciz) == before
    # Export, then import the export into another node: the same register.
    out = tmp_path / f"out.{fmt}"
    assert await iwlz("export", home, "WlzIndicatie", "--format", fmt, "--output", str(out)) == 0
    target = Node(network.home_for("ciz", "ciz-copy"), mdns=False, gossip_interval=0)
    await target.start()
    try:
        assert await iwlz("--json", "import", str(target.home.path), "WlzIndicatie", str(out)) == 0
        capsys.readouterr()
        assert await stored(target) == await stored(ciz)
    finally:
        await target.stop()
    # Each exported client sees it in his access log: one read entry per record.
    exported = [e for e in await ciz.audit.entries(limit=100_000) if e.event == "admin.export"]
    assert len(exported) == 2100 and all(e.subject for e in exported)


async def test_bad_lines_end_up_in_the_rejects_file_with_their_reason(network: Network, tmp_path: Path,
                                                                      capsys: Any) -> None:
    (ciz,) = await network.start("ciz")
    good = list(data.indicaties(5, seed=4))
    wrong_bsn = dict(good[1], bsn="123456789")
    unknown_field = dict(good[2], kleur="blauw")
    lines = [json.dumps(good[0]), "{not json", json.dumps(wrong_bsn), json.dumps(good[3]), json.dumps(unknown_field),
             json.dumps(good[4])]
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    assert await iwlz("--json", "import", str(ciz.home.path), "WlzIndicatie", str(source), "--rejects", str(rejects)) == 4
    summary = json.loads(capsys.readouterr().out)
    assert (summary["created"], summary["rejected"]) == (3, 3)
    refused = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in refused] == [2, 3, 5]
    assert "not JSON" in refused[0]["reason"] and refused[0]["input"] == "{not json"
    assert "bsn" in refused[1]["reason"] and "123456789" not in refused[1]["reason"]
    assert "kleur" in refused[2]["reason"] and json.loads(refused[2]["input"])["kleur"] == "blauw"
    assert set(await stored(ciz)) == {good[i]["wlzIndicatieID"] for i in (0, 3, 4)}


@pytest.mark.parametrize("count", [10, 400])  # a batch prepared in the node's process, and one in the preparing process
async def test_a_line_with_half_a_surrogate_pair_is_rejected_and_the_rest_stored(network: Network, tmp_path: Path,
                                                                                  capsys: Any, count: int) -> None:
    """JSON can spell a lone surrogate (\\ud800), which has no UTF-8. Such a line made the node's answer to its
    whole batch "could not handle this request": the import stopped with nothing stored."""
    (ciz,) = await network.start("ciz")
    good = list(data.indicaties(count, seed=count))
    lines = [json.dumps(record) for record in good]
    lines[2] = lines[2].replace('"besluitnummer": "', '"besluitnummer": "\\ud800')
    lines[4] = lines[4].replace('"besluitnummer": "', '"\\udfff": 1, "besluitnummer": "')  # a field's name
    lines[5] = json.dumps({"id": "\udc00", "version": 2, "record": None, "deleted": True})  # a delete, as exported
    source = tmp_path / "surrogate.jsonl"
    source.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    assert await iwlz("--json", "import", str(ciz.home.path), "WlzIndicatie", str(source), "--rejects", str(rejects)) == 4
    summary = json.loads(capsys.readouterr().out)
    assert (summary["created"], summary["rejected"]) == (count - 3, 3)
    refused = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in refused] == [
        (3, "besluitnummer is not a valid text"), (5, "record has unknown field(s): \\udfff"),
        (6, "delete is not a valid record id")]
    assert set(await stored(ciz)) == {r["wlzIndicatieID"] for n, r in enumerate(good) if n not in (2, 4, 5)}


async def test_a_jsonl_line_goes_to_the_node_as_it_is_written(network: Network, tmp_path: Path, capsys: Any) -> None:
    """The import sends each record line's own JSON text on: a byte-order mark, Windows line ends, spaces around
    the record, non-ASCII letters and escapes in the file reach the register as the record they spell."""
    (ciz,) = await network.start("ciz")
    records = list(data.indicaties(4, seed=6))
    records[0]["client"]["geslachtsnaam"] = "Çelik-Öztürk"
    records[1]["client"]["geslachtsnaam"] = "Jansén"  # json.dumps writes it as an escape: Jans\\u00e9n
    texts = ["  " + json.dumps(records[0], ensure_ascii=False) + " ", json.dumps(records[1]),
             json.dumps(records[2], indent=1).replace("\n", " "), json.dumps(records[3])]
    assert "\\u00e9" in texts[1]
    source = tmp_path / "windows.jsonl"
    source.write_bytes("\ufeff".encode() + "\r\n".join(texts).encode() + b"\r\n")
    assert await iwlz("--json", "import", str(ciz.home.path), "WlzIndicatie", str(source)) == 0
    assert json.loads(capsys.readouterr().out)["created"] == 4
    assert await stored(ciz) == {r["wlzIndicatieID"]: strip_nulls(r) for r in records}


async def test_csv_rejects_keep_the_row_and_the_columns(network: Network, tmp_path: Path, capsys: Any) -> None:
    (ciz,) = await network.start("ciz")
    source = tmp_path / "in.csv"
    data.write_csv(source, data.indicaties(3, seed=5))
    with source.open() as f:
        rows = list(csv.DictReader(f))
    rows[1]["meerzorg"] = "misschien"
    with source.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    rejects = tmp_path / "rejects.csv"
    assert await iwlz("import", str(ciz.home.path), "WlzIndicatie", str(source), "--rejects", str(rejects)) == 4
    capsys.readouterr()
    with rejects.open() as f:
        [refused] = list(csv.DictReader(f))
    assert (refused["line"], refused["meerzorg"], refused["wlzIndicatieID"]) == ("3", "misschien", rows[1]["wlzIndicatieID"])
    assert "meerzorg" in refused["reason"]


async def test_import_and_export_with_the_node_stopped(network: Network, tmp_path: Path, capsys: Any) -> None:
    (ciz,) = await network.start("ciz")
    await ciz.stop()
    network.nodes.pop("ciz")
    source = tmp_path / "in.jsonl"
    data.write_jsonl(source, data.indicaties(50, seed=6))
    home = str(ciz.home.path)
    assert await iwlz("--json", "import", home, "WlzIndicatie", str(source)) == 0
    assert json.loads(capsys.readouterr().out)["created"] == 50
    assert not (ciz.home.path / "run.json").exists()
    assert await iwlz("export", home, "WlzIndicatie", "--history") == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(exported) == 50 and all(e["version"] == 1 and e["signed"] for e in exported)
    # A history export is read back by import too: versions in order, each a record (a delete a delete).
    restarted = Node(ciz.home, mdns=False, gossip_interval=0)
    await restarted.start()
    try:
        assert await iwlz("audit", home, "--verify") == 0
    finally:
        await restarted.stop()


async def test_batches_overlap_yet_every_record_keeps_the_files_order(network: Network, tmp_path: Path, capsys: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two batches are with the node at once (it checks one while it writes the other), but a batch that names a
    record a batch in flight names waits: a record changed three times in three batches, and one created and
    then deleted, end as the file says."""
    import node.cli.transfer as transfer

    monkeypatch.setattr(transfer, "BATCH_ITEMS", 50)
    most = [0]
    send = transfer.Pipeline.send

    def watched(self: Any, batch: Any) -> Any:
        most[0] = max(most[0], len(self.pending))
        return send(self, batch)

    monkeypatch.setattr(transfer.Pipeline, "send", watched)
    (ciz,) = await network.start("ciz")
    records = list(data.indicaties(300, seed=5))
    changed, gone, late = records[10], records[20], records[290]
    lines: list[dict[str, Any]] = list(records)
    lines.insert(60, {**changed, "besluitnummer": "1111111111"})  # in the second batch
    lines.insert(120, {**changed, "besluitnummer": "2222222222"})  # in the third
    # The last batch is short: checked sooner than the full one before it, it would be stored first, were it not
    # for the record they share.
    lines.append({**late, "besluitnummer": "3333333333"})
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines)
                      + json.dumps({"id": gone["wlzIndicatieID"], "version": 2, "deleted": True, "record": None}) + "\n")
    assert await iwlz("--json", "import", str(ciz.home.path), "WlzIndicatie", str(source)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["created"], summary["updated"], summary["deleted"], summary["rejected"]) == (300, 3, 1, 0)
    assert [v.data["besluitnummer"] for v in await ciz.registers.history("WlzIndicatie", late["wlzIndicatieID"])
            if v.data] == [late["besluitnummer"], "3333333333"]
    history = await ciz.registers.history("WlzIndicatie", changed["wlzIndicatieID"])
    assert [v.data["besluitnummer"] for v in history if v.data] == [changed["besluitnummer"], "1111111111", "2222222222"]
    assert (await ciz.registers.current("WlzIndicatie", gone["wlzIndicatieID"])).deleted  # type: ignore[union-attr]
    assert most[0] >= 1  # a batch was sent while another was still with the node


async def test_an_export_and_a_rejects_file_are_readable_by_the_nodes_user_only(network: Network, tmp_path: Path,
                                                                                capsys: Any) -> None:
    """Both hold clients' records (a rejected line as it was written): with the usual umask of 022 every user of the
    machine could read them. Written over a file another user could already read, too."""
    (ciz,) = await network.start("ciz")
    home = str(ciz.home.path)
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(dict(next(data.indicaties(1, seed=7)), bsn="123456789")) + "\n")
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    out.write_text("")
    out.chmod(0o644)
    old = os.umask(0o022)
    try:
        assert await iwlz("import", home, "WlzIndicatie", str(source), "--rejects", str(rejects)) == 4
        assert await iwlz("export", home, "WlzIndicatie", "--output", str(out)) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    assert "123456789" in rejects.read_text()
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in (out, rejects)} == {
        "out.jsonl": "0o600", "rejects.jsonl": "0o600"}
    # Where it cannot write, it says so (it was a traceback).
    assert await iwlz("export", home, "WlzIndicatie", "--output", str(tmp_path / "no" / "such" / "dir.jsonl")) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "No such file or directory" in err and "Traceback" not in err
