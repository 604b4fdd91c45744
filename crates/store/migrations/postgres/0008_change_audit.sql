-- Changes record themselves for the audit log in their own transaction (PostgreSQL).
--
-- Triggers on every audited table insert a row into audit_outbox inside the transaction
-- that makes the change: the change and its record commit together or not at all, from
-- any code path (HTTP, CLI, jobs) and any process. The audit writer moves outbox rows
-- into the hash chain (and deletes them) in one transaction of its own. If the outbox
-- cannot be written, the change fails.

CREATE TABLE audit_outbox (
    id           BIGSERIAL PRIMARY KEY,
    recorded_at  BIGINT    NOT NULL,
    tenant       TEXT,
    action       TEXT      NOT NULL,
    resource     TEXT      NOT NULL
);

CREATE FUNCTION audit_outbox_add(tenant_id BIGINT, tenant_name TEXT, action TEXT, resource TEXT)
RETURNS VOID AS $$
BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (EXTRACT(EPOCH FROM now())::BIGINT,
            COALESCE(tenant_name, (SELECT name FROM tenants WHERE id = tenant_id)),
            action, resource);
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION audit_tenants() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_outbox_add(NULL, NEW.name, 'tenant.create', 'tenant/' || NEW.name);
    ELSE
        PERFORM audit_outbox_add(NULL, OLD.name, 'tenant.delete', 'tenant/' || OLD.name);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_tenants AFTER INSERT OR DELETE ON tenants
FOR EACH ROW EXECUTE FUNCTION audit_tenants();

CREATE FUNCTION audit_api_keys() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_outbox_add(NEW.tenant_id, NULL, 'key.create', 'key/' || NEW.key_id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM audit_outbox_add(OLD.tenant_id, NULL, 'key.delete', 'key/' || OLD.key_id);
    ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        PERFORM audit_outbox_add(NEW.tenant_id, NULL, 'key.revoke', 'key/' || NEW.key_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_api_keys AFTER INSERT OR DELETE OR UPDATE OF revoked_at ON api_keys
FOR EACH ROW EXECUTE FUNCTION audit_api_keys();

CREATE FUNCTION audit_model_versions() RETURNS trigger AS $$
DECLARE
    row_model RECORD;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT m.name, m.tenant_id INTO row_model FROM models m WHERE m.id = NEW.model_id;
        PERFORM audit_outbox_add(row_model.tenant_id, NULL, 'model.version.create',
                                 'model/' || row_model.name || ':' || NEW.version);
    ELSE
        SELECT m.name, m.tenant_id INTO row_model FROM models m WHERE m.id = OLD.model_id;
        PERFORM audit_outbox_add(row_model.tenant_id, NULL, 'model.version.delete',
                                 'model/' || COALESCE(row_model.name, '?') || ':' || OLD.version);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_model_versions AFTER INSERT OR DELETE ON model_versions
FOR EACH ROW EXECUTE FUNCTION audit_model_versions();

CREATE FUNCTION audit_models() RETURNS trigger AS $$
BEGIN
    PERFORM audit_outbox_add(OLD.tenant_id, NULL, 'model.delete', 'model/' || OLD.name);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_models AFTER DELETE ON models
FOR EACH ROW EXECUTE FUNCTION audit_models();

CREATE FUNCTION audit_datasets() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_outbox_add(NEW.tenant_id, NULL, 'dataset.create',
                                 'dataset/' || NEW.name || '@' || NEW.digest);
    ELSE
        PERFORM audit_outbox_add(OLD.tenant_id, NULL, 'dataset.delete', 'dataset/' || OLD.name);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_datasets AFTER INSERT OR DELETE ON datasets
FOR EACH ROW EXECUTE FUNCTION audit_datasets();

CREATE FUNCTION audit_jobs() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_outbox_add(NEW.tenant_id, NULL, 'job.create', 'job/' || NEW.id);
    ELSIF OLD.status <> NEW.status THEN
        PERFORM audit_outbox_add(NEW.tenant_id, NULL, 'job.' || NEW.status, 'job/' || NEW.id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_jobs AFTER INSERT OR UPDATE OF status ON jobs
FOR EACH ROW EXECUTE FUNCTION audit_jobs();
