//! Helpers shared by the integration tests.

use std::io::Cursor;
use std::sync::Arc;

use clap::Parser as _;
use scalelite_admin::{Cli, Io};
use scalelite_core::config::Config;
use scalelite_store::SqliteStore;
use scalelite_tests::{Reply, TestApp};
use serde_json::Value;

/// Creates `id` through the API like Greenlight would and asserts success.
pub async fn create(app: &TestApp, id: &str) -> Reply {
    let reply = app.client().get("create", &[("meetingID", id), ("name", "Room")]).await;
    assert!(reply.is_success(), "create {id}: {}", reply.body);
    reply
}

/// Asserts a BBB `FAILED` reply with `key`, HTTP 200 and the XML type.
#[track_caller]
pub fn assert_failed(reply: &Reply, key: &str) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.returncode().as_deref(), Some("FAILED"), "{}", reply.body);
    assert_eq!(reply.message_key().as_deref(), Some(key), "{}", reply.body);
    assert_eq!(reply.content_type(), Some("application/xml; charset=utf-8"));
}

/// What one in-process `scalelite-admin` run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: u8,
    pub out: String,
    pub err: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "exit code; stdout:\n{}\nstderr:\n{}", self.out, self.err);
        self
    }

    /// Exit 1 with exactly `line` on stderr and nothing on stdout.
    #[track_caller]
    pub fn fails_with(self, line: &str) {
        assert_eq!((self.code, self.out.as_str(), self.err.as_str()), (1, "", format!("{line}\n").as_str()));
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.out))
    }

    /// The id after `prefix` on a line of stdout.
    pub fn id_after(&self, prefix: &str) -> String {
        let id = self.out.lines().find_map(|l| l.strip_prefix(prefix));
        id.unwrap_or_else(|| panic!("no {prefix:?} in {:?}", self.out)).to_owned()
    }
}

/// Runs `scalelite-admin <args>` in-process with `config` and `input` on
/// stdin.
pub async fn admin_with(config: &Config, args: &[&str], input: &str) -> Run {
    let cli = Cli::try_parse_from(std::iter::once("scalelite-admin").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let (mut out, mut err, mut input) = (Vec::new(), Vec::new(), Cursor::new(input.as_bytes().to_vec()));
    let mut io = Io { out: &mut out, err: &mut err, input: &mut input };
    let code = scalelite_admin::run(cli, config, &mut io).await;
    Run { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
}

/// A store under contract test and whatever keeps its backend alive.
pub struct Fixture<S: ?Sized> {
    pub store: Arc<S>,
    pub _guard: Box<dyn std::any::Any + Send>,
}

/// An embedded SQLite store in a temporary directory (it implements both
/// store traits, so `S` is `dyn Store` or `dyn RecordingStore`).
pub async fn sqlite_fixture<S: ?Sized>(coerce: impl FnOnce(Arc<SqliteStore>) -> Arc<S>) -> Fixture<S> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("scalelite.db")).await.unwrap();
    Fixture { store: coerce(Arc::new(store)), _guard: Box::new(dir) }
}

/// Runs every listed test body (`async fn name(store: Arc<dyn Trait>)` in
/// the calling module) once per backend, as `<backend>::<name>`, each with
/// a fresh `super::<fixture>()`.
macro_rules! contract {
    (@backend $backend:ident, $fixture:ident, [$($name:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::$fixture().await;
                    super::$name(std::sync::Arc::clone(&fixture.store)).await;
                }
            )*
        }
    };
    ([$($backend:ident => $fixture:ident),+ $(,)?], $names:tt) => {
        $( $crate::support::contract!(@backend $backend, $fixture, $names); )+
    };
}
pub(crate) use contract;
