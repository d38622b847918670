-- Scalelite's db/migrate/20210425184558_create_callback_data.rb.
CREATE TABLE callback_data (
    id bigserial PRIMARY KEY,
    meeting_id character varying,
    recording_id integer,
    callback_attributes text,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
