-- Scalelite's db/migrate/20210630205630_add_protected_to_recordings.rb.
ALTER TABLE recordings ADD COLUMN protected boolean;
