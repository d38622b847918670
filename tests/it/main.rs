//! The integration suite: the real `scalelite-api` against a real
//! `redis-server` (and PostgreSQL for the health check) and a fake BBB
//! fleet that validates checksums like bbb-web.

mod admin;
mod analytics;
mod checksum;
mod create;
mod embedded;
mod end;
mod fsapi;
mod get_meetings;
mod health;
mod importer;
mod index;
mod join;
mod lifecycle;
mod management;
mod meeting_info;
mod metrics;
mod playback;
mod poller;
mod reconnect;
mod recording_contract;
mod recording_store;
mod recordings_api;
mod sentinel;
mod store;
mod store_contract;
mod support;
mod tenancy;
mod tenants_admin;
mod tenants_management;
mod unsupported;
mod upstream;
