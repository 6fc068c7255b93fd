-- The cross-host register: tenants, tokens, host snapshots, heartbeats, usage, spend, budgets.
-- Tenant rows are guarded by row-level security on the session setting `fleet.tenant`; routes
-- run as the role fleet_gateway_app (no BYPASSRLS, not the owner) inside their transaction.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_gateway_app') THEN
    BEGIN
      CREATE ROLE fleet_gateway_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
    END;
  END IF;
  IF NOT pg_has_role(current_user, 'fleet_gateway_app', 'MEMBER') THEN
    BEGIN
      EXECUTE format('GRANT fleet_gateway_app TO %I', current_user);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA fleet TO fleet_gateway_app;

CREATE TABLE fleet.tenants (
  tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[A-Za-z0-9_.-]{1,128}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens: only the sha256 of the token is stored; `token_id` is a public handle.
CREATE TABLE fleet.tokens (
  token_id    text PRIMARY KEY,
  token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  tenants     text[] NOT NULL CHECK (cardinality(tenants) > 0),
  scopes      text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'publish']),
  label       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

-- The latest `ps --json` v1 document per tenant and host.
CREATE TABLE fleet.host_snapshots (
  tenant_id    text NOT NULL REFERENCES fleet.tenants,
  host         text NOT NULL,
  observed_at  timestamptz NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  agents       integer NOT NULL,
  ps           json NOT NULL,   -- verbatim as published (answered as stored, not re-encoded)
  PRIMARY KEY (tenant_id, host)
);

-- lz4 (PostgreSQL 14+ built with it) decompresses the ~25 KB documents several times faster
-- than the default pglz: GET /snapshot reads every host's document on each dashboard poll.
DO $$
BEGIN
  ALTER TABLE fleet.host_snapshots ALTER COLUMN ps SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN NULL;  -- not built with lz4: keep the default
END
$$;

-- The latest heartbeat v1 per agent (replaced in place: its size does not grow with time).
CREATE TABLE fleet.heartbeats (
  tenant_id    text NOT NULL REFERENCES fleet.tenants,
  host         text NOT NULL,
  agent        text NOT NULL,
  seq          bigint NOT NULL,
  ts           timestamptz NOT NULL,
  state        text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  record       jsonb NOT NULL,
  PRIMARY KEY (tenant_id, host, agent)
) WITH (fillfactor = 70);  -- room for HOT updates

-- A bounded history: one row per change of state (not per heartbeat), pruned by age.
CREATE TABLE fleet.heartbeat_changes (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id    text NOT NULL REFERENCES fleet.tenants,
  host         text NOT NULL,
  agent        text NOT NULL,
  ts           timestamptz NOT NULL,
  seq          bigint NOT NULL,
  state        text NOT NULL,
  prev_state   text,
  detail       text
);
CREATE INDEX heartbeat_changes_agent ON fleet.heartbeat_changes (tenant_id, host, agent, ts);
CREATE INDEX heartbeat_changes_ts ON fleet.heartbeat_changes (ts);

-- Usage-vs-limit samples (append-only; a resent sample is recognised by its digest).
CREATE TABLE fleet.usage_samples (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id        text NOT NULL REFERENCES fleet.tenants,
  host             text NOT NULL,
  account          text NOT NULL,
  window_name      text NOT NULL,
  window_minutes   integer,
  used_percent     double precision NOT NULL,
  resets_at        timestamptz,
  reset_confidence text NOT NULL,
  observed_at      timestamptz NOT NULL,
  source           text NOT NULL,
  received_at      timestamptz NOT NULL DEFAULT now(),
  digest           bytea NOT NULL,
  record           jsonb NOT NULL,
  UNIQUE (tenant_id, digest)
);
CREATE INDEX usage_samples_latest
  ON fleet.usage_samples (tenant_id, account, window_name, observed_at DESC);

-- Metered spend records (append-only; a resent record is recognised by its digest).
CREATE TABLE fleet.spend_records (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id     text NOT NULL REFERENCES fleet.tenants,
  host          text NOT NULL,
  ts            timestamptz NOT NULL,
  agent         text,
  account       text NOT NULL,
  model         text,
  input_tokens  bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  cost_usd      double precision,
  received_at   timestamptz NOT NULL DEFAULT now(),
  digest        bytea NOT NULL,
  record        jsonb NOT NULL,
  UNIQUE (tenant_id, digest)
);
CREATE INDEX spend_records_account ON fleet.spend_records (tenant_id, account, ts);

-- The tenant's budgets.yaml v1 (as JSON), latest wins.
CREATE TABLE fleet.budget_policies (
  tenant_id    text PRIMARY KEY REFERENCES fleet.tenants,
  received_at  timestamptz NOT NULL DEFAULT now(),
  policy       jsonb NOT NULL
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tenants', 'host_snapshots', 'heartbeats', 'heartbeat_changes',
                           'usage_samples', 'spend_records', 'budget_policies'] LOOP
    EXECUTE format('ALTER TABLE fleet.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY tenant_isolation ON fleet.%I TO fleet_gateway_app '
      'USING (tenant_id = current_setting(''fleet.tenant'', true)) '
      'WITH CHECK (tenant_id = current_setting(''fleet.tenant'', true))', t);
  END LOOP;
END
$$;

GRANT SELECT ON fleet.tenants TO fleet_gateway_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON fleet.host_snapshots, fleet.heartbeats,
  fleet.heartbeat_changes, fleet.usage_samples, fleet.spend_records, fleet.budget_policies
  TO fleet_gateway_app;
