"""What a node keeps: the SQLite store with group commit, the registers of signed record versions, the audit log."""

from node.store.audit import Actor, AuditEntry, AuditLog, utc
from node.store.database import Statement, Store
from node.store.evidence import HeldEvidence
from node.store.records import RECORD_TYPES, RecordType, bsn_of, kinds_for, registers_for, validate_record
from node.store.registers import Registers, StoredVersion, values_at
from node.store.authority import AuthorityLinks, Link
from node.store.consents import RevokedConsents
from node.store.users import ROLES, User, Users

__all__ = [
    "Actor", "AuditEntry", "AuditLog", "utc", "Statement", "Store", "HeldEvidence", "RECORD_TYPES", "RecordType", "kinds_for",
    "registers_for", "validate_record", "Registers", "StoredVersion", "values_at", "AuthorityLinks", "Link", "RevokedConsents",
    "ROLES", "User", "Users", "bsn_of",
]
