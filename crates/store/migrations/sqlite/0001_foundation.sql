-- Tenants, API keys, models and their immutable versions (SQLite).
-- Timestamps are seconds since the Unix epoch, written by the application.
-- Booleans are INTEGER 0/1: sqlx's Any driver cannot decode SQLite's BOOLEAN type.

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    commercial  INTEGER NOT NULL DEFAULT 0 CHECK (commercial IN (0, 1)),
    created_at  BIGINT  NOT NULL
);

INSERT INTO tenants (name, commercial, created_at)
VALUES ('admin', 0, CAST(strftime('%s', 'now') AS INTEGER));

CREATE TABLE api_keys (
    key_id       TEXT    PRIMARY KEY,
    tenant_id    BIGINT  NOT NULL REFERENCES tenants (id),
    secret_hash  BLOB    NOT NULL,
    scopes       TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT  NOT NULL,
    revoked_at   BIGINT,
    expires_at   BIGINT,
    limit_rpm    BIGINT,
    limit_tpm    BIGINT,
    limit_tpd    BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE models (
    id            INTEGER PRIMARY KEY,
    tenant_id     BIGINT  NOT NULL REFERENCES tenants (id),
    name          TEXT    NOT NULL,
    shared        INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),
    owner         TEXT,
    license       TEXT,
    description   TEXT,
    -- The highest version number ever allocated, so numbers are never reused after a delete.
    last_version  BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX models_name ON models (name);

CREATE TABLE model_versions (
    model_id    BIGINT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    manifest    TEXT   NOT NULL,
    total_size  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (model_id, version)
);
