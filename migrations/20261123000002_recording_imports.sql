-- Additive (scalelite-rs): what the importer did with each archive, for
-- `scalelite-admin recordings import-status`. Ruby Scalelite ignores it.
CREATE TABLE IF NOT EXISTS recording_imports (
    id bigserial PRIMARY KEY,
    filename character varying NOT NULL,
    record_id character varying,
    status character varying NOT NULL,
    reason text,
    size_bytes bigint,
    formats integer,
    finished_at timestamp(6) without time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS index_recording_imports_on_finished_at ON recording_imports (finished_at DESC);
