-- Changes record themselves for the audit log in their own transaction (SQLite).
--
-- Triggers on every audited table insert a row into audit_outbox inside the transaction
-- that makes the change: the change and its record commit together or not at all, from
-- any code path (HTTP, CLI, jobs) and any process. The audit writer moves outbox rows
-- into the hash chain (and deletes them) in one transaction of its own. If the outbox
-- cannot be written, the change fails.

CREATE TABLE audit_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at  BIGINT  NOT NULL,
    tenant       TEXT,
    action       TEXT    NOT NULL,
    resource     TEXT    NOT NULL
);

CREATE TRIGGER audit_tenant_create AFTER INSERT ON tenants BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER), NEW.name, 'tenant.create', 'tenant/' || NEW.name);
END;

CREATE TRIGGER audit_tenant_delete AFTER DELETE ON tenants BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER), OLD.name, 'tenant.delete', 'tenant/' || OLD.name);
END;

CREATE TRIGGER audit_key_create AFTER INSERT ON api_keys BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = NEW.tenant_id), 'key.create', 'key/' || NEW.key_id);
END;

CREATE TRIGGER audit_key_revoke AFTER UPDATE OF revoked_at ON api_keys
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = NEW.tenant_id), 'key.revoke', 'key/' || NEW.key_id);
END;

CREATE TRIGGER audit_key_delete AFTER DELETE ON api_keys BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = OLD.tenant_id), 'key.delete', 'key/' || OLD.key_id);
END;

CREATE TRIGGER audit_version_create AFTER INSERT ON model_versions BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    SELECT CAST(strftime('%s', 'now') AS INTEGER), t.name, 'model.version.create',
           'model/' || m.name || ':' || NEW.version
    FROM models m JOIN tenants t ON t.id = m.tenant_id WHERE m.id = NEW.model_id;
END;

CREATE TRIGGER audit_version_delete AFTER DELETE ON model_versions BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT t.name FROM models m JOIN tenants t ON t.id = m.tenant_id WHERE m.id = OLD.model_id),
            'model.version.delete',
            'model/' || COALESCE((SELECT name FROM models WHERE id = OLD.model_id), '?') || ':' || OLD.version);
END;

CREATE TRIGGER audit_model_delete AFTER DELETE ON models BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = OLD.tenant_id), 'model.delete', 'model/' || OLD.name);
END;

CREATE TRIGGER audit_dataset_create AFTER INSERT ON datasets BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = NEW.tenant_id), 'dataset.create',
            'dataset/' || NEW.name || '@' || NEW.digest);
END;

CREATE TRIGGER audit_dataset_delete AFTER DELETE ON datasets BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = OLD.tenant_id), 'dataset.delete', 'dataset/' || OLD.name);
END;

CREATE TRIGGER audit_job_create AFTER INSERT ON jobs BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = NEW.tenant_id), 'job.create', 'job/' || NEW.id);
END;

CREATE TRIGGER audit_job_status AFTER UPDATE OF status ON jobs
WHEN OLD.status <> NEW.status BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = NEW.tenant_id), 'job.' || NEW.status, 'job/' || NEW.id);
END;
