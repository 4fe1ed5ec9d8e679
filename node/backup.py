"""Online backup and checked restore of a node home.

A backup is a gzipped tar of: a consistent copy of the database, taken with
SQLite's online backup API while the node keeps running (one read
transaction: a WAL snapshot, so every write committed before it started is
in it and no half-written one is); the home's configuration, certificates
and revocation lists; and a manifest (schema version, audit head, records
per kind, the SHA-256 of every file) signed with the node's key. The node's
key and admin token are never in it: keep node.key apart, as the node's
identity.

The file is sealed (keys/stream.py) under a key derived from the node's key
and a salt of its own: it leaves the machine (the nightly copy off site),
and holds the registers. In the clear it says only what it is and whose key
opens it (the node's did). A backup written before sealing (a plain gzipped
tar) is still restored, after the same checks.

A restore checks everything before it replaces anything: that the backup is
of this node (the key in the home), that it opens whole, the manifest's
signature, every file's hash, the schema version, and the whole audit chain
against its signed head. The database it replaces is kept beside it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

from keys import Identity, KeysError, Verifier, is_did
from keys.stream import CHUNK, HEADER_SIZE, SEALED_CHUNK, StreamBroken, StreamOpener, StreamSealer
from node.errors import ConfigError, StorageError, UsageError
from node.home import NodeHome, open_private
from node.store.audit_check import check_chain
from node.store.schema import MIGRATIONS

FORMAT: Final = "iwlz-backup/1"  # the manifest's format, sealed or not
SEALED: Final = b"iwlz-backup-sealed/1\n"  # a sealed file's first line; its second is the did whose key opens it
_PURPOSE: Final = b"iwlz-backup"
_SALT_SIZE: Final = 16
DATABASE: Final = "node.sqlite3"
# What a backup may hold: nothing else is unpacked, so no name can point outside the home.
_FILE_NAMES: Final = re.compile(r"^(node\.sqlite3|config\.json|certificate(\.next)?\.cwt|revocations/[A-Za-z0-9_-]+\.cbor)$")


def _home_files(home: NodeHome) -> list[Path]:
    files = [home.config_path, home.certificate_path, home.next_certificate_path]
    if home.revocations_path.is_dir():
        files += sorted(home.revocations_path.glob("*.cbor"))
    return [f for f in files if f.is_file()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot(database: Path, target: Path) -> None:
    """A consistent copy of a live database (the node may be writing meanwhile)."""
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as source, \
                closing(sqlite3.connect(target)) as copy:
            source.backup(copy)  # all pages in one step: one read transaction, one snapshot
    except sqlite3.Error as exc:
        raise StorageError(f"the database could not be copied: {exc}") from exc


def _describe(database: Path, verifier: Verifier) -> dict[str, Any]:
    check = check_chain(database, verifier)
    if not check.intact or check.head is None and check.entries:
        raise StorageError(f"the audit chain is not intact ({check.detail}); a backup would keep a broken chain")
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        counts = dict(db.execute("SELECT kind, count(*) FROM records WHERE current = 1 AND deleted = 0 GROUP BY kind"))
    seq, digest = check.head if check.head else (0, b"")
    return {"schema_version": version, "audit_head": {"seq": seq, "hash": digest.hex()}, "records": counts}


def create(home: NodeHome, out: Path, *, now: int | None = None) -> dict[str, Any]:
    """Write a sealed backup of ``home`` (running or not) to ``out``; returns its manifest."""
    home.require()
    identity, member = home.identity(), home.member()
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=home.path) as tmp:
        database = Path(tmp) / DATABASE
        snapshot(home.database_path, database)
        files = {DATABASE: database, **{str(f.relative_to(home.path)): f for f in _home_files(home)}}
        manifest = {
            "format": FORMAT, "did": identity.did, "organisation": member.organisation, "role": member.role,
            "identifiers": dict(member.identifiers), "created_at": int(time.time() if now is None else now),
            **_describe(database, identity.verifier()),
            "files": {name: _sha256(path) for name, path in files.items()},
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        partial = out.with_name(f".{out.name}.partial")
        with open_private(partial, "wb") as raw:
            sealed = _SealedWriter(raw, identity)
            with gzip.GzipFile(fileobj=sealed, mode="wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
                _add_bytes(tar, "manifest.json", body)
                _add_bytes(tar, "manifest.sig", identity.sign(body))
                for name, path in files.items():
                    tar.add(path, arcname=name, recursive=False)
            sealed.finish()
            raw.flush()
            os.fsync(raw.fileno())
        partial.replace(out)
    return manifest


class _SealedWriter:
    """A file to write a backup into that seals it, chunk by chunk, into ``out`` (what gzip needs of a file)."""

    def __init__(self, out: IO[bytes], identity: Identity) -> None:
        salt = os.urandom(_SALT_SIZE)
        clear = SEALED + identity.did.encode() + b"\n" + salt
        self._sealer = StreamSealer(identity.derive_key(_PURPOSE, salt), clear)
        out.write(clear + self._sealer.header)
        self._out, self._pending = out, bytearray()

    def write(self, data: bytes) -> int:
        self._pending += data
        while len(self._pending) > CHUNK:  # a chunk goes out once more follows it: finish() seals the last, with its tag
            self._out.write(self._sealer.seal(bytes(self._pending[:CHUNK]), last=False))
            del self._pending[:CHUNK]
        return len(data)

    def flush(self) -> None:
        pass  # chunks go out whole; finish() writes the last

    def finish(self) -> None:
        self._out.write(self._sealer.seal(bytes(self._pending), last=True))
        self._pending.clear()


def _unsealed(backup: Path, identity: Identity, into: Path) -> Path:
    """The gzipped tar ``backup`` holds, opened with ``identity``'s key into ``into`` (a sealed backup of another
    node does not open: see _of_this_node); a backup from before sealing is that tar itself."""
    with _open(backup) as f:
        did, clear = _sealed_for(f, backup)
        if did is None:
            return backup
        try:
            opener = StreamOpener(identity.derive_key(_PURPOSE, clear[-_SALT_SIZE:]), f.read(HEADER_SIZE), clear)
            with open_private(into, "wb") as out:
                while chunk := f.read(SEALED_CHUNK):
                    out.write(opener.open(chunk))
        except StreamBroken as exc:
            raise UsageError(f"{backup} does not open whole: {exc.reason}") from exc
    if not opener.ended:
        raise UsageError(f"{backup} is cut short: its end is missing")
    return into


def _sealed_for(f: BinaryIO, backup: Path) -> tuple[str | None, bytes]:
    """(the did whose key opens the sealed backup ``f``, the clear bytes before its stream); (None, b"") for a
    backup from before sealing, with ``f`` back at its start."""
    if f.read(len(SEALED)) != SEALED:
        f.seek(0)
        return None, b""
    did = f.readline(256)
    salt = f.read(_SALT_SIZE)
    if not did.endswith(b"\n") or len(salt) != _SALT_SIZE:
        raise UsageError(f"{backup} is cut short: it ends before its sealed part begins")
    named = did[:-1].decode("ascii", "replace")
    if not is_did(named):  # it is shown to the operator: no bytes of the file's choosing reach his terminal
        raise UsageError(f"{backup} is not an iwlz backup: it names no did whose key opens it")
    return named, SEALED + did + salt


def _open(backup: Path) -> BinaryIO:
    try:
        return backup.open("rb")
    except OSError as exc:
        raise UsageError(f"{backup} cannot be read: {exc.strerror}") from exc


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def read_manifest(backup: Path) -> tuple[dict[str, Any], bytes, bytes]:
    """(manifest, its bytes, its signature) of the gzipped tar of a backup, nothing else read."""
    try:
        with tarfile.open(backup, "r:gz") as tar:
            body, signature = _member(tar, "manifest.json"), _member(tar, "manifest.sig")
    except (OSError, tarfile.TarError) as exc:
        raise UsageError(f"{backup} is not an iwlz backup: {exc}") from exc
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise UsageError(f"{backup}: the manifest is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{backup} is not an {FORMAT} backup")
    return manifest, body, signature


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    with _member_file(tar, name) as extracted:
        return extracted.read()


def _member_file(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        info = tar.getmember(name)
    except KeyError as exc:
        raise UsageError(f"the backup holds no {name}") from exc
    extracted = tar.extractfile(info) if info.isfile() else None
    if extracted is None:
        raise UsageError(f"{name} in the backup is not a file")
    return extracted


def _of_this_node(backup: Path, home: NodeHome) -> None:
    """Refuse a backup of another node before anything else is read of it (a sealed one says whose it is)."""
    did = home.identity().did
    with _open(backup) as f:
        whose = named = _sealed_for(f, backup)[0]
    if whose is None:  # from before sealing: its manifest says, unchecked as yet (so shown only as repr)
        manifest = read_manifest(backup)[0]
        whose, named = manifest.get("did"), f"{manifest.get('organisation')!r}, {manifest.get('did')!r}"
    if whose != did:
        raise UsageError(f"this backup is of another node ({named}); {home.path} holds the key of {did}")


def verify(backup: Path, home: NodeHome, workdir: Path) -> dict[str, Any]:
    """Check a backup against the node whose key is in ``home``, unpacking it into ``workdir``; returns the manifest."""
    _of_this_node(backup, home)
    identity = home.identity()
    backup = _unsealed(backup, identity, workdir / ".backup.tar.gz")
    manifest, body, signature = read_manifest(backup)
    try:
        identity.verifier().verify(body, signature)
    except KeysError as exc:
        raise UsageError("the backup's manifest is not signed by this node's key: it was changed") from exc
    if int(manifest["schema_version"]) > len(MIGRATIONS):
        raise UsageError(f"the backup has schema version {manifest['schema_version']}; this iwlz knows up to "
                         f"{len(MIGRATIONS)}: upgrade iwlz first")
    files: dict[str, str] = manifest["files"]
    with tarfile.open(backup, "r:gz") as tar:
        for name, expected in files.items():
            if not _FILE_NAMES.fullmatch(name):
                raise UsageError(f"the backup names a file a home does not hold: {name!r}")
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with _member_file(tar, name) as member, target.open("wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)  # a register can be gigabytes: not all in memory
            if _sha256(target) != expected:
                raise UsageError(f"{name} in the backup does not match its manifest: it was changed")
    if backup.parent == workdir:
        backup.unlink()  # what was opened of a sealed backup: all of it is unpacked now
    check = check_chain(workdir / DATABASE, identity.verifier(), full=True)
    head = manifest["audit_head"]
    if not check.intact:
        raise UsageError(f"the audit chain in the backup is broken: {check.detail}")
    if check.head is not None and (check.head[0], check.head[1].hex()) != (head["seq"], head["hash"]):
        raise UsageError("the audit chain in the backup does not end where its manifest says")
    return manifest


def _running_pid(home: NodeHome) -> int | None:
    run = home.path / "run.json"
    try:
        pid = int(json.loads(run.read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError):
        return None
    return pid


def restore(backup: Path, home_dir: Path, *, key: Path | None = None) -> dict[str, Any]:
    """Restore ``backup`` into ``home_dir`` (an existing home of this node, or a directory with its node.key)."""
    home = NodeHome(home_dir)
    if key is not None and not home.key_path.exists():
        home_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(home_dir, 0o700)
        shutil.copyfile(key, home.key_path)
        os.chmod(home.key_path, 0o600)
    if not home.key_path.exists():
        raise ConfigError(f"{home_dir} holds no node.key: a backup is restored into the home of the node it is of "
                          "(give the node's key with --key)")
    _of_this_node(backup, home)
    pid = _running_pid(home)
    if pid is not None:
        raise UsageError(f"the node in {home_dir} is running (pid {pid}): stop it before restoring")
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=home_dir) as tmp:
        manifest = verify(backup, home, Path(tmp))
        kept = home_dir / f"before-restore-{int(time.time())}"
        for suffix in ("", "-wal", "-shm"):
            current = home.database_path.with_name(DATABASE + suffix)
            if current.exists():
                kept.mkdir(exist_ok=True)
                current.replace(kept / current.name)
        for name in manifest["files"]:
            target = home_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).replace(target)
            os.chmod(target, 0o600 if name in (DATABASE, "config.json") else 0o644)
    home.ensure_admin_token()
    return manifest


__all__ = ["create", "restore", "verify", "read_manifest", "snapshot", "FORMAT"]
