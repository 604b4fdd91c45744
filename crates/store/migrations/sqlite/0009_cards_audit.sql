-- Changes to cards, signatures, trusted keys and tenants' serving flags record
-- themselves for the audit log in their own transaction (SQLite), as 0008 does for the
-- other audited tables.

CREATE TRIGGER audit_model_card AFTER UPDATE OF owner, license, description, intended_use,
    out_of_scope_use, permitted_tenants, commercial_use, license_expires, attribution ON models
WHEN OLD.owner IS NOT NEW.owner OR OLD.license IS NOT NEW.license
    OR OLD.description IS NOT NEW.description OR OLD.intended_use IS NOT NEW.intended_use
    OR OLD.out_of_scope_use IS NOT NEW.out_of_scope_use
    OR OLD.permitted_tenants IS NOT NEW.permitted_tenants
    OR OLD.commercial_use IS NOT NEW.commercial_use
    OR OLD.license_expires IS NOT NEW.license_expires OR OLD.attribution IS NOT NEW.attribution
BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = NEW.tenant_id), 'model.card.update',
            'model/' || NEW.name);
END;

CREATE TRIGGER audit_tenant_policy AFTER UPDATE OF commercial, require_signed_models ON tenants
WHEN OLD.commercial IS NOT NEW.commercial
    OR OLD.require_signed_models IS NOT NEW.require_signed_models
BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER), NEW.name, 'tenant.policy.update',
            'tenant/' || NEW.name);
END;

CREATE TRIGGER audit_signature_put AFTER INSERT ON model_signatures BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    SELECT CAST(strftime('%s', 'now') AS INTEGER), t.name, 'model.version.sign',
           'model/' || m.name || ':' || NEW.version || '/signature/' || NEW.key_id
    FROM models m JOIN tenants t ON t.id = m.tenant_id WHERE m.id = NEW.model_id;
END;

CREATE TRIGGER audit_signature_replace AFTER UPDATE ON model_signatures BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    SELECT CAST(strftime('%s', 'now') AS INTEGER), t.name, 'model.version.sign',
           'model/' || m.name || ':' || NEW.version || '/signature/' || NEW.key_id
    FROM models m JOIN tenants t ON t.id = m.tenant_id WHERE m.id = NEW.model_id;
END;

CREATE TRIGGER audit_trusted_key_add AFTER INSERT ON tenant_trusted_keys BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = NEW.tenant_id), 'tenant.key.trust',
            'trusted-key/' || NEW.key_id);
END;

CREATE TRIGGER audit_trusted_key_remove AFTER DELETE ON tenant_trusted_keys BEGIN
    INSERT INTO audit_outbox (recorded_at, tenant, action, resource)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT name FROM tenants WHERE id = OLD.tenant_id), 'tenant.key.distrust',
            'trusted-key/' || OLD.key_id);
END;
