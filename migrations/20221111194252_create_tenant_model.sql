-- Scalelite's db/migrate/20221111194252_create_tenant_model.rb (dropped again
-- by the next migration; kept so the version history matches Scalelite's).
CREATE TABLE tenants (
    id bigserial PRIMARY KEY,
    name character varying,
    secrets character varying
);
CREATE UNIQUE INDEX index_tenants_on_name ON tenants (name);
CREATE UNIQUE INDEX index_tenants_on_secrets ON tenants (secrets);
