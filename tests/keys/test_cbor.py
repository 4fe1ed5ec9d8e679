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


# The codec remembers the deterministic order of the text-key sets it has seen. Keys that compare equal to text
# but are not text (none can be: 1 == True and 1 == 1.0, never "a" == anything but "a"), and an order seen before
# presented unsorted, must still be judged on their own.
def test_a_remembered_key_order_is_not_trusted_for_other_keys() -> None:
    assert cbor.encode({"b": 1, "a": 2}).hex() == "a2" + "616102" + "616201"
    assert cbor.encode({"a": 2, "b": 1}).hex() == "a2" + "616102" + "616201"
    assert cbor.encode({1: "x", 2: "y"}).hex() == "a2" + "016178" + "026179"
    with pytest.raises(MalformedData, match="map keys"):
        cbor.encode({True: "x", 2: "y"})
    with pytest.raises(MalformedData, match="map keys"):
        cbor.encode({1.0: "x", 2: "y"})
    cbor.decode(bytes.fromhex("a2616101616202"))  # {"a": 1, "b": 2}: in order, and now remembered
    with pytest.raises(MalformedData, match="deterministic"):
        cbor.decode(bytes.fromhex("a2616202616101"))  # the same keys out of order
    cbor.decode(bytes.fromhex("a2010102f6"))  # {1: 1, 2: None}
    with pytest.raises(MalformedData):
        cbor.decode(bytes.fromhex("a2f50102f6"))  # {true: 1, 2: None}: a bool key


@given(st.lists(st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=4), max_size=6))
def test_encoding_the_same_keys_again_gives_the_same_order(values: list[dict[str, int]]) -> None:
    for value in values:
        first = cbor.encode(value)
        assert cbor.encode(dict(reversed(value.items()))) == first
        assert cbor.decode(first) == value


def test_what_the_codec_remembers_of_peers_keys_stays_small() -> None:
    """Keys are remembered across messages (their encoding, the order of a key set): a peer sending long keys, each
    message new ones, must not make the node hold them. Attack: 300 maps, each with two distinct 16 KiB keys."""
    for n in range(300):
        long_keys = {f"{n:05d}a" + "x" * 16_384: 1, f"{n:05d}b" + "x" * 16_384: 2}
        data = cbor.encode(long_keys)
        assert cbor.decode(data) == long_keys
    remembered = sum(len(k) for k in cbor._KEY_BYTES if isinstance(k, str))  # noqa: SLF001
    remembered += sum(len(k) for keys in [*cbor._ORDERS, *cbor._ORDERED] for k in keys)  # noqa: SLF001
    assert remembered < 1_000_000


# The protected header of a COSE_Sign1 is read from its item heads before it is decoded (keys/cose.py): a flat map
# of at most 8 labels passes that reading exactly when the decoder would take it as such; anything else is refused
# as malformed, never with another error.
flat_values = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.binary(max_size=40) | st.text(max_size=10)
flat_headers = st.dictionaries(st.integers(-70000, 70000) | st.text(max_size=5), flat_values, max_size=8)


@given(flat_headers.map(lambda h: {**h, 1: -8}).filter(lambda h: len(h) <= 8))
def test_a_flat_protected_header_is_read_from_its_heads_as_the_decoder_reads_it(header: dict) -> None:
    from keys import cose

    assert cose._protected_header(cbor.encode(header)) == header  # noqa: SLF001


@given(cbor_values)
def test_a_protected_header_is_taken_only_if_flat_and_anything_else_is_malformed(value: object) -> None:
    from keys import cose

    data = cbor.encode({1: -8, 5: value} if not isinstance(value, dict) else {**value, 1: -8})
    flat = lambda v: v is None or isinstance(v, (int, bytes, str)) and not isinstance(v, bool)  # noqa: E731
    try:
        header = cose._protected_header(data)  # noqa: SLF001
    except MalformedData:
        parsed = cbor.decode(data)
        assert len(parsed) > 8 or not all(flat(k) and flat(v) and v is not None for k, v in parsed.items())
        return
    assert len(header) <= 8 and all(flat(v) and v is not None for v in header.values())


@given(st.binary(max_size=300))
def test_any_bytes_as_a_protected_header_are_taken_or_refused_malformed(data: bytes) -> None:
    from keys import cose

    try:
        cose._protected_header(data)  # noqa: SLF001
    except MalformedData:
        pass
