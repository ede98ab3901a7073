-- A small multi-tenant schema protected by pg_jwt claims. Adapt freely.
--
-- Run as a superuser (or the schema owner). The application connects as the non-superuser role
-- "app": superusers and table owners bypass row-level security.

CREATE EXTENSION IF NOT EXISTS pg_jwt;

CREATE ROLE app LOGIN;   -- the application's connection role: no superuser, no BYPASSRLS

CREATE TABLE tenants (
    id   uuid PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE users (
    id        text PRIMARY KEY,                 -- the token's sub
    tenant_id uuid NOT NULL REFERENCES tenants,
    name      text NOT NULL
);

CREATE TABLE documents (
    id        bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants DEFAULT jwt_claim_uuid('tenant_id'),
    owner     text NOT NULL DEFAULT jwt_claim('sub'),
    title     text NOT NULL
);
CREATE INDEX ON documents (tenant_id);

ALTER TABLE tenants   ENABLE ROW LEVEL SECURITY;
ALTER TABLE users     ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;

-- Each tenant sees its own rows. The accessors are STABLE, so the planner evaluates them once
-- per scan where it can; they are also cheap per row (no JSON parsing), which matters where a
-- subquery cannot be used (Citus rejects subqueries in policies).
CREATE POLICY tenant_isolation ON documents
    USING (tenant_id = jwt_claim_uuid('tenant_id')
           OR 'admin' = ANY (jwt_claim_array('roles')))          -- the admin claim widens the view
    WITH CHECK (tenant_id = jwt_claim_uuid('tenant_id'));         -- writes stay in the own tenant

CREATE POLICY tenant_isolation ON users
    USING (tenant_id = (SELECT jwt_claim_uuid('tenant_id')));     -- the hoisted form: once per query

CREATE POLICY tenant_isolation ON tenants
    USING (id = (SELECT jwt_claim_uuid('tenant_id')));

GRANT SELECT ON tenants, users TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO app;
GRANT USAGE ON SEQUENCE documents_id_seq TO app;

INSERT INTO tenants VALUES
    ('a0000000-0000-4000-8000-00000000000a', 'Acme'),
    ('b0000000-0000-4000-8000-00000000000b', 'Globex');
INSERT INTO users VALUES
    ('alice', 'a0000000-0000-4000-8000-00000000000a', 'Alice (Acme)'),
    ('bob',   'b0000000-0000-4000-8000-00000000000b', 'Bob (Globex)'),
    ('carol', 'a0000000-0000-4000-8000-00000000000a', 'Carol (Acme, admin)');
INSERT INTO documents (tenant_id, owner, title) VALUES
    ('a0000000-0000-4000-8000-00000000000a', 'alice', 'Acme roadmap'),
    ('a0000000-0000-4000-8000-00000000000a', 'alice', 'Acme payroll'),
    ('b0000000-0000-4000-8000-00000000000b', 'bob',   'Globex merger plan');
