-- Additive (scalelite-rs): indexes for getRecordings on large databases.
-- recordID filters are prefix matches (LIKE 'id%'), which a plain B-tree
-- index cannot serve under a non-C collation. Listings are ordered by
-- starttime; carrying state in that index lets the default state filter and
-- OFFSET paging run as index-only scans, and the state index serves the
-- totalElements count. Ruby Scalelite ignores these indexes.
CREATE INDEX IF NOT EXISTS index_recordings_on_record_id_prefix ON recordings (record_id varchar_pattern_ops);
CREATE INDEX IF NOT EXISTS index_recordings_on_starttime ON recordings (starttime DESC, id DESC) INCLUDE (state);
CREATE INDEX IF NOT EXISTS index_recordings_on_state ON recordings (state);
CREATE INDEX IF NOT EXISTS index_metadata_on_key_and_value ON metadata (key, value);
