"""Sealed streams (a backup file's body) and the keys an identity derives for them."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import Identity, KeysError, MalformedKey
from keys.stream import CHUNK, KEY_SIZE, SEALED_CHUNK, StreamBroken, StreamOpener, StreamSealer

KEY = bytes(range(KEY_SIZE))
CONTEXT = b"iwlz-backup-sealed/1\ndid:key:z6Mk\n" + b"s" * 16


def seal(data: bytes, key: bytes = KEY, context: bytes = CONTEXT) -> tuple[bytes, list[bytes]]:
    sealer = StreamSealer(key, context)
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    if not chunks or len(chunks[-1]) == CHUNK:
        chunks.append(b"")  # the last part is never a full one: it carries the end
    return sealer.header, [sealer.seal(c, last=i == len(chunks) - 1) for i, c in enumerate(chunks)]


def unseal(header: bytes, parts: list[bytes], key: bytes = KEY, context: bytes = CONTEXT) -> tuple[bytes, bool]:
    opener = StreamOpener(key, header, context)
    return b"".join(opener.open(p) for p in parts), opener.ended


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_a_sealed_stream_opens_to_what_was_sealed_and_says_it_ended(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    header, parts = seal(data)
    assert all(len(p) == SEALED_CHUNK for p in parts[:-1]) and len(parts[-1]) < SEALED_CHUNK
    assert unseal(header, parts) == (data, True)
    assert size < 64 or data[:64] not in b"".join(parts)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=3 * CHUNK + 100), st.data())
def test_a_changed_reordered_or_dropped_part_never_opens(data: bytes, draw: st.DataObject) -> None:
    header, parts = seal(data)
    i = draw.draw(st.integers(0, len(parts) - 1))
    changed = bytearray(parts[i])
    changed[draw.draw(st.integers(0, len(changed) - 1))] ^= 1 << draw.draw(st.integers(0, 7))
    broken = [parts[:i] + [bytes(changed)] + parts[i + 1:]]
    if len(parts) > 1:
        broken.append(parts[:i] + parts[i + 1:])  # one dropped
        broken.append(list(reversed(parts)))
    for attempt in broken:
        with pytest.raises(StreamBroken):
            unseal(header, attempt)


def test_a_stream_cut_at_a_parts_end_opens_but_has_not_ended() -> None:
    header, parts = seal(bytes(3 * CHUNK))
    assert unseal(header, parts[:2]) == (bytes(2 * CHUNK), False)  # the reader must refuse it: it checks ``ended``


def test_another_key_another_context_or_bytes_after_the_end_are_refused() -> None:
    header, parts = seal(b"registers")
    for key, context in ((bytes(KEY_SIZE), CONTEXT), (KEY, CONTEXT.replace(b"z6Mk", b"z6Ml"))):
        with pytest.raises(StreamBroken):
            unseal(header, parts, key, context)
    with pytest.raises(StreamBroken, match="after the stream's end"):
        unseal(header, parts + parts)
    with pytest.raises(StreamBroken, match="header"):
        StreamOpener(KEY, header[:-1], CONTEXT)


def test_a_sealer_takes_no_part_larger_than_a_chunk_and_none_after_its_last() -> None:
    sealer = StreamSealer(KEY, CONTEXT)
    with pytest.raises(KeysError, match="at most"):
        sealer.seal(bytes(CHUNK + 1), last=False)
    sealer.seal(b"", last=True)
    with pytest.raises(KeysError, match="none after its last"):
        sealer.seal(b"", last=True)


def test_a_derived_key_is_blake2b_keyed_with_the_seed_and_differs_by_purpose_salt_and_identity() -> None:
    seed, salt = bytes(range(32)), bytes(range(100, 116))
    identity = Identity.from_seed(seed)
    key = identity.derive_key(b"iwlz-backup", salt)
    # Its bytes are part of the backup format: an independent implementation (hashlib's BLAKE2b) gives the same.
    assert key == hashlib.blake2b(b"", digest_size=32, key=seed, salt=salt, person=b"iwlz-backup").digest()
    others = {identity.derive_key(b"iwlz-other", salt), identity.derive_key(b"iwlz-backup", bytes(16)),
              Identity.generate().derive_key(b"iwlz-backup", salt)}
    assert key not in others and len(others) == 3 and seed not in key
    for purpose, bad_salt in ((b"p" * 17, salt), (b"iwlz-backup", salt[:15])):
        with pytest.raises(MalformedKey):
            identity.derive_key(purpose, bad_salt)
