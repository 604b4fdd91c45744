-- Uploaded datasets and the persisted job queue (SQLite).
-- Timestamps are seconds since the Unix epoch; booleans are INTEGER 0/1.

CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants (id),
    name        TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    format      TEXT    NOT NULL,
    size        BIGINT  NOT NULL,
    n_rows      BIGINT  NOT NULL,
    -- JSON: the columns and their widths, as validated at upload.
    columns     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE jobs (
    id                 TEXT    PRIMARY KEY,
    tenant_id          BIGINT  NOT NULL REFERENCES tenants (id),
    kind               TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    request            TEXT    NOT NULL,
    progress           TEXT,
    result             TEXT,
    error              TEXT,
    idempotency_key    TEXT,
    checkpoint_digest  TEXT,
    cancel_requested   INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    -- Which runner holds the job and when it last proved alive, so a job whose runner
    -- died is taken over instead of staying 'running' forever.
    runner_id          TEXT,
    heartbeat_at       BIGINT,
    attempts           BIGINT  NOT NULL DEFAULT 0,
    created_at         BIGINT  NOT NULL,
    started_at         BIGINT,
    finished_at        BIGINT,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX jobs_status ON jobs (status, created_at);
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at);
