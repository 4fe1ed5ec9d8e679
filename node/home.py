"""A node's home directory and a network root's directory, on disk.

HOME/
    node.key            Ed25519 seed, 0600
    node.next.key       a new key made by `iwlz key rotate`, until its certificate arrives and the node switches
    config.json         role, organisation, identifiers, listen address, trusted roots (0600)
    certificate.cwt     membership certificate issued by the network root
    certificate.next.cwt the certificate of node.next.key
    revocations/        root-signed revocation lists this node has seen
    admin.token         bearer token of the local admin API (0600)
    node.sqlite3        the store

NETWORK/
    root.key            the network root's Ed25519 seed, 0600 (keep offline)
    network.json        root did and name
    issued.jsonl        one line per issued certificate (id, subject, role, organisation, expiry)
    revocation-list.cbor the latest signed revocation list
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from datetime import date
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from keys import (
    BSN_KEY_SIZE,
    CLIENT_ORGANISATION,
    ROLES,
    BsnCommitment,
    Identity,
    KeysError,
    Member,
    TrustStore,
    check_identifier,
    issue_certificate,
    parse_certificate,
    read_identity,
    sign_revocation_list,
    write_identity,
)
from keys.enrolment import issue_enrolment_token
from keys.revocation import parse_revocation_list
from node.errors import ConfigError, UsageError

DAY = 24 * 3600
MAX_VALIDITY = 10 * 365 * DAY
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "y": 365 * DAY}


def parse_duration(text: str) -> int:
    """Seconds in ``30s``, ``15m``, ``12h``, ``90d`` or ``5y``; more than nothing, at most ten years."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit():
        raise UsageError(f"{text!r} is not a duration such as 30s, 15m, 12h, 90d or 5y")
    seconds = int(number) * _UNITS[unit]
    if not 0 < seconds <= MAX_VALIDITY:
        raise UsageError("a certificate is valid for more than 0 seconds and at most 10 years")
    return seconds


def _validity(days: int | None, valid_for: int | None) -> int:
    return valid_for if valid_for is not None else (days if days is not None else 365) * DAY


def open_private(path: str | Path, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``path`` opened to write (``mode`` "w" or "wb"), readable and writable by the node's user only from its first
    byte, also when it was there before with a wider mode (what it gets holds keys or personal data)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, mode, **kwargs)
    except OSError as exc:
        os.close(fd)
        raise UsageError(f"cannot make {path} readable by its owner only: {exc.strerror}") from exc


def _write_private(path: Path, text: str) -> None:
    with open_private(path, encoding="utf-8") as handle:
        handle.write(text)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc.__class__.__name__}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _identity(path: Path) -> Identity:
    try:
        return read_identity(path)
    except KeysError as exc:
        raise ConfigError(exc.reason) from exc


@dataclass
class NodeConfig:
    role: str
    name: str
    identifiers: dict[str, str]
    region: str | None = None
    vestigingen: list[str] = field(default_factory=list)  # a zorgaanbieder's further AGB codes (its certificate names them)
    bsn_key: str | None = None  # a client's: the key of his certificate's BSN commitment (hex), sent only sealed
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    tls_cert: str | None = None  # PEM chain for the peer listener (relative to the home): the node then speaks https
    tls_key: str | None = None
    tls_ca: str | None = None  # PEM CA file trusted for https peers, beside the system's CAs
    admin_host: str = "127.0.0.1"  # loopback only, unless admin_plain_http
    admin_plain_http: bool = False  # the admin listener may answer beyond the machine, in plain HTTP (test networks)
    admin_port: int = 0  # 0: any free port (printed at start and kept in run.json); fix it for the web interface
    roots: list[str] = field(default_factory=list)
    bootstrap: list[str] = field(default_factory=list)
    evidence_freshness: int = 3600
    evidence_refresh_interval: float = 3600.0
    evidence_refresh_margin: int = 7 * 24 * 3600
    certificate_check_interval: float = 10.0
    witness_interval: float = 60.0
    witness_pin_interval: float = 600.0  # as a witness: a member's head is kept for good at most this often
    max_connections: int = 1024
    member_in_flight: int = 128  # a member's messages handled at once (a node's own client sends at most 64 to a host)
    retention: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> {"ended": years, "withdrawn": years}
    retention_interval: float = 24 * 3600.0  # how often the node purges on its own
    notification_retention_days: int = 90  # delivered notifications (outbox) and those acted on (inbox): ids only
    audit_request_days: int | None = 90  # an audit entry's signed request, then its SHA-256 only; None: kept always
    holidays: list[str] | None = None  # non-working days besides weekends (ISO dates); None: the Dutch public holidays
    header_timeout: float = 15.0
    synchronous: str = "NORMAL"
    gossip_interval: float = 30.0
    gossip_fanout: int = 3
    announcement_lifetime: int = 24 * 3600
    mdns: bool = True
    mdns_interfaces: list[str] | None = None
    inbox_fetch: bool = True
    outbox_first_delay: float = 1.0
    outbox_max_delay: float = 300.0
    outbox_probe_max_delay: float = 15.0  # the longest wait between probes of a receiver that does not answer
    outbox_dead_after: float = 7 * 24 * 3600

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> NodeConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(value) - known
        if unknown:
            raise ConfigError(f"config.json has unknown settings: {', '.join(sorted(unknown))}")
        try:
            config = cls(**value)
        except TypeError as exc:
            raise ConfigError(f"config.json is incomplete: {exc}") from exc
        config.check()
        return config

    @property
    def organisation(self) -> str:
        """What the node's certificate names it: its ``name``, or for a client ``"client"`` (a client's name is
        personal data and a certificate travels in the clear; a home made before that rule keeps its name here)."""
        return CLIENT_ORGANISATION if self.role == "client" else self.name

    @property
    def admin_on_network(self) -> bool:
        """Whether the admin listener answers beyond this machine (anything but a loopback address or localhost)."""
        return not _loopback(self.admin_host)

    def check(self) -> None:
        """Settings whose shape a type hint does not catch."""
        if self.bsn_key is not None and not re.fullmatch(r"[0-9a-f]{64}", str(self.bsn_key)):
            raise ConfigError("bsn_key: 64 lowercase hex digits (made by iwlz init; leave it as it is)")
        if self.admin_on_network and self.admin_plain_http is not True:
            # It carries bearer tokens, records and a client's data, and never speaks TLS itself.
            raise ConfigError(f"admin_host {self.admin_host!r}: the admin listener speaks plain HTTP, so it answers on "
                              "this machine only (127.0.0.1, ::1, localhost); reach it through an SSH tunnel or the "
                              "reverse proxy (docs/OPERATIONS.md), or, for a test network, set admin_plain_http")
        for kind, states in self.retention.items():
            wrong = set(states) - {"ended", "withdrawn"}
            if wrong or not all(type(v) is int and v >= 0 for v in states.values()):
                raise ConfigError(f"retention of {kind}: give years (0 or more) for 'ended' and/or 'withdrawn'")
        if type(self.member_in_flight) is not int or self.member_in_flight < 1:
            raise ConfigError("member_in_flight: give how many of a member's messages are handled at once (1 or more)")
        if self.audit_request_days is not None and (type(self.audit_request_days) is not int or self.audit_request_days < 0):
            raise ConfigError("audit_request_days: give days (0 or more), or null to keep signed requests always")
        try:
            for day in self.holidays or []:
                date.fromisoformat(day)
        except (TypeError, ValueError) as exc:
            raise ConfigError("holidays must be a list of dates like 2026-04-27") from exc


class NodeHome:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    key_path = property(lambda self: self.path / "node.key")
    next_key_path = property(lambda self: self.path / "node.next.key")
    config_path = property(lambda self: self.path / "config.json")
    certificate_path = property(lambda self: self.path / "certificate.cwt")
    next_certificate_path = property(lambda self: self.path / "certificate.next.cwt")
    revocations_path = property(lambda self: self.path / "revocations")
    token_path = property(lambda self: self.path / "admin.token")
    database_path = property(lambda self: self.path / "node.sqlite3")

    @classmethod
    def create(cls, path: Path, *, role: str, name: str | None, identifiers: dict[str, str],
               region: str | None) -> NodeHome:
        """A new home; ``name`` is the organisation's, and a client's node takes none."""
        if role not in ROLES:
            raise UsageError(f"role must be one of {', '.join(ROLES)}")
        if role == "client" and name not in (None, CLIENT_ORGANISATION):
            raise UsageError("a client's node names no one: leave the name out (his certificate, which travels in the "
                             "clear with every request, says only 'client')")
        if role != "client" and not name:
            raise UsageError(f"a {role} node needs the organisation's name (--name)")
        try:
            checked = {k: check_identifier(k, v) for k, v in identifiers.items()}
            if region is not None:
                check_identifier("uzovi", region)
        except KeysError as exc:
            raise UsageError(exc.reason) from exc
        home = cls(path)
        if home.key_path.exists():
            raise UsageError(f"{path} already holds a node")
        home.path.mkdir(parents=True, exist_ok=True)
        os.chmod(home.path, 0o700)
        write_identity(home.key_path, Identity.generate())
        home.save_config(NodeConfig(role=role, name=name or CLIENT_ORGANISATION, identifiers=checked, region=region,
                                    bsn_key=secrets.token_hex(BSN_KEY_SIZE) if role == "client" else None))
        _write_private(home.token_path, secrets.token_urlsafe(32) + "\n")
        return home

    def identity(self) -> Identity:
        return _identity(self.key_path)

    def bsn_key(self) -> bytes | None:
        """The key of a client's BSN commitment (None for a node without a BSN): made once (a home from before has
        none yet) and kept in config.json. His node sends it, sealed, only with what names his BSN; whoever holds it
        can test a BSN against his certificate."""
        config = self.config()
        if "bsn" not in config.identifiers:
            return None
        if config.bsn_key is None:
            config.bsn_key = secrets.token_hex(BSN_KEY_SIZE)
            self.save_config(config)
        return bytes.fromhex(config.bsn_key)

    # Renewal and rotation ------------------------------------------------------

    def rotate_key(self) -> Identity:
        """Make the key this node moves to once the network root certifies it (node.next.key)."""
        self.require()
        identity = Identity.generate()
        self.next_key_path.unlink(missing_ok=True)
        self.next_certificate_path.unlink(missing_ok=True)
        write_identity(self.next_key_path, identity)
        return identity

    def next_identity(self) -> Identity | None:
        return _identity(self.next_key_path) if self.next_key_path.exists() else None

    def finish_switch(self) -> bool:
        """Move a certified new key into place: node.next.key becomes node.key (the old key is gone), and
        certificate.next.cwt becomes certificate.cwt. Safe to repeat after a crash halfway."""
        if not self.next_certificate_path.exists():
            return False
        subject = parse_certificate(self.next_certificate_path.read_bytes())[1].did
        candidate = self.next_identity() or self.identity()
        if candidate.did != subject:
            return False
        if self.next_key_path.exists():
            self.next_key_path.replace(self.key_path)
        self.next_certificate_path.replace(self.certificate_path)
        return True

    def config(self) -> NodeConfig:
        self.require()
        return NodeConfig.from_json(_read_json(self.config_path))

    def save_config(self, config: NodeConfig) -> None:
        _write_private(self.config_path, json.dumps(config.to_json(), indent=2) + "\n")

    def ensure_admin_token(self) -> None:
        """A home restored from a backup (which never holds the token) gets a new one."""
        if not self.token_path.exists():
            _write_private(self.token_path, secrets.token_urlsafe(32) + "\n")

    def admin_token(self) -> str:
        try:
            return self.token_path.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise ConfigError(f"{self.token_path} cannot be read") from exc

    def require(self) -> NodeHome:
        if not self.config_path.exists():
            raise ConfigError(f"{self.path} is not a node home: run iwlz init {self.path} first")
        return self

    def certificate(self) -> bytes:
        self.require()
        try:
            return self.certificate_path.read_bytes()
        except FileNotFoundError as exc:
            raise ConfigError(f"{self.path} has no certificate yet: run iwlz cert issue --network DIR {self.path}") from exc

    def install_certificate(self, cert: bytes, root: str, *, target: Path | None = None) -> None:
        """Keep a certificate the root ``root`` signed (atomically) and trust that root from now on."""
        tmp = self.path / ".certificate.tmp"
        tmp.write_bytes(cert)
        tmp.replace(target or self.certificate_path)
        config = self.config()
        if root not in config.roots:
            config.roots.append(root)
            self.save_config(config)

    def member(self) -> Member:
        try:
            return parse_certificate(self.certificate())[1]
        except KeysError as exc:
            raise ConfigError(f"certificate in {self.path} cannot be used: {exc.reason}; the network root issues a "
                              f"new one (iwlz cert issue --network DIR {self.path})") from exc

    def revocation_lists(self) -> list[bytes]:
        if not self.revocations_path.is_dir():
            return []
        return [p.read_bytes() for p in sorted(self.revocations_path.glob("*.cbor"))]

    def store_revocation_list(self, data: bytes) -> None:
        """Keep a revocation list that was adopted, one file per root."""
        try:
            _, rlist = parse_revocation_list(data)
        except KeysError as exc:
            raise ConfigError(exc.reason) from exc
        self.revocations_path.mkdir(exist_ok=True)
        name = rlist.issuer.rsplit(":", 1)[-1]
        tmp = self.revocations_path / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.revocations_path / f"{name}.cbor")

    def trust_store(self) -> TrustStore:
        config = self.config()
        if not config.roots:
            raise ConfigError(f"{self.path} trusts no network root yet: run iwlz cert issue")
        try:
            trust = TrustStore(config.roots)
            for data in self.revocation_lists():
                trust.apply_revocation_list(data)
        except KeysError as exc:
            raise ConfigError(f"trust settings in {self.path} are damaged: {exc.reason}") from exc
        return trust


class NetworkDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    key_path = property(lambda self: self.path / "root.key")
    info_path = property(lambda self: self.path / "network.json")
    issued_path = property(lambda self: self.path / "issued.jsonl")
    revocation_path = property(lambda self: self.path / "revocation-list.cbor")

    @classmethod
    def create(cls, path: Path, name: str) -> NetworkDir:
        net = cls(path)
        if net.key_path.exists():
            raise UsageError(f"{path} already holds a network root")
        net.path.mkdir(parents=True, exist_ok=True)
        os.chmod(net.path, 0o700)
        root = Identity.generate()
        write_identity(net.key_path, root)
        _write_private(net.info_path, json.dumps({"name": name, "root": root.did}, indent=2) + "\n")
        return net

    def require(self) -> NetworkDir:
        if not self.info_path.exists():
            raise ConfigError(f"{self.path} is not a network directory: run iwlz network init {self.path} first")
        return self

    def root(self) -> Identity:
        self.require()
        return _identity(self.key_path)

    def root_did(self) -> str:
        did = _read_json(self.info_path).get("root")
        if not isinstance(did, str):
            raise ConfigError(f"{self.info_path} names no root")
        return did

    def issue(self, home: NodeHome, *, now: int, days: int | None = None, valid_for: int | None = None) -> Member:
        """Sign ``home``'s membership certificate and make ``home`` trust this root.

        For a node that made a new key (iwlz key rotate) the certificate is for that key (certificate.next.cwt);
        otherwise it is a renewal for the current key. Either way it supersedes the node's current certificate.
        """
        self.require()
        config = home.config()
        identity = home.next_identity() or home.identity()
        current = home.member().cert_id if home.certificate_path.exists() else None
        cert, member = self.certify(
            subject=identity.did, organisation=config.organisation, role=config.role, identifiers=config.identifiers,
            region=config.region, vestigingen=config.vestigingen, now=now, seconds=_validity(days, valid_for),
            supersedes=current, bsn_key=home.bsn_key())
        target = home.next_certificate_path if home.next_key_path.exists() else home.certificate_path
        home.install_certificate(cert, self.root_did(), target=target)
        if self.revocation_path.exists():
            home.store_revocation_list(self.revocation_path.read_bytes())
        return member

    def certify(self, *, subject: str, organisation: str, role: str, identifiers: dict[str, str], region: str | None,
                vestigingen: list[str] | tuple[str, ...], now: int, seconds: int, supersedes: bytes | None = None,
                bsn_commitment: BsnCommitment | None = None, bsn_key: bytes | None = None,
                token: str | None = None) -> tuple[bytes, Member]:
        """Sign a certificate and note it in issued.jsonl (without any BSN or key; with the id of the join token it
        was enrolled with, if any); returns it and what it says. A client's BSN comes committed (enrolment) or in
        ``identifiers`` with the ``bsn_key`` his node keeps."""
        if not 0 < seconds <= MAX_VALIDITY:
            raise UsageError("a certificate is valid for more than 0 seconds and at most 10 years")
        try:
            cert = issue_certificate(
                self.root(), subject=subject, organisation=organisation, role=role, identifiers=identifiers,
                region=region, vestigingen=vestigingen, not_before=now - 300, expires=now + seconds, issued_at=now,
                supersedes=supersedes, bsn_commitment=bsn_commitment, bsn_key=bsn_key,
            )
        except KeysError as exc:
            raise UsageError(exc.reason) from exc
        member = parse_certificate(cert)[1]
        entry = {"cert_id": member.cert_id_hex, "did": member.did, "role": member.role,
                 "organisation": member.organisation, "expires": member.expires, "ids": dict(member.identifiers),
                 "token": token}
        with self.issued_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        return cert, member

    def issued(self) -> list[dict[str, Any]]:
        if not self.issued_path.exists():
            return []
        return [json.loads(line) for line in self.issued_path.read_text(encoding="utf-8").splitlines() if line]

    def enrolment_token(self, *, role: str, reusable: bool, seconds: int, identifiers: dict[str, str] | None,
                        now: int) -> bytes:
        """A join token for the enrolment service of a test network (keys/enrolment.py)."""
        info = _read_json(self.require().info_path)
        try:
            return issue_enrolment_token(self.root(), network=str(info.get("name", "")), role=role, issued_at=now,
                                         expires=now + seconds, token_id=secrets.token_bytes(16), reusable=reusable,
                                         identifiers=identifiers)
        except KeysError as exc:
            raise UsageError(exc.reason) from exc

    def revoked(self) -> frozenset[bytes]:
        if not self.revocation_path.exists():
            return frozenset()
        return parse_revocation_list(self.revocation_path.read_bytes())[1].revoked

    def revoke(self, cert_ids: list[str], *, now: int) -> tuple[int, bytes]:
        """Sign a new revocation list version adding ``cert_ids``; returns (version, list)."""
        try:
            new = [bytes.fromhex(c) for c in cert_ids]
        except ValueError as exc:
            raise UsageError("a certificate id is 32 hex digits") from exc
        if any(len(c) != 16 for c in new):
            raise UsageError("a certificate id is 32 hex digits")
        version, revoked = 0, set[bytes]()
        if self.revocation_path.exists():
            _, current = parse_revocation_list(self.revocation_path.read_bytes())
            version, revoked = current.version, set(current.revoked)
        data = sign_revocation_list(self.root(), version=version + 1, revoked=revoked | set(new), issued_at=now)
        tmp = self.path / ".revocation-list.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.revocation_path)
        return version + 1, data


__all__ = ["NodeHome", "NodeConfig", "NetworkDir", "open_private"]
