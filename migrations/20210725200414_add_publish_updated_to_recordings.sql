-- Scalelite's db/migrate/20210725200414_add_publish_updated_to_recordings.rb.
ALTER TABLE recordings ADD COLUMN publish_updated boolean DEFAULT false;
