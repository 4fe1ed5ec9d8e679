"""The store: private files, and a full disk that is called a full disk and breaks nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from node.errors import PeerRefused, StorageError
from node.service import Node
from node.store import Store
from tests.node.kit import IND0, Network, put, sample

pytestmark = pytest.mark.asyncio


async def test_the_database_and_its_wal_are_readable_by_the_node_only(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    path = ciz.home.database_path
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        assert name.exists() and stat.S_IMODE(os.stat(name).st_mode) == 0o600, name


@pytest.fixture
def small_disk(tmp_path: Path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_is_reported_as_such_and_the_node_keeps_answering(small_disk: Path) -> None:
    network = Network(small_disk)
    try:
        ciz, zk = await network.start("ciz", "zk5151")
        await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
        filler = small_disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)  # take all that is left
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        with pytest.raises(StorageError, match="the disk is full"):
            for i in range(200):
                data = sample("wlzIndicaties", 1)
                data["besluitnummer"] = f"B-{i}-" + "x" * 900
                await ciz.registers.put("WlzIndicatie", data, actor=ciz.actor, now=ciz.now())
        # A read that cannot be audited is not served: a signed "unavailable", not a 500 and not a crash.
        with pytest.raises(PeerRefused) as info:
            await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
        assert info.value.code == "unavailable"
        filler.unlink()  # space again: the node goes on where it was, its chain unbroken
        [(record, _, _)] = await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
        assert record.record_id == IND0
        await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 2))
        await network.settle()
        assert (await ciz.audit.verify(full=True))[0]
    finally:
        await network.stop()


async def test_a_node_that_cannot_create_its_store_says_so(tmp_path: Path) -> None:
    network = Network(tmp_path)
    home = network.home("ciz")
    os.chmod(home.path, 0o500)
    try:
        node = Node(home, mdns=False, gossip_interval=0)
        if os.geteuid() == 0:
            pytest.skip("root may write anywhere")
        with pytest.raises(StorageError, match="cannot create the store"):
            await node.start()
    finally:
        os.chmod(home.path, 0o700)


async def test_a_store_that_cannot_be_opened_lets_the_process_end(tmp_path: Path) -> None:
    """A database that is not one (a disk fault, a wrong file restored) is refused with a StorageError, and the
    connection it began is closed: its thread would otherwise keep the process from ever exiting."""
    path = tmp_path / "node.sqlite3"
    path.write_bytes(b"not a database" * 512)
    os.chmod(path, 0o600)
    before = {t.ident for t in threading.enumerate()}
    store = Store(path)
    with pytest.raises(StorageError, match="cannot open the store"):
        await store.open()
    await asyncio.sleep(0.1)
    assert [t.name for t in threading.enumerate() if t.ident not in before] == []
