"""Backup while the node works, restore checked before anything changes, and upgrades from the oldest schema."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import tarfile
import time
import zlib
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest

from bench import data
from keys import cbor
from keys import Identity
from keys.stream import HEADER_SIZE
from node.backup import SEALED, _SealedWriter, _unsealed, create, restore
from node.errors import ConfigError, UsageError
from node.service import Node
from node.store.audit_check import GENESIS, entry_fields, entry_hash
from node.store.schema import MIGRATIONS
from protocol.records import RecordSigner, RecordVersion
from protocol.witness import head_bytes
from tests.node.kit import IND0, Network, sample

OLD_REQUEST = b"\xd2a signed query, as the first schema kept it " * 20

pytestmark = pytest.mark.asyncio


async def test_a_backup_taken_while_four_writers_run_restores_every_acknowledged_write(network: Network,
                                                                                        tmp_path: Path) -> None:
    (ciz,) = await network.start("ciz")
    acknowledged: list[tuple[float, str]] = []  # (when the write was acknowledged, record id)
    stop = asyncio.Event()

    async def writer(seed: int) -> None:
        records = data.indicaties(10_000, seed=seed)
        while not stop.is_set():
            record = next(records)
            await ciz.registers.put("WlzIndicatie", record, actor=ciz.actor, now=ciz.now())
            acknowledged.append((time.monotonic(), record["wlzIndicatieID"]))

    writers = [asyncio.create_task(writer(seed)) for seed in range(4)]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    manifest = await asyncio.to_thread(create, ciz.home, tmp_path / "ciz.backup")
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*writers)
    before = {record_id for at, record_id in acknowledged if at < started}
    assert len(before) > 20 and len(acknowledged) > len(before)  # writes went on during and after the backup
    # Restored into a new home that has only the node's key.
    fresh = tmp_path / "restored"
    restored = await asyncio.to_thread(restore, tmp_path / "ciz.backup", fresh, key=ciz.home.key_path)
    assert restored["audit_head"] == manifest["audit_head"]
    node = Node(type(ciz.home)(fresh), mdns=False, gossip_interval=0)
    await node.start()
    try:
        ids = {v.record_id for v in await node.registers.page("WlzIndicatie", limit=100_000)}
        assert before <= ids and len(ids) == manifest["records"]["WlzIndicatie"]
        assert (await node.audit.verify(full=True))[0]
        assert node.identity.did == ciz.identity.did
    finally:
        await node.stop()


async def test_a_backup_file_gives_nothing_to_whoever_has_it_without_the_nodes_key(network: Network,
                                                                                    tmp_path: Path) -> None:
    """A backup goes off the machine (the nightly timer, a copy off site): the file alone must not give up the
    registers. Only the node's did and the format can be read from it."""
    (ciz,) = await network.start("ciz")
    records = [sample("wlzIndicaties", i) for i in range(2)]
    for record in records:
        await ciz.registers.put("WlzIndicatie", record, actor=ciz.actor, now=ciz.now())
    await asyncio.to_thread(create, ciz.home, tmp_path / "ciz.backup")
    raw = (tmp_path / "ciz.backup").read_bytes()
    with pytest.raises(tarfile.TarError):
        tarfile.open(tmp_path / "ciz.backup", "r:*").close()
    for attempt in (raw, _gunzipped(raw)):
        for record in records:
            assert record["bsn"].encode() not in attempt and record["client"]["geboorteDatum"].encode() not in attempt
        assert b"SQLite format 3" not in attempt and b"manifest.json" not in attempt
    assert oct((tmp_path / "ciz.backup").stat().st_mode & 0o777) == "0o600"
    assert not list(ciz.home.path.glob(".backup-*"))  # nothing left in the clear beside the home either


def _gunzipped(raw: bytes) -> bytes:
    """What gzip makes of ``raw`` from anywhere a gzip stream could start in it."""
    out = b""
    start = raw.find(b"\x1f\x8b")
    while start != -1:
        try:
            out += zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw[start:])
        except zlib.error:
            pass
        start = raw.find(b"\x1f\x8b", start + 1)
    return out


def _retar(backup: Path, out: Path, change: dict[str, bytes]) -> Path:
    """The gzipped tar ``backup`` with some of its files replaced."""
    with tarfile.open(backup, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for info in src.getmembers():
            body = change.get(info.name, src.extractfile(info).read())  # type: ignore[union-attr]
            info.size = len(body)
            dst.addfile(info, io.BytesIO(body))
    return out


async def test_a_changed_backup_or_one_of_another_node_is_refused_and_nothing_is_replaced(network: Network,
                                                                                          tmp_path: Path) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    good = tmp_path / "good.backup"
    await asyncio.to_thread(create, ciz.home, good)
    await ciz.stop()
    network.nodes.pop("ciz")
    before = ciz.home.database_path.read_bytes()
    identity = ciz.home.identity()
    plain = _unsealed(good, identity, tmp_path / "plain.tar.gz")  # a backup as iwlz wrote them before sealing
    with tarfile.open(plain, "r:gz") as tar:
        database = bytearray(tar.extractfile("node.sqlite3").read())  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    database[-100] ^= 0xFF
    manifest["records"]["WlzIndicatie"] = 99
    sealed = good.read_bytes()
    cases: dict[str, Path] = {}
    for reason, change in {
        "does not match its manifest": {"node.sqlite3": bytes(database)},
        "not signed by this node's key": {"manifest.json": json.dumps(manifest, indent=2, sort_keys=True).encode()},
    }.items():
        cases[f"{reason} (plain)"] = _retar(plain, tmp_path / f"{len(cases)}.plain", change)
        # Sealed again with the node's own key (whoever changed it holds it): the manifest's signature still tells.
        cases[reason] = _sealed(cases[f"{reason} (plain)"], identity, tmp_path / f"{len(cases)}.sealed")
    cases.update(_broken(sealed, tmp_path))
    for reason, bad in cases.items():
        with pytest.raises(UsageError, match=reason.split(" (")[0]) as refused:
            await asyncio.to_thread(restore, bad, ciz.home.path)
        assert ciz.home.database_path.read_bytes() == before
        assert str(refused.value).isprintable()  # nothing of the file's choosing reaches the operator's terminal
    escaping = _retar(plain, tmp_path / "escaping.plain",
                      {"manifest.json": json.dumps(dict(manifest, organisation="\x1b]0;owned\x07")).encode()})
    for backup in (good, plain, escaping):
        with pytest.raises(UsageError, match="another node") as refused:
            await asyncio.to_thread(restore, backup, zk.home.path)
        assert str(refused.value).isprintable()
    assert zk.home.identity().did not in good.read_bytes().decode("ascii", "replace")
    with pytest.raises(ConfigError, match="no node.key"):
        await asyncio.to_thread(restore, good, tmp_path / "empty")
    # The good one restores into its own home, and keeps what it replaced; so does one from before sealing.
    for backup in (good, plain):
        assert (await asyncio.to_thread(restore, backup, ciz.home.path))["audit_head"] == manifest["audit_head"]
    assert list(ciz.home.path.glob("before-restore-*/node.sqlite3"))


def _sealed(plain: Path, identity: Identity, out: Path) -> Path:
    """``plain`` (a gzipped tar) sealed as create() seals a backup."""
    with out.open("wb") as raw:
        writer = _SealedWriter(raw, identity)
        writer.write(plain.read_bytes())
        writer.finish()
    return out


def _broken(sealed: bytes, tmp_path: Path) -> dict[str, Path]:
    """A sealed backup with a byte changed, cut inside its stream, cut before its last part, and with bytes added."""
    clear = sealed.index(b"\n", len(SEALED)) + 1 + 16 + HEADER_SIZE  # the did line, the salt, the stream's header
    cases = {
        "does not open whole (a byte changed)": sealed[:clear + 10] + bytes([sealed[clear + 10] ^ 1]) + sealed[clear + 11:],
        "does not open whole (cut inside a part)": sealed[:-5],
        "is cut short (only the clear part)": sealed[:clear],
        "is cut short (inside the stream's header)": sealed[:clear - 3],
        "is cut short (within the clear part)": sealed[:len(SEALED) + 5],
        "does not open whole (bytes added at its end)": sealed + b"more",
        "not an iwlz backup": b"\x1f\x8b" + sealed[2:],
        "not an iwlz backup (its did line)": SEALED + b"\x1b]0;owned\x07\n" + sealed[sealed.index(b"\n", len(SEALED)) + 1:],
    }
    paths = {}
    for i, (reason, raw) in enumerate(cases.items()):
        paths[reason] = tmp_path / f"broken-{i}.backup"
        paths[reason].write_bytes(raw)
    return paths


async def test_restore_is_refused_while_the_node_runs(network: Network, tmp_path: Path) -> None:
    (ciz,) = await network.start("ciz")
    await asyncio.to_thread(create, ciz.home, tmp_path / "b")
    with pytest.raises(UsageError, match="is running"):
        await asyncio.to_thread(restore, tmp_path / "b", ciz.home.path)


def _schema_1_database(home: Any) -> None:
    """A database as the first released schema made it: a record, its keys, a chained and signed audit log, a melding."""
    identity, certificate = home.identity(), home.certificate()
    record = sample("wlzIndicaties", 0)
    record = {k: v for k, v in record.items() if v is not None}
    record["geindiceerdZorgzwaartepakket"] = [{k: v for k, v in z.items() if v is not None}
                                              for z in record["geindiceerdZorgzwaartepakket"]]
    encoded = cbor.encode(record)
    signed = RecordSigner(identity, certificate).sign(
        RecordVersion("WlzIndicatie", IND0, 1, identity.did, 1_767_225_600, False, record), encoded)
    db = sqlite3.connect(home.database_path)
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO records VALUES (?, ?, 1, ?, ?, 0, 1767225600, NULL, 1)", ("WlzIndicatie", IND0, signed, encoded))
    db.execute("INSERT INTO record_keys VALUES ('bsn', ?, 'WlzIndicatie', ?)", (record["bsn"], IND0))
    prev = GENESIS
    for seq, event in enumerate(("record.create", "query QIR-0001-ZKi"), start=1):
        row = (seq, f"2026-01-01T00:00:0{seq}.000000Z", event, "C", "ok", identity.did, "ciz", "CIZ", record["bsn"],
               f"WlzIndicatie/{IND0}", None, None, OLD_REQUEST if event.startswith("query") else None)
        digest = entry_hash(prev, entry_fields(row))
        db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*row, prev, digest))
        prev = digest
    db.execute("INSERT INTO audit_head VALUES (1, 2, ?, ?)", (prev, identity.sign(head_bytes(2, prev))))
    db.execute("INSERT INTO meldingen VALUES ('7c2d9e4f-3a5b-4c6d-8e7f-9a0b1c2d3e4f', 1767225600, ?, 'Zorgkantoor Noord', "
               "'IRG0012', ?, 'klopt niet', 'open')", (identity.did, f"WlzIndicatie/{IND0}"))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()


async def test_a_database_of_the_first_schema_is_upgraded_on_start(network: Network) -> None:
    home = network.home("ciz")
    _schema_1_database(home)
    node = Node(home, mdns=False, gossip_interval=0)
    await node.start()
    try:
        version = await node.store.fetchone("PRAGMA user_version")
        assert version[0] == len(MIGRATIONS)
        current = await node.registers.current("WlzIndicatie", IND0)
        assert current is not None and current.data["bsn"] == sample("wlzIndicaties", 0)["bsn"]
        assert [r.record_id for r in await node.registers.find("bsn", current.data["bsn"])] == [IND0]
        intact, entries, _ = await node.audit.verify(full=True)
        assert intact and entries >= 3  # the two old entries, and what the upgrade itself wrote
        # The signed request kept in its entry moved beside it (schema 16), and goes with its time like any other.
        assert (await node.store.fetchall("SELECT seq, request FROM audit_requests")) == [(2, OLD_REQUEST)]
        asked = (await node.audit.entries(limit=2))[1]
        assert asked.request == OLD_REQUEST and asked.public()["request_sha256"] == sha256(OLD_REQUEST).hexdigest()
        assert await node.audit.forget_requests(node.now()) == 1
        assert (await node.audit.entries(limit=2))[1].public() == asked.public()
        assert (await node.audit.verify(full=True))[0]
        [old] = await node.melding_desk.list()
        assert (old["meldingID"], old["status"]) == ("7c2d9e4f-3a5b-4c6d-8e7f-9a0b1c2d3e4f", "ontvangen")
        # Re-signed under today's certificate in the background (records from before cert_hash existed).
        for _ in range(100):
            if (await node.store.fetchone("SELECT count(*) FROM records WHERE cert_hash IS NULL"))[0] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await node.store.fetchone("SELECT count(*) FROM records WHERE cert_hash IS NULL"))[0] == 0
    finally:
        await node.stop()
