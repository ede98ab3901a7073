-- Schema of the client suite (run as superuser; idempotent).
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app LOGIN; END IF;
END $$;
CREATE EXTENSION IF NOT EXISTS pg_jwt;
DROP TABLE IF EXISTS docs, events, test_keys;
CREATE TABLE test_keys (key jsonb);   -- the private signing key; only the superuser reads it
CREATE TABLE docs (
  id bigint PRIMARY KEY,
  tenant_id uuid NOT NULL,
  body text NOT NULL,
  hits bigint NOT NULL DEFAULT 0
);
CREATE INDEX ON docs (tenant_id);
INSERT INTO docs SELECT g, ('00000000-0000-4000-8000-' || lpad((g % 6)::text, 12, '0'))::uuid, 'doc ' || g
  FROM generate_series(1, 6000) g;
CREATE TABLE events (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, note text);
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_docs ON docs USING (tenant_id = jwt_claim_uuid('tenant_id'))
  WITH CHECK (tenant_id = jwt_claim_uuid('tenant_id'));
CREATE POLICY tenant_events ON events USING (tenant_id = jwt_claim_uuid('tenant_id'))
  WITH CHECK (tenant_id = jwt_claim_uuid('tenant_id'));
GRANT SELECT, INSERT, UPDATE ON docs, events TO app;
GRANT USAGE ON SEQUENCE events_id_seq TO app;
ANALYZE docs;
