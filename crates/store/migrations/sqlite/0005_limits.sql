-- Rate limits per tenant (keys have had theirs since 0001) and metered usage (SQLite).
-- A NULL limit means "no limit". Usage is one row per tenant, key, model and UTC day,
-- incremented by upserts from each server's in-memory meter.

ALTER TABLE tenants ADD COLUMN limit_rpm BIGINT;
ALTER TABLE tenants ADD COLUMN limit_tpm BIGINT;
ALTER TABLE tenants ADD COLUMN limit_tpd BIGINT;

CREATE TABLE usage_daily (
    tenant_id  BIGINT  NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_id     TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    -- The UTC day as YYYY-MM-DD, so ranges compare as text on both backends.
    day        TEXT    NOT NULL,
    requests   BIGINT  NOT NULL,
    tokens     BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, key_id, model, day)
);
CREATE INDEX usage_daily_day ON usage_daily (tenant_id, day);
