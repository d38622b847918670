-- Additive (scalelite-rs): recording-ready callbacks waiting to be delivered,
-- so retries survive a restart of the importer. Ruby Scalelite ignores it.
CREATE TABLE IF NOT EXISTS recording_ready_deliveries (
    id bigserial PRIMARY KEY,
    recording_id bigint NOT NULL,
    record_id character varying NOT NULL,
    meeting_id character varying NOT NULL,
    url text NOT NULL,
    tenant_id character varying,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamp(6) without time zone NOT NULL,
    last_error text,
    delivered_at timestamp(6) without time zone,
    given_up_at timestamp(6) without time zone,
    created_at timestamp(6) without time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS index_recording_ready_deliveries_due ON recording_ready_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
