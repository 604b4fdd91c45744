-- Changes to cards, signatures, trusted keys and tenants' serving flags record
-- themselves for the audit log in their own transaction (PostgreSQL), as 0008 does for
-- the other audited tables.

CREATE FUNCTION audit_model_card() RETURNS trigger AS $$
BEGIN
    IF (OLD.owner, OLD.license, OLD.description, OLD.intended_use, OLD.out_of_scope_use,
        OLD.permitted_tenants, OLD.commercial_use, OLD.license_expires, OLD.attribution)
       IS DISTINCT FROM
       (NEW.owner, NEW.license, NEW.description, NEW.intended_use, NEW.out_of_scope_use,
        NEW.permitted_tenants, NEW.commercial_use, NEW.license_expires, NEW.attribution) THEN
        PERFORM audit_outbox_add(NEW.tenant_id, NULL, 'model.card.update', 'model/' || NEW.name);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_model_card AFTER UPDATE OF owner, license, description, intended_use,
    out_of_scope_use, permitted_tenants, commercial_use, license_expires, attribution ON models
FOR EACH ROW EXECUTE FUNCTION audit_model_card();

CREATE FUNCTION audit_tenant_policy() RETURNS trigger AS $$
BEGIN
    IF (OLD.commercial, OLD.require_signed_models)
       IS DISTINCT FROM (NEW.commercial, NEW.require_signed_models) THEN
        PERFORM audit_outbox_add(NULL, NEW.name, 'tenant.policy.update', 'tenant/' || NEW.name);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_tenant_policy AFTER UPDATE OF commercial, require_signed_models ON tenants
FOR EACH ROW EXECUTE FUNCTION audit_tenant_policy();

CREATE FUNCTION audit_model_signatures() RETURNS trigger AS $$
DECLARE
    row_model RECORD;
BEGIN
    SELECT m.name, m.tenant_id INTO row_model FROM models m WHERE m.id = NEW.model_id;
    PERFORM audit_outbox_add(row_model.tenant_id, NULL, 'model.version.sign',
        'model/' || row_model.name || ':' || NEW.version || '/signature/' || NEW.key_id);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_model_signatures AFTER INSERT OR UPDATE ON model_signatures
FOR EACH ROW EXECUTE FUNCTION audit_model_signatures();

CREATE FUNCTION audit_trusted_keys() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_outbox_add(NEW.tenant_id, NULL, 'tenant.key.trust', 'trusted-key/' || NEW.key_id);
    ELSE
        PERFORM audit_outbox_add(OLD.tenant_id, NULL, 'tenant.key.distrust', 'trusted-key/' || OLD.key_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_trusted_keys AFTER INSERT OR DELETE ON tenant_trusted_keys
FOR EACH ROW EXECUTE FUNCTION audit_trusted_keys();
