"""The strict codec: deterministic encoding in, deterministic encoding out, nothing else."""

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import MalformedData, TooLarge
from keys import cbor

# (diagnostic, hex, expected reason fragment)
REFUSED = [
    ("duplicate map key", "a2616101616102", "duplicate"),
    ("trailing bytes", "0102", "deterministic"),
    ("non-shortest integer", "1801", "deterministic"),
    ("unsorted map keys", "a2616202616101", "deterministic"),
    ("indefinite-length array", "9f01ff", "indefinite"),
    ("tag 0 date", "c074323031332d30332d32315432303a30343a30305a", "tag 0"),
    ("tag 2 bignum", "c249010000000000000000", "tag 2"),
    ("self-describe tag", "d9d9f701", "tag 55799"),
    ("unknown tag 1234", "d904d201", "tag 1234"),
    ("float", "f93c00", "float"),
    ("undefined", "f7", "Undefined"),
    ("simple value", "e0", "SimpleValue"),
    ("invalid utf-8", "61ff", "well-formed"),
    ("truncated", "8301", "well-formed"),
    ("array key", "a1810101", "map keys"),
    ("empty", "", "empty"),
]


@pytest.mark.parametrize("name,hexdata,reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_decoder_refuses(name: str, hexdata: str, reason: str) -> None:
    with pytest.raises(MalformedData) as info:
        cbor.decode(bytes.fromhex(hexdata))
    assert info.value.code == "malformed"
    assert reason.lower() in info.value.reason.lower()


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    assert cbor.decode(b"\x81" * 15 + b"\x01") is not None
    with pytest.raises(MalformedData, match="deep"):
        cbor.decode(b"\x81" * 40 + b"\x01")


def test_oversized_input_is_refused_before_parsing() -> None:
    data = cbor.encode(b"x" * 2000)
    with pytest.raises(TooLarge) as info:
        cbor.decode(data, max_size=1000)
    assert info.value.code == "too-large"


def test_only_allowed_tags_pass() -> None:
    data = bytes.fromhex("d28401020304")
    with pytest.raises(MalformedData, match="tag 18"):
        cbor.decode(data)
    assert cbor.decode(data, allowed_tags=frozenset({18})) == cbor2.CBORTag(18, [1, 2, 3, 4])


# RFC 8949 §4.2.1 sorts keys by their encoded bytes: 10 (0a) < 100 (1864) < -1 (20) < "z" (617a) < "aa" (626161)
def test_map_keys_are_sorted_bytewise_as_rfc8949_requires() -> None:
    encoded = cbor.encode({"aa": 0, "z": 0, -1: 0, 100: 0, 10: 0})
    assert encoded.hex() == "a5" + "0a00" + "186400" + "2000" + "617a00" + "62616100"


def test_mixed_key_types_sort_differently_from_cbor2_canonical() -> None:
    value = {"a": 1, 256: 2}
    assert cbor.encode(value).hex() == "a2" + "19010002" + "616101"
    assert cbor2.dumps(value, canonical=True) != cbor.encode(value)


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5) | st.integers(-1000, 1000), children, max_size=4),
    max_leaves=20,
)


@given(cbor_values)
def test_encode_decode_round_trip(value: object) -> None:
    encoded = cbor.encode(value)
    assert cbor.decode(encoded) == value
    assert cbor.encode(cbor.decode(encoded)) == encoded


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_malformed(data: bytes) -> None:
    try:
        value = cbor.decode(data, allowed_tags=frozenset({18}))
    except MalformedData:
        return
    assert cbor.encode(value) == data
