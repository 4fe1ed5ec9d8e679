"""TLS on the peer listener: nodes that speak https to each other, and what a wrong certificate or key does."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import trustme

from node.errors import ConfigError, NetworkError
from node.service import Node
from tests.node.kit import Network, put, sample

IND0 = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


def tls_files(directory: Path, ca: trustme.CA, name: str) -> dict[str, str]:
    """A server certificate for 127.0.0.1 issued by ``ca``, and the CA file that trusts it."""
    directory.mkdir(parents=True, exist_ok=True)
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = directory / f"{name}.pem", directory / f"{name}.key", directory / "ca.pem"
    server.cert_chain_pems[0].write_to_path(str(cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    server.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return {"tls_cert": str(cert), "tls_key": str(key), "tls_ca": str(ca_file)}


@pytest.mark.asyncio
async def test_nodes_query_and_notify_each_other_over_https(network: Network, tmp_path: Path) -> None:
    files = tls_files(tmp_path / "tls", trustme.CA(), "node")
    ciz, zk = await network.start("ciz", "zk5151", **files)
    assert ciz.url.startswith("https://127.0.0.1:") and zk.url.startswith("https://")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    [(record, _, _)] = await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    assert record.data["wlzIndicatieID"] == IND0
    # The notification that the indicatie creates reaches the zorgkantoor over https, which fetches it back.
    await network.settle()
    sent = await ciz.outbox.list()
    assert sent and {row["status"] for row in sent} == {"delivered"}

    # The listener speaks TLS only: plain HTTP on its port gets no answer.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(ciz.url.replace("https://", "http://") + "/health") as r:
                await r.read()


@pytest.mark.asyncio
async def test_a_certificate_from_a_ca_the_node_does_not_trust_is_refused(network: Network, tmp_path: Path) -> None:
    (ciz,) = await network.start("ciz", **tls_files(tmp_path / "own", trustme.CA(), "ciz"))
    # A zorgkantoor that trusts another CA (say, an impostor's) does not even open the connection.
    other = tls_files(tmp_path / "other", trustme.CA(), "other")
    (zk,) = await network.start("zk5151", tls_ca=other["tls_ca"])
    with pytest.raises(NetworkError):
        await zk.client.fetch_announcement(ciz.url)
    assert zk.peers.get(ciz.identity.did) is None or zk.peers.get(ciz.identity.did).url != ciz.url
    # One that names no CA trusts the system's only (aiohttp's own context): a network's private CA is not among them.
    (cak,) = await network.start("cak")
    assert cak.client.tls is None
    with pytest.raises(NetworkError):
        await cak.client.fetch_announcement(ciz.url)


@pytest.mark.asyncio
async def test_a_wrong_key_or_a_missing_file_stops_the_node_before_it_opens_anything(network: Network, tmp_path: Path) -> None:
    ca = trustme.CA()
    one, two = tls_files(tmp_path / "one", ca, "one"), tls_files(tmp_path / "two", ca, "two")
    home = network.home("ciz")
    for wrong in ({"tls_cert": one["tls_cert"], "tls_key": two["tls_key"]},
                  {"tls_cert": one["tls_cert"], "tls_key": None},
                  {"tls_cert": str(tmp_path / "absent.pem"), "tls_key": one["tls_key"]},
                  {"tls_ca": str(tmp_path / "absent-ca.pem")}):
        config = home.config()
        for name, value in wrong.items():
            setattr(config, name, value)
        node = Node(home, mdns=False, gossip_interval=0, config=config)
        with pytest.raises(ConfigError) as caught:
            await node.start()
        assert "BEGIN" not in str(caught.value)  # the reason names the file or the check, never key material
    assert not home.database_path.exists()


@pytest.mark.asyncio
async def test_a_connection_that_never_finishes_its_handshake_is_closed(network: Network, tmp_path: Path) -> None:
    (ciz,) = await network.start("ciz", header_timeout=1.0, **tls_files(tmp_path / "tls", trustme.CA(), "ciz"))
    port = int(ciz.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # Sends nothing: the handshake deadline closes it (EOF), well before the test's own bound.
        assert await asyncio.wait_for(reader.read(100), timeout=10) == b""
    finally:
        writer.close()
    # The node still answers properly over TLS.
    context = ssl.create_default_context(cafile=ciz.config.tls_ca)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ciz.url}/health", ssl=context) as r:
            assert r.status == 200


def test_iwlz_init_takes_tls_files_and_refuses_a_pair_that_does_not_fit(tmp_path: Path) -> None:
    ca = trustme.CA()
    one, two = tls_files(tmp_path / "one", ca, "one"), tls_files(tmp_path / "two", ca, "two")

    def iwlz(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "node", *args], capture_output=True, text=True, timeout=60)

    bad = iwlz("init", str(tmp_path / "bad"), "--role", "ciz", "--name", "CIZ", "--kvk", "62253778",
               "--tls-cert", one["tls_cert"], "--tls-key", two["tls_key"])
    assert bad.returncode != 0 and "TLS" in bad.stderr and "Traceback" not in bad.stderr
    good = iwlz("init", str(tmp_path / "good"), "--role", "ciz", "--name", "CIZ", "--kvk", "62253778",
                "--tls-cert", one["tls_cert"], "--tls-key", one["tls_key"], "--tls-ca", one["tls_ca"])
    assert good.returncode == 0, good.stderr
    from node.home import NodeHome

    config = NodeHome(tmp_path / "good").config()
    assert (config.tls_cert, config.tls_key, config.tls_ca) == (one["tls_cert"], one["tls_key"], one["tls_ca"])
