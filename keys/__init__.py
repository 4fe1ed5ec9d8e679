"""Identities, did:key, certificates, revocation and trust: no sockets, no clock."""

from keys.certificate import (
    BSN_KEY_SIZE,
    CLIENT_ORGANISATION,
    ROLES,
    BsnCommitment,
    Member,
    check_organisation,
    issue_certificate,
    parse_certificate,
)
from keys.cose import Sign1, parse_sign1, sign1
from keys.did import did_to_public_key, is_did, public_key_to_did
from keys.errors import (
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    InsecureKeyFile,
    InvalidIdentifier,
    InvalidSignature,
    KeysError,
    MalformedCertificate,
    MalformedData,
    MalformedKey,
    TooLarge,
    UnknownCertificate,
    UnknownIssuer,
)
from keys.identifiers import check_agb, check_bsn, check_identifier, check_kvk, check_uzovi
from keys.identity import Identity, Verifier
from keys.keyfile import read_identity, write_identity
from keys.revocation import RevocationList, parse_revocation_list, sign_revocation_list
from keys.truststore import TrustStore

__all__ = [
    "BSN_KEY_SIZE", "CLIENT_ORGANISATION", "ROLES", "BsnCommitment", "Member", "check_organisation", "issue_certificate",
    "parse_certificate",
    "Sign1", "parse_sign1", "sign1",
    "did_to_public_key", "is_did", "public_key_to_did",
    "CertificateError", "CertificateExpired", "CertificateNotYetValid", "CertificateRevoked",
    "InsecureKeyFile", "InvalidIdentifier", "InvalidSignature", "KeysError", "MalformedCertificate",
    "MalformedData", "MalformedKey", "TooLarge", "UnknownCertificate", "UnknownIssuer",
    "check_agb", "check_bsn", "check_identifier", "check_kvk", "check_uzovi",
    "Identity", "Verifier", "read_identity", "write_identity",
    "RevocationList", "parse_revocation_list", "sign_revocation_list", "TrustStore",
]
