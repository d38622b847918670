-- Additive (scalelite-rs): usage accounting written by the poller, one row per
-- tenant and hour (tenant_id '' = meetings without a tenant, '*' = the whole
-- pool), and the "accounted up to" watermark that keeps a standby poller
-- from counting a period twice. Ruby Scalelite ignores both tables.
CREATE TABLE IF NOT EXISTS usage_hours (
    tenant_id character varying NOT NULL,
    hour timestamp(6) without time zone NOT NULL,
    meeting_ms bigint NOT NULL DEFAULT 0,
    participant_ms bigint NOT NULL DEFAULT 0,
    peak_participants bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour)
);
CREATE INDEX IF NOT EXISTS index_usage_hours_on_hour ON usage_hours (hour);
CREATE TABLE IF NOT EXISTS usage_accounting (
    name character varying PRIMARY KEY,
    accounted_to_ms bigint
);
INSERT INTO usage_accounting (name, accounted_to_ms) VALUES ('poller', NULL) ON CONFLICT (name) DO NOTHING;
