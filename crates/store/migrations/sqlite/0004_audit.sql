-- The tamper-evident audit log (sqlite): hash-chained entries, the chain head that
-- serialises appends across processes, and signed checkpoints (Merkle tree heads).
-- Hashes are lowercase hex; timestamps are seconds since the Unix epoch.

CREATE TABLE audit_entries (
    seq            BIGINT  PRIMARY KEY,
    recorded_at    BIGINT  NOT NULL,
    tenant         TEXT,
    key_id         TEXT,
    action         TEXT    NOT NULL,
    resource       TEXT    NOT NULL DEFAULT '',
    status         BIGINT  NOT NULL,
    latency_ms     BIGINT  NOT NULL,
    request_id     TEXT,
    input_sha256   TEXT,
    output_sha256  TEXT,
    model_digest   TEXT,
    prev_hash      TEXT    NOT NULL,
    entry_hash     TEXT    NOT NULL
);
CREATE INDEX audit_entries_tenant ON audit_entries (tenant, seq);

-- One row: the size of the chain and its last link. Every append locks this row
-- first, so appends from any number of processes form one chain.
CREATE TABLE audit_head (
    id         INTEGER  PRIMARY KEY CHECK (id = 1),
    size       BIGINT   NOT NULL,
    last_hash  TEXT     NOT NULL
);
INSERT INTO audit_head (id, size, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       TEXT   NOT NULL,
    signed_at  BIGINT NOT NULL,
    key_id     TEXT   NOT NULL,
    signature  TEXT   NOT NULL
);
