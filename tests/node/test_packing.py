"""Record content on disk (node/store/packing.py): deflated with a fixed dictionary of field names. What comes back
is exactly what was signed; the dictionary never changes (stored data depends on it); damaged content is a
StorageError, never another exception; content stored before packing reads as it is."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import cbor
from node.errors import StorageError
from node.store.packing import DICTIONARY_1, FORMAT_1, pack, unpack
from protocol.records import verify_record
from tests.node.kit import IND0, Network, put, sample

# Content packed by this code when format 1 was made: any later zlib must unpack it to the same bytes.
GOLDEN_CONTENT = bytes.fromhex("a36362736e693131313232323333336b7a6f72676b616e746f6f7264353135316e776c7a496e646963617469654944"
                               "6178")
GOLDEN_PACKED = bytes.fromhex("005b0ccaea99868686464646c6c6c6c81a534c0d4d0dd16c49ac0000")


def test_the_dictionary_of_format_1_is_fixed() -> None:
    assert hashlib.sha256(DICTIONARY_1).hexdigest() == "58b337558f5aad47e2c0520ca4c064a8821a55600be2ec1c1cfdbd684d018962"
    assert unpack(GOLDEN_PACKED) == GOLDEN_CONTENT


def test_a_wlzindicatie_packs_to_less_than_half() -> None:
    encoded = cbor.encode({k: v for k, v in sample("wlzIndicaties", 0).items() if v is not None})
    packed = pack(encoded)
    assert packed[0] == FORMAT_1 and len(packed) < len(encoded) / 2 and unpack(packed) == encoded


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_whatever_is_packed_comes_back_exactly(content: bytes) -> None:
    assert unpack(pack(content)) == content


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), min_size=1, max_size=20))
def test_content_stored_before_packing_reads_as_it_is(content: dict[str, str]) -> None:
    encoded = cbor.encode(content)
    assert unpack(encoded) == encoded


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_damaged_content_is_a_storage_error(tail: bytes) -> None:
    stored = bytes([FORMAT_1]) + tail
    try:
        assert unpack(stored) is not None  # some damage still inflates; the signature check catches it then
    except StorageError:
        pass


def test_cut_short_or_lengthened_content_is_refused() -> None:
    packed = pack(GOLDEN_CONTENT)
    for damaged in (packed[:-3], packed + b"\x00", packed[:1]):
        with pytest.raises(StorageError, match="does not unpack"):
            unpack(damaged)


@pytest.mark.asyncio
async def test_a_stored_record_is_packed_and_verifies(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        (stored,) = db.execute("SELECT data FROM records").fetchone()
    current = await ciz.registers.current("WlzIndicatie", IND0)
    assert current is not None and bytes(stored)[0] == FORMAT_1
    assert cbor.decode(unpack(bytes(stored))) == current.data
    verify_record(current.signed, zk.trust, zk.now())
