//! The integration suite: the real `scalelite-api` against a fake BBB fleet
//! that validates checksums like bbb-web, on the backend
//! `SCALELITE_TEST_BACKEND` selects: real `redis-server` and PostgreSQL
//! processes (`redis`, the default), or the embedded SQLite file
//! (`embedded`). One set of tests runs on both.
//!
//! Tests about Redis and PostgreSQL themselves (Ruby Scalelite's exact
//! layout, restarts, Sentinel, schema migrations) are pinned to Redis and
//! live in modules named `redis_only`, here and inside the other modules;
//! the embedded pass of `scripts/test` skips them by that name.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod admin;
mod analytics;
mod capacity;
mod checksum;
mod client_libraries;
mod console;
mod create;
mod drain;
mod edge;
mod embedded;
mod end;
mod fsapi;
mod get_meetings;
mod headers;
mod health;
mod importer;
mod index;
mod join;
mod join_cache;
mod lifecycle;
mod limits;
mod management;
mod meeting_info;
mod metrics;
mod placement;
mod playback;
mod poller;
mod prune;
mod reconnect;
mod recording_contract;
mod recording_upload;
mod recordings_api;
mod rehome;
mod s3;
mod send_chat_message;
mod store_contract;
mod support;
mod tenancy;
mod tenant_scope;
mod tenants_admin;
mod tenants_management;
mod unsupported;
mod upstream;
mod usage;

/// Whole files about Redis and PostgreSQL themselves.
mod redis_only {
    /// One story on both backends, every answer compared.
    mod differential;
    /// docs/MIGRATING.md's order against Ruby's create on the Redis state.
    mod migration_order;
    /// The PostgreSQL recording store: migrations, databases Ruby built.
    mod recording_store;
    /// `redis+sentinel://` failovers.
    mod sentinel;
    /// The Redis store on records Ruby Scalelite wrote.
    mod store;
    /// TLS-only Redis (`rediss://`, passwords, ACL users) and PostgreSQL
    /// (`sslmode`).
    mod tls;
}
