-- Hostile inputs (issue 11): publish tokens bound to hosts, per-tenant caps, expiry of silent
-- hosts, order by receipt.

-- The hosts a publish token may write (NULL: any host of its tenants).
ALTER TABLE fleet.tokens ADD COLUMN hosts text[]
  CHECK (hosts IS NULL OR cardinality(hosts) > 0);

-- Bytes of each stored document: the per-tenant cap of snapshot bytes is a cheap sum.
ALTER TABLE fleet.host_snapshots ADD COLUMN ps_bytes integer NOT NULL DEFAULT 0;
UPDATE fleet.host_snapshots SET ps_bytes = octet_length(ps::text);

-- Silent hosts and agents are forgotten by receipt time.
CREATE INDEX host_snapshots_received ON fleet.host_snapshots (received_at);
CREATE INDEX heartbeats_received ON fleet.heartbeats (received_at);
