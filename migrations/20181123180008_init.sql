-- Scalelite's db/migrate/20181123180008_init.rb, as Rails runs it on PostgreSQL.
CREATE TABLE metadata (
    id bigserial PRIMARY KEY,
    recording_id bigint,
    key character varying,
    value character varying
);
CREATE UNIQUE INDEX index_metadata_on_recording_id_and_key ON metadata (recording_id, key);

CREATE TABLE playback_formats (
    id bigserial PRIMARY KEY,
    recording_id bigint,
    format character varying,
    url character varying,
    length integer,
    processing_time integer
);
CREATE UNIQUE INDEX index_playback_formats_on_recording_id_and_format ON playback_formats (recording_id, format);

CREATE TABLE recordings (
    id bigserial PRIMARY KEY,
    record_id character varying,
    meeting_id character varying,
    name character varying,
    published boolean,
    participants integer,
    state character varying,
    starttime timestamp without time zone,
    endtime timestamp without time zone,
    deleted_at timestamp without time zone
);
CREATE INDEX index_recordings_on_meeting_id ON recordings (meeting_id);
CREATE UNIQUE INDEX index_recordings_on_record_id ON recordings (record_id);

CREATE TABLE thumbnails (
    id bigserial PRIMARY KEY,
    playback_format_id bigint,
    width integer,
    height integer,
    alt character varying,
    url character varying,
    sequence integer
);
CREATE INDEX index_thumbnails_on_playback_format_id ON thumbnails (playback_format_id);
