import json
import os
import stat
from pathlib import Path

import base58
import pytest

from keys import (
    Identity,
    InsecureKeyFile,
    InvalidSignature,
    MalformedKey,
    Verifier,
    did_to_public_key,
    public_key_to_did,
    read_identity,
    write_identity,
)
from keys.did import x25519_key_id

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "did-key-ed25519.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["did"][-8:])
def test_did_key_matches_specification_vectors(vector: dict[str, str]) -> None:
    identity = Identity.from_seed(bytes.fromhex(vector["seed"]))
    public_key = base58.b58decode(vector["publicKeyBase58"])
    assert identity.public_key == public_key
    assert identity.did == vector["did"]
    assert public_key_to_did(public_key) == vector["did"]
    assert did_to_public_key(vector["did"]) == public_key


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["did"][-8:])
def test_derived_x25519_key_matches_specification_vectors(vector: dict[str, str]) -> None:
    identity = Identity.from_seed(bytes.fromhex(vector["seed"]))
    derived = bytes(identity.box_private_key().public_key)
    assert derived == base58.b58decode(vector["x25519PublicKeyBase58"])
    assert bytes(Verifier.from_did(identity.did).box_public_key()) == derived
    assert x25519_key_id(derived) == vector["x25519KeyId"]


@pytest.mark.parametrize(
    "did",
    [
        "did:web:example.org",
        "did:key:z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW",  # an X25519 key, not Ed25519
        "did:key:z0OIl",  # not base58btc
        "did:key:z6Mk",  # too short
        "did:key:" + "z" * 80,
    ],
)
def test_did_to_public_key_refuses_anything_but_ed25519_did_key(did: str) -> None:
    for _ in range(2):  # decoded dids are kept: a refused one is refused again, not remembered
        with pytest.raises(MalformedKey):
            did_to_public_key(did)


@pytest.mark.parametrize("value", [None, 7, b"did:key:z6Mk", ["did:key:z6Mk"], {"did": 1}])
def test_did_to_public_key_refuses_what_is_not_a_string(value: object) -> None:
    with pytest.raises(MalformedKey):
        did_to_public_key(value)  # type: ignore[arg-type]


def test_signature_verifies_and_tampering_is_detected() -> None:
    identity = Identity.generate()
    signature = identity.sign(b"message")
    identity.verifier().verify(b"message", signature)
    with pytest.raises(InvalidSignature):
        identity.verifier().verify(b"messagf", signature)
    with pytest.raises(InvalidSignature):
        Identity.generate().verifier().verify(b"message", signature)
    with pytest.raises(InvalidSignature):
        identity.verifier().verify(b"message", signature[:10])


def test_repr_never_shows_the_private_key() -> None:
    identity = Identity.from_seed(b"\x07" * 32)
    assert repr(identity) == f"Identity({identity.did})"
    assert identity.seed().hex() not in repr(identity)


def test_key_file_is_created_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity = Identity.generate()
    write_identity(path, identity)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_identity(path).did == identity.did


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    write_identity(path, Identity.generate())
    with pytest.raises(MalformedKey, match="already exists"):
        write_identity(path, Identity.generate())


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node.key"
    identity = Identity.generate()
    write_identity(path, identity)
    os.chmod(path, mode)
    with pytest.raises(InsecureKeyFile) as info:
        read_identity(path)
    assert "chmod 600" in str(info.value)
    assert identity.seed().hex() not in str(info.value)


def test_damaged_key_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_text("iwlz-ed25519-seed-v1\nbm90IGEga2V5\n")
    os.chmod(path, 0o600)
    with pytest.raises(MalformedKey) as info:
        read_identity(path)
    assert "bm90IGEga2V5" not in str(info.value)
