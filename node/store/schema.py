"""The store's schema: one SQL script per version (PRAGMA user_version counts how many have run)."""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[list[str]] = [
    # 1: records, their lookup keys, audit, replay guard
    """
    CREATE TABLE records (
        kind TEXT NOT NULL,
        record_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        signed BLOB NOT NULL,
        data BLOB,
        deleted INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        retain_until TEXT,
        current INTEGER NOT NULL,
        UNIQUE (kind, record_id, version)
    );
    CREATE INDEX records_current ON records(kind, record_id) WHERE current = 1;
    CREATE TABLE record_keys (
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        kind TEXT NOT NULL,
        record_id TEXT NOT NULL,
        PRIMARY KEY (name, value, kind, record_id)
    ) WITHOUT ROWID;
    CREATE INDEX record_keys_by_record ON record_keys(kind, record_id);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        action TEXT NOT NULL,
        result TEXT NOT NULL,
        actor_did TEXT NOT NULL,
        actor_role TEXT NOT NULL,
        actor_org TEXT NOT NULL,
        subject TEXT,
        record TEXT,
        trace_id TEXT,
        rule TEXT,
        request BLOB,
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL
    );
    CREATE INDEX audit_subject ON audit(subject);
    CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        signature BLOB NOT NULL
    );
    CREATE TABLE replay (
        sender TEXT NOT NULL,
        message_id BLOB NOT NULL,
        forget_after INTEGER NOT NULL,
        PRIMARY KEY (sender, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE meldingen (
        melding_id TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL,
        sender_did TEXT NOT NULL,
        sender_org TEXT NOT NULL,
        rule TEXT NOT NULL,
        record TEXT NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL
    );
    """,
    # 2: the peer table (discovery)
    """
    CREATE TABLE peers (
        did TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        organisation TEXT NOT NULL,
        identifiers TEXT NOT NULL,
        region TEXT,
        endpoints TEXT NOT NULL,
        registers TEXT NOT NULL,
        templates TEXT NOT NULL,
        events TEXT NOT NULL,
        seq INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        cert_id BLOB NOT NULL,
        last_seen INTEGER NOT NULL,
        source TEXT NOT NULL,
        announcement BLOB NOT NULL
    );
    """,
    # 3: notifications (outbox, inbox) and voluntary subscriptions
    """
    CREATE TABLE outbox (
        notification_id TEXT PRIMARY KEY,
        event_type TEXT NOT NULL,
        receiver_id_type TEXT NOT NULL,
        receiver_id TEXT NOT NULL,
        receiver_did TEXT,
        subscription_id TEXT,
        subjects TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        status TEXT NOT NULL,
        last_error TEXT,
        delivered_at INTEGER
    );
    CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE status = 'pending';
    CREATE TABLE inbox (
        notification_id TEXT PRIMARY KEY,
        sender_did TEXT NOT NULL,
        sender_org TEXT NOT NULL,
        event_type TEXT NOT NULL,
        subjects TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        fetched_version INTEGER,
        detail TEXT
    );
    CREATE TABLE evidence (
        kind TEXT NOT NULL,
        record_id TEXT NOT NULL,
        wlzIndicatieID TEXT NOT NULL,
        signed BLOB NOT NULL,
        PRIMARY KEY (kind, record_id)
    );
    CREATE INDEX evidence_by_indicatie ON evidence(wlzIndicatieID);
    CREATE TABLE responsible (
        wlzIndicatieID TEXT NOT NULL,
        uzovi TEXT NOT NULL,
        PRIMARY KEY (wlzIndicatieID, uzovi)
    ) WITHOUT ROWID;
    CREATE TABLE subscriptions (
        subscription_id TEXT PRIMARY KEY,
        subscriber_did TEXT NOT NULL,
        subscriber_org TEXT NOT NULL,
        receiver_id_type TEXT NOT NULL,
        receiver_id TEXT NOT NULL,
        events TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    """,
    # 4: authority learned from verified evidence replaces the responsible list that any allowed read added to
    """
    DROP TABLE responsible;
    ALTER TABLE records ADD COLUMN cert_hash BLOB;
    ALTER TABLE evidence ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE evidence ADD COLUMN source TEXT;
    ALTER TABLE evidence ADD COLUMN source_org TEXT;
    ALTER TABLE subscriptions ADD COLUMN bsn TEXT;
    ALTER TABLE subscriptions ADD COLUMN endpoint TEXT;
    CREATE INDEX subscriptions_by_bsn ON subscriptions(bsn) WHERE bsn IS NOT NULL;
    ALTER TABLE outbox ADD COLUMN receiver_url TEXT;
    CREATE TABLE authority_links (
        authority TEXT NOT NULL,
        subject TEXT NOT NULL,
        record TEXT NOT NULL,
        holder TEXT NOT NULL,
        target TEXT,
        version INTEGER NOT NULL,
        ord TEXT NOT NULL,
        signer TEXT NOT NULL,
        signer_cert BLOB NOT NULL,
        PRIMARY KEY (authority, subject, record)
    ) WITHOUT ROWID;
    CREATE TABLE revoked_consents (
        consent_id TEXT NOT NULL,
        client_did TEXT NOT NULL,
        revoked_at INTEGER NOT NULL,
        PRIMARY KEY (consent_id, client_did)
    ) WITHOUT ROWID;
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE audit_checkpoint (
        seq INTEGER PRIMARY KEY,
        hash BLOB NOT NULL,
        signature BLOB NOT NULL
    );
    CREATE TABLE witnessed (
        member TEXT PRIMARY KEY,
        did TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        signature BLOB NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE TABLE witness_receipts (
        witness TEXT PRIMARY KEY,
        organisation TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        at INTEGER NOT NULL,
        receipt BLOB NOT NULL
    );
    """,
    # 5: meldingen with a life cycle: received ones are Melding records (the old table is emptied into them at
    # start); sent ones go through the outbox (its payload) and are followed here until answered
    """
    ALTER TABLE outbox ADD COLUMN payload TEXT;
    CREATE TABLE meldingen_sent (
        melding_id TEXT PRIMARY KEY,
        receiver_did TEXT NOT NULL,
        receiver_org TEXT NOT NULL,
        record TEXT NOT NULL,
        rule TEXT NOT NULL,
        description TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        reden TEXT,
        termijn TEXT,
        updated_at INTEGER NOT NULL
    );
    """,
    # 6: named users of the admin API; the audit names the person (NEN 7513), not only the organisation
    """
    ALTER TABLE audit ADD COLUMN actor_user TEXT;
    CREATE INDEX audit_record ON audit(record) WHERE record IS NOT NULL;
    CREATE INDEX outbox_newest ON outbox(created_at);
    CREATE INDEX inbox_newest ON inbox(received_at);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        token_hash BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    """,
    # 7: a zorgaanbieder with several AGB codes (vestigingen) is one peer, found by any of them
    """
    ALTER TABLE peers ADD COLUMN vestigingen TEXT NOT NULL DEFAULT '[]';
    """,
    # 8: a version keeps its 64-byte signature, not the signed bytes: those are assembled again from the content,
    # the version's facts and the certificate it was signed under (docs/DECISIONS.md). signed stays for versions
    # written before; a version with neither is signed when first read, or by the background signer.
    """
    CREATE TABLE signing_certificates (
        cert_hash BLOB PRIMARY KEY,
        did TEXT NOT NULL,
        certificate BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE records_v8 (
        kind TEXT NOT NULL,
        record_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        signed BLOB,
        signature BLOB,
        data BLOB,
        deleted INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        retain_until TEXT,
        current INTEGER NOT NULL,
        cert_hash BLOB,
        UNIQUE (kind, record_id, version)
    );
    INSERT INTO records_v8 (kind, record_id, version, signed, signature, data, deleted, created_at, retain_until, current,
                            cert_hash)
        SELECT kind, record_id, version, signed, NULL, data, deleted, created_at, retain_until, current, cert_hash FROM records;
    DROP TABLE records;
    ALTER TABLE records_v8 RENAME TO records;
    CREATE INDEX records_current ON records(kind, record_id) WHERE current = 1;
    """,
    # 9: how many records each register holds, kept as records are written: /metrics and the info page count
    # nothing per request
    """
    CREATE TABLE register_counts (
        kind TEXT PRIMARY KEY,
        current INTEGER NOT NULL
    );
    INSERT INTO register_counts (kind, current)
        SELECT kind, count(*) FROM records WHERE current = 1 AND deleted = 0 GROUP BY kind;
    CREATE INDEX outbox_dead ON outbox(created_at) WHERE status = 'dead';
    """,
    # 10: what every record paid on disk and no query needs. A record's lookup keys name the record by the id of
    # its first stored version, not by kind and record id again (~100 bytes), and they are derived from its
    # content when they change, so no index from record to keys is kept (~160 bytes); a current version is found
    # through (kind, record_id, version) among its record's few versions (~65 bytes). The id is an INTEGER
    # PRIMARY KEY so that a VACUUM keeps it.
    """
    CREATE TABLE records_v10 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        record_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        signed BLOB,
        signature BLOB,
        data BLOB,
        deleted INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        retain_until TEXT,
        current INTEGER NOT NULL,
        cert_hash BLOB,
        UNIQUE (kind, record_id, version)
    );
    INSERT INTO records_v10 (id, kind, record_id, version, signed, signature, data, deleted, created_at, retain_until,
                             current, cert_hash)
        SELECT rowid, kind, record_id, version, signed, signature, data, deleted, created_at, retain_until, current,
               cert_hash FROM records;
    DROP TABLE records;
    ALTER TABLE records_v10 RENAME TO records;
    CREATE TABLE record_keys_v10 (
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        record INTEGER NOT NULL,
        PRIMARY KEY (name, value, record)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO record_keys_v10 (name, value, record)
        SELECT k.name, k.value, (SELECT min(r.id) FROM records r WHERE r.kind = k.kind AND r.record_id = k.record_id)
        FROM record_keys k WHERE EXISTS (SELECT 1 FROM records r WHERE r.kind = k.kind AND r.record_id = k.record_id);
    DROP TABLE record_keys;
    ALTER TABLE record_keys_v10 RENAME TO record_keys;
    """,
    # 11: an audit entry's hash covers the previous entry's hash, which is that entry's own stored hash: keeping a
    # copy (prev_hash) cost every entry 33 bytes and told a check nothing the hashes do not
    """
    ALTER TABLE audit DROP COLUMN prev_hash;
    """,
    # 12: the entries of one request keep its signed bytes once; the others keep its SHA-256, which is what the
    # chain hashes either way
    """
    ALTER TABLE audit ADD COLUMN request_sha256 BLOB;
    """,
    # 13: what waits for a receiver is found by the receiver (a peer that appears, a node that starts), not by reading
    # every pending row: an import for parties not known yet leaves a million of them
    """
    CREATE INDEX outbox_by_receiver ON outbox(receiver_id_type, receiver_id) WHERE status = 'pending';
    CREATE INDEX outbox_by_receiver_did ON outbox(receiver_did) WHERE status = 'pending';
    """,
    # 14: a subscribe looks up what its member holds already (the same subscription again, at most 32), and every
    # write plans for the organisations' subscriptions: neither by reading every client's subscription
    """
    CREATE INDEX subscriptions_by_subscriber ON subscriptions(subscriber_did);
    CREATE INDEX subscriptions_of_organisations ON subscriptions(subscriber_did) WHERE bsn IS NULL;
    """,
    # 15: nothing a timer or a request does reads a table that grows with history or traffic.
    # - A pass whose window is full of rows for receivers without room reads what is due for the others receiver by
    #   receiver, oldest first: the receiver index orders each receiver's rows by when they are due.
    # - The replay ids are kept in the order they come, not by (sender, id): an id went to a random page of a
    #   B-tree that outgrows the cache at sustained load (27.9 against 3.6 µs a row with 825,000 ids kept), and
    #   forgetting a minute read all of them. The guard in memory refuses a repeated id; the table only carries
    #   the ids over a restart.
    # - What the inbox has yet to act on is found by its own small index, not by reading every notification
    #   received (every 2 s).
    # - Retention finds the records whose period ended by that date, not by reading every current version (a
    #   register of a million, once a day, with the writes waiting behind the read).
    """
    DROP INDEX outbox_by_receiver;
    CREATE INDEX outbox_by_receiver ON outbox(receiver_id_type, receiver_id, next_attempt_at) WHERE status = 'pending';
    CREATE TABLE replay_in_order (
        forget_after INTEGER NOT NULL,
        sender TEXT NOT NULL,
        message_id BLOB NOT NULL
    );
    INSERT INTO replay_in_order (forget_after, sender, message_id)
        SELECT forget_after, sender, message_id FROM replay ORDER BY forget_after;
    DROP TABLE replay;
    ALTER TABLE replay_in_order RENAME TO replay;
    CREATE INDEX inbox_to_act ON inbox(status) WHERE status = 'received' OR status = 'fetch-failed';
    CREATE INDEX records_retention ON records(retain_until) WHERE current = 1 AND retain_until IS NOT NULL;
    """,
    # 16: a requester's signed request is kept beside its audit entry, not in it, for audit_request_days; then only
    # its SHA-256, which the entry holds from the start (entries moved here keep theirs in the bytes until then).
    # Cleared in place, the bytes left every page of the log two-thirds empty and nothing was given back; a range
    # of this table deleted frees whole pages, which the next requests fill.
    """
    CREATE TABLE audit_requests (
        seq INTEGER PRIMARY KEY,
        request BLOB NOT NULL
    );
    INSERT INTO audit_requests (seq, request) SELECT seq, request FROM audit WHERE request IS NOT NULL;
    UPDATE audit SET request = NULL WHERE request IS NOT NULL;
    """,
    # 17: a notification whose fetch failed is asked again after a pause that doubles (it was asked at every pass,
    # every 2 s, for as long as its source did not answer), and what waits for one sender to be asked is counted by
    # sender, to bound it
    """
    ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE inbox ADD COLUMN next_attempt_at REAL NOT NULL DEFAULT 0;
    DROP INDEX inbox_to_act;
    CREATE INDEX inbox_to_act ON inbox(next_attempt_at) WHERE status = 'received' OR status = 'fetch-failed';
    CREATE INDEX inbox_waiting_by_sender ON inbox(sender_did, status) WHERE status = 'received' OR status = 'fetch-failed';
    """,
    # 18: a witness keeps, besides the latest head of each member, a head for good every witness_pin_interval: a
    # later head may come from a chain that was rewritten and made longer, and it replaced the only one held; and
    # the certificate the latest was signed under: one since revoked no longer holds the member's own heads back
    """
    CREATE TABLE witness_pins (
        member TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        signature BLOB NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (member, seq)
    ) WITHOUT ROWID;
    INSERT INTO witness_pins (member, seq, hash, signature, at) SELECT member, seq, hash, signature, at FROM witnessed;
    ALTER TABLE witnessed ADD COLUMN cert BLOB;
    """,
    # 19: a witness keeps nothing of a client's (his node's log is his own; what a witness kept told a member he
    # is a client): what it kept before goes. A party's member key is its identifier, a client's his did.
    """
    DELETE FROM witnessed WHERE member LIKE 'did:%';
    DELETE FROM witness_pins WHERE member LIKE 'did:%';
    """,
    # 20: a gemachtigde follows the records of the client who gave her a machtiging: her subscription holds while it
    # does (his withdrawal ends it, as do its geldigTot and his certificate's revocation; the source asks his node
    # after it, signed as she presented it); her node keeps which subscription a notification came by, so his
    # changes are shown as his. A subscription keeps its subscriber's certificate: a client, in no peer table, is
    # revoked by it
    """
    ALTER TABLE subscriptions ADD COLUMN subscriber_cert BLOB;
    ALTER TABLE subscriptions ADD COLUMN machtiging BLOB;
    ALTER TABLE subscriptions ADD COLUMN machtiging_id TEXT;
    ALTER TABLE subscriptions ADD COLUMN machtiging_signer TEXT;
    ALTER TABLE subscriptions ADD COLUMN machtiging_cert BLOB;
    ALTER TABLE subscriptions ADD COLUMN machtiging_until TEXT;
    CREATE INDEX subscriptions_by_machtiging ON subscriptions(machtiging_id) WHERE machtiging_id IS NOT NULL;
    ALTER TABLE inbox ADD COLUMN subscription_id TEXT;
    """,
    # 21: a client's subscription keeps when the certificate he subscribed with ends: his node is in no peer table,
    # so nothing else says the source may still send to it (his node subscribes again with a renewed one)
    """
    ALTER TABLE subscriptions ADD COLUMN subscriber_until INTEGER;
    CREATE INDEX subscriptions_by_subscriber_until ON subscriptions(subscriber_until) WHERE subscriber_until IS NOT NULL;
    """,
    # 22: a withdrawal keeps what the withdrawing client's certificate commits to (his BSN): it counts for a copy of
    # the consent he signed under an earlier key of his too, not only for the did it came from
    """
    ALTER TABLE revoked_consents ADD COLUMN client_commitment BLOB;
    """,
]


__all__ = ["MIGRATIONS"]
