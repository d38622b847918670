//! Test harness for the Scalelite replacement: real `redis-server` and
//! PostgreSQL processes or the embedded SQLite file (see [`TestBackend`]),
//! a fake BigBlueButton fleet that behaves like bbb-web on the wire, and
//! signing API clients that mimic real front-ends.
//!
//! Everything here is independent of the code under test except the XML
//! parser of `scalelite-core`, used to read replies.
//!
//! ```no_run
//! use scalelite_tests::{Algo, ApiClient, FakeFleet, Mode, Style, TestPostgres, TestRedis};
//!
//! # async fn demo() {
//! let redis = TestRedis::start().await; // redis://127.0.0.1:P/0
//! let pg = TestPostgres::start().await; // postgres://postgres@127.0.0.1:P/scalelite
//! let fleet = FakeFleet::start(2).await;
//! // ... register fleet[i].url() / fleet[i].secret() with the load balancer,
//! // start it on some `lb_url` with `lb_secret`, then drive it:
//! # let (lb_url, lb_secret) = (String::new(), String::new());
//! let greenlight = ApiClient::new(lb_url, lb_secret)
//!     .style(Style::Ruby)
//!     .algorithm(Algo::Sha1);
//! let reply = greenlight
//!     .get("create", &[("meetingID", "m1"), ("name", "Room")])
//!     .await;
//! assert!(reply.is_success());
//! let on = fleet.server_with_meeting("m1").unwrap();
//! assert_eq!(fleet[on].calls_to("create").len(), 1);
//! fleet[on].set_mode(Mode::Down);
//! # drop((redis, pg));
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

pub mod app;
pub mod archive;
pub mod backend;
pub mod client;
pub mod fake_bbb;
pub mod nginx;
pub mod postgres;
pub mod pypi;
pub mod receiver;
pub mod recording_dirs;
pub mod redis;
pub mod s3;
pub mod seed;
pub mod sentinel;
pub mod sqlite;
pub mod tls;
pub mod util;
pub mod webdriver;

pub use app::{Expiring, LB_SECRET, NS, REDIS_ONLY, TestApp, TestAppBuilder, server_id};
pub use archive::{Format, RawTar, RecordingArchive};
pub use backend::TestBackend;
pub use client::{Algo, ApiClient, BodySigning, ClientError, Reply, Style, http_get, http_request};
pub use fake_bbb::{FakeAttendee, FakeBbb, FakeFleet, FakeMeeting, FakeRecording, MeetingSeed, Mode, RecordedCall};
pub use postgres::TestPostgres;
pub use receiver::{Received, Receiver};
pub use recording_dirs::RecordingDirs;
pub use redis::{RespValue, TestRedis};
pub use s3::{FakeMetadata, MetadataRequest, S3Gate, TestS3, UploadMode};
pub use seed::SeedServer;
pub use sentinel::{SentinelGroup, TestSentinel};
pub use tls::TestCa;
pub use util::{eventually, eventually_with, free_port, read_http_response};
pub use webdriver::Browser;
