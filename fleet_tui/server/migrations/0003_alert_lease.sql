-- The alert evaluator's lease (issue 15): one evaluator per tenant, so two hosts do not both
-- alert the same episode. At most one row per tenant: who holds it and until when (the
-- gateway's clock). Taken, renewed and released by `POST/DELETE /alerts/lease`, each in one
-- statement; an expired row is free for anyone to take.

CREATE TABLE fleet.alert_leases (
  tenant_id    text PRIMARY KEY REFERENCES fleet.tenants,
  holder       text NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
  acquired_at  timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL
) WITH (fillfactor = 50);  -- renewed every few seconds: room for HOT updates

ALTER TABLE fleet.alert_leases ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON fleet.alert_leases TO fleet_gateway_app
  USING (tenant_id = current_setting('fleet.tenant', true))
  WITH CHECK (tenant_id = current_setting('fleet.tenant', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON fleet.alert_leases TO fleet_gateway_app;
