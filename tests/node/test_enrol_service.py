"""The enrolment service faces the network: bad input gets a refusal with a code, never a traceback, and a
single-use token certifies one node however many ask at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from keys import Identity, cbor, parse_certificate
from keys.enrolment import EnrolmentRefused, sign_enrolment_request
from node.enrol.authority import EnrolmentAuthority
from node.enrol.service import EnrolmentService, serve
from node.home import NetworkDir

@pytest_asyncio.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[str, NetworkDir]]:
    net = NetworkDir.create(tmp_path / "net", "test")
    listener, port = await serve(EnrolmentService(EnrolmentAuthority(net)), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}", net
    finally:
        await listener.stop()


def request(net: NetworkDir, token: bytes, identity: Identity) -> bytes:
    return sign_enrolment_request(identity, token=token, organisation="Zorgkantoor Noord", role="zorgkantoor",
                                  identifiers={"uzovi": "5151"}, region=None, vestigingen=(),
                                  issued_at=int(time.time()))


async def post(url: str, body: bytes) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/iwlz/v1/enrol", data=body,
                                headers={"Content-Type": "application/cose"}) as response:
            return response.status, await response.read()


@pytest.mark.asyncio
async def test_garbage_and_oversize_requests_are_refused_with_a_code(service: tuple[str, NetworkDir]) -> None:
    url, net = service
    for body in (b"", b"\xff" * 100, cbor.encode({"typ": "iwlz-enrolment-request"})):
        status, answer = await post(url, body)
        assert status == 403 and b'"code": "enrolment-refused"' in answer and b"Traceback" not in answer
    status, _ = await post(url, b"\x00" * (64 * 1024))
    assert status == 413
    assert not net.issued_path.exists()


@pytest.mark.asyncio
async def test_a_single_use_token_certifies_one_node_when_ten_ask_at_once(service: tuple[str, NetworkDir]) -> None:
    url, net = service
    token = net.enrolment_token(role="zorgkantoor", reusable=False, seconds=600, identifiers=None,
                                now=int(time.time()))
    identities = [Identity.generate() for _ in range(10)]
    results = await asyncio.gather(*(post(url, request(net, token, i)) for i in identities))
    granted = [cbor.decode(body)["certificate"] for status, body in results if status == 200]
    assert len(granted) == 1 and sum(1 for status, _ in results if status == 403) == 9
    assert parse_certificate(granted[0])[1].did in {i.did for i in identities}
    assert len(net.issued()) == 1


def test_a_token_for_the_role_cannot_take_over_a_party_enrolled_with_another_token(tmp_path: Path) -> None:
    """The replicas' reusable zorgaanbieder token names no AGB code. Its holder must not enrol as Zorggroep De
    Linde (enrolled with its own bound token), and must not get De Linde's certificate revoked."""
    net = NetworkDir.create(tmp_path / "net", "test")
    authority = EnrolmentAuthority(net)
    now = int(time.time())
    bound = net.enrolment_token(role="zorgaanbieder", reusable=True, seconds=600, identifiers={"agb": "12345678"},
                                now=now)
    replicas = net.enrolment_token(role="zorgaanbieder", reusable=True, seconds=600, identifiers=None, now=now)

    def ask(token: bytes, identity: Identity, agb: str) -> bytes:
        return sign_enrolment_request(identity, token=token, organisation="Zorggroep De Linde", role="zorgaanbieder",
                                      identifiers={"agb": agb}, region="5151", vestigingen=(), issued_at=now)

    genuine = authority.enrol(ask(bound, Identity.generate(), "12345678"), now=now)
    with pytest.raises(EnrolmentRefused, match="enrolled with another token"):
        authority.enrol(ask(replicas, Identity.generate(), "12345678"), now=now)
    assert net.revoked() == frozenset() and len(net.issued()) == 1
    # The party itself, with its own token, may come back under a new key: its predecessor is revoked.
    again = authority.enrol(ask(bound, Identity.generate(), "12345678"), now=now)
    assert again.revoked == [parse_certificate(genuine.certificate)[1].cert_id_hex]
    # A replica replaced under the replicas' token ends only its own predecessor.
    first = authority.enrol(ask(replicas, Identity.generate(), "98000001"), now=now)
    second = authority.enrol(ask(replicas, Identity.generate(), "98000001"), now=now)
    assert second.revoked == [parse_certificate(first.certificate)[1].cert_id_hex]


def test_a_party_certified_by_hand_is_not_taken_over_by_enrolment(tmp_path: Path) -> None:
    net = NetworkDir.create(tmp_path / "net", "test")
    now = int(time.time())
    net.certify(subject=Identity.generate().did, organisation="CIZ", role="ciz", identifiers={"kvk": "62253778"},
                region=None, vestigingen=(), now=now, seconds=600)
    token = net.enrolment_token(role="ciz", reusable=True, seconds=600, identifiers={"kvk": "62253778"}, now=now)
    request = sign_enrolment_request(Identity.generate(), token=token, organisation="CIZ", role="ciz",
                                     identifiers={"kvk": "62253778"}, region=None, vestigingen=(), issued_at=now)
    with pytest.raises(EnrolmentRefused, match="enrolled with another token"):
        EnrolmentAuthority(net).enrol(request, now=now)
    assert net.revoked() == frozenset()


@pytest.mark.asyncio
async def test_a_client_enrols_with_a_keyed_commitment_and_the_service_learns_neither_bsn_nor_key(
        service: tuple[str, NetworkDir]) -> None:
    """His node sends the commitment, made under a key it keeps; the certificate it gets back lets no one test a
    BSN without that key, and the root's register of issued certificates holds no BSN and no key."""
    from keys.enrolment import token_text
    from node.enrol.joining import enrol_home
    from node.home import NodeHome

    url, net = service
    home = NodeHome.create(net.path.parent / "jansen", role="client", name=None, identifiers={"bsn": "106658037"},
                           region="5151")
    token = net.enrolment_token(role="client", reusable=True, seconds=600, identifiers=None, now=int(time.time()))
    member = await asyncio.to_thread(enrol_home, home, url, token_text(token), wait=10)
    key = home.bsn_key()
    assert member.organisation == "client" and member.bsn_commitment is not None
    assert member.bsn_commitment.alg == "blake2b-keyed"
    assert member.matches_bsn("106658037", key) and not member.matches_bsn("106658037")
    issued = net.issued_path.read_text()
    assert "106658037" not in issued and key.hex() not in issued
