-- Scalelite's db/migrate/20230627141045_drop_tenants.rb.
DROP TABLE tenants;
