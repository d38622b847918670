//! The connection thread: the hot meeting operations (join routing,
//! placement, deleting a meeting) run on one `rusqlite` connection owned by
//! a thread of its own, a whole operation per message.
//!
//! sqlx's SQLite driver runs every statement on its connection's worker
//! thread, so an operation of five statements costs five round trips
//! between a Tokio worker and that thread (tens of microseconds each). Here
//! an operation is one closure sent to the thread and one answer back.
//!
//! The thread also commits in groups: it takes every operation waiting in
//! its queue (at most [`MAX_BATCH`]), runs them in one `BEGIN IMMEDIATE`
//! transaction, each inside a savepoint (an operation that fails is rolled
//! back alone), commits, and only then answers each caller. An answer is
//! therefore sent after the commit that made its writes durable, with the
//! same `synchronous` setting as every other connection; under load one
//! commit serves many joins.
//!
//! Nothing is cached between operations: every operation reads the tables
//! inside its write transaction, so a server `scalelite-admin` cordoned or
//! a meeting it ended (another process, another connection) is seen by the
//! next operation after its commit, as SQLite's locking guarantees.
//!
//! The thread and the process's sqlx writer connection never wait on each
//! other through SQLite's busy handler (which sleeps whole milliseconds):
//! both take the store's write gate first (see [`WriteGate`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, oneshot};
use tracing::error;

use super::BUSY_TIMEOUT;
use crate::StoreError;

/// Operations one transaction commits at most.
const MAX_BATCH: usize = 256;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// The process's write gate: held by whichever of the process's two writing
/// connections (sqlx's writer pool, the connection thread) is in a write
/// transaction, so they queue in the process instead of in SQLite's busy
/// handler.
pub(super) type WriteGate = Arc<Mutex<()>>;

/// The result of one operation, or the failure of its transaction.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One operation, type-erased for the queue.
trait Op: Send {
    /// Runs the operation inside the open transaction (in a savepoint).
    fn run(&mut self, conn: &Connection);
    /// Answers the caller once the transaction ended (`committed` is the
    /// commit's outcome).
    fn answer(self: Box<Self>, committed: Result<(), &StoreError>);
}

struct Call<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: Reply<T>,
}

impl<T, F> Op for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) {
        let Some(work) = self.work.take() else { return };
        self.result = Some(in_savepoint(conn, work));
    }

    fn answer(self: Box<Self>, committed: Result<(), &StoreError>) {
        let result = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Unexpected("the operation did not run".to_owned())),
            (Err(e), _) => Err(StoreError::Unexpected(format!("the transaction failed: {e}"))),
        };
        // The caller may have gone (a cancelled request): nothing to tell.
        let _ = self.reply.send(result);
    }
}

/// Runs `work` in a savepoint: kept when it succeeds, undone when it fails
/// (or panics), so one operation's failure never reaches the others of its
/// batch.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("SAVEPOINT op").and_then(|mut s| s.execute([])).map_err(lite)?;
    let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
        .unwrap_or_else(|_| Err(StoreError::Unexpected("the operation panicked".to_owned())));
    let end = if result.is_ok() { "RELEASE op" } else { "ROLLBACK TO op" };
    conn.prepare_cached(end).and_then(|mut s| s.execute([])).map_err(lite)?;
    if result.is_err() {
        conn.prepare_cached("RELEASE op").and_then(|mut s| s.execute([])).map_err(lite)?;
    }
    result
}

/// The handle of the connection thread; the thread ends when the last
/// handle is dropped.
#[derive(Clone, Debug)]
pub(super) struct ConnectionThread {
    queue: Sender<Box<dyn Op>>,
}

impl ConnectionThread {
    /// Opens a read-write connection to `path` (the schema must exist) and
    /// starts its thread.
    pub(super) fn start(path: &Path, gate: WriteGate) -> Result<Self, StoreError> {
        let conn = open(path).map_err(lite)?;
        let (queue, jobs) = channel::<Box<dyn Op>>();
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || serve(&conn, &jobs, &gate))
            .map_err(|e| StoreError::Unexpected(format!("starting the SQLite thread: {e}")))?;
        Ok(Self { queue })
    }

    /// Runs `work` on the thread inside a write transaction and answers once
    /// that transaction committed.
    pub(super) async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Box::new(Call { work: Some(work), result: None, reply }))
            .map_err(|_| StoreError::Unexpected("the SQLite thread has stopped".to_owned()))?;
        answer.await.map_err(|_| StoreError::Unexpected("the SQLite thread dropped the operation".to_owned()))?
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    // The settings of the sqlx connections (`SqliteStore::open`); WAL is
    // a property of the file, set by then.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The thread: waits for an operation, takes every other one already
/// queued, runs them in one transaction and answers them.
fn serve(conn: &Connection, jobs: &Receiver<Box<dyn Op>>, gate: &WriteGate) {
    let mut batch: Vec<Box<dyn Op>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(op) => batch.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let outcome = {
            let _gate = gate.blocking_lock();
            transaction(conn, &mut batch)
        };
        if let Err(e) = &outcome {
            error!(error = %e, operations = batch.len(), "SQLite write transaction failed");
        }
        for op in batch.drain(..) {
            op.answer(outcome.as_ref().copied());
        }
    }
}

fn transaction(conn: &Connection, batch: &mut [Box<dyn Op>]) -> Result<(), StoreError> {
    conn.prepare_cached("BEGIN IMMEDIATE").and_then(|mut s| s.execute([])).map_err(lite)?;
    for op in batch.iter_mut() {
        op.run(conn);
    }
    let committed = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])).map_err(lite);
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    committed.map(|_| ())
}

/// A `rusqlite` error as the store's.
pub(super) fn lite(e: rusqlite::Error) -> StoreError {
    StoreError::SqliteThread(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("thread.db");
        Connection::open(&path).unwrap().execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v TEXT)").unwrap();
        (dir, path)
    }

    fn rows(path: &Path) -> Vec<String> {
        let other = Connection::open(path).unwrap();
        let mut select = other.prepare("SELECT v FROM t ORDER BY v").unwrap();
        select.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    fn insert(conn: &Connection, value: &str) -> Result<(), StoreError> {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [value]).map(drop).map_err(lite)
    }

    fn op<T: Send + 'static>(
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> (Box<dyn Op>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        (Box::new(Call { work: Some(work), result: None, reply }), answer)
    }

    #[test]
    fn a_failing_operation_is_undone_alone_and_nothing_is_answered_before_the_commit() {
        let (_dir, path) = database();
        let conn = open(&path).unwrap();
        let (kept, mut kept_answer) = op(|c| insert(c, "kept").map(|()| 1));
        let (failed, mut failed_answer) = op(|c| {
            insert(c, "undone-1")?;
            Err::<(), _>(StoreError::Conflict("refused".to_owned()))
        });
        let (panicked, mut panicked_answer) = op(|c| -> Result<(), StoreError> {
            insert(c, "undone-2")?;
            panic!("a bug in one operation");
        });
        let (also_kept, mut also_kept_answer) = op(|c| insert(c, "kept-too"));
        let mut batch = vec![kept, failed, panicked, also_kept];

        transaction(&conn, &mut batch).unwrap();
        assert!(kept_answer.try_recv().is_err(), "answered before the batch ended");
        assert_eq!(rows(&path), ["kept", "kept-too"]);
        for op in batch {
            op.answer(Ok(()));
        }
        assert_eq!(kept_answer.try_recv().unwrap().unwrap(), 1);
        assert!(matches!(failed_answer.try_recv().unwrap(), Err(StoreError::Conflict(_))));
        assert!(matches!(panicked_answer.try_recv().unwrap(), Err(StoreError::Unexpected(_))));
        also_kept_answer.try_recv().unwrap().unwrap();
    }

    #[test]
    fn a_transaction_that_cannot_start_fails_every_operation_of_the_batch() {
        let (_dir, path) = database();
        let conn = open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        let other_process = Connection::open(&path).unwrap();
        other_process.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (first, mut first_answer) = op(|c| insert(c, "a"));
        let (second, mut second_answer) = op(|c| insert(c, "b"));
        let mut batch = vec![first, second];
        let outcome = transaction(&conn, &mut batch);
        assert!(outcome.is_err());
        for op in batch {
            op.answer(outcome.as_ref().copied());
        }
        assert!(first_answer.try_recv().unwrap().is_err());
        assert!(second_answer.try_recv().unwrap().is_err());
        other_process.execute_batch("ROLLBACK").unwrap();
        assert!(rows(&path).is_empty());
    }

    #[tokio::test]
    async fn an_answered_operation_is_committed_for_other_connections() {
        let (_dir, path) = database();
        let gate: WriteGate = Arc::new(Mutex::new(()));
        let thread = ConnectionThread::start(&path, Arc::clone(&gate)).unwrap();
        let calls = (0..50).map(|i| {
            let thread = thread.clone();
            tokio::spawn(async move { thread.call(move |c| insert(c, &format!("v{i:02}"))).await })
        });
        for call in calls.collect::<Vec<_>>() {
            call.await.unwrap().unwrap();
        }
        assert_eq!(rows(&path).len(), 50);

        // While another writer of the process holds the gate, the thread
        // waits for it.
        let held = gate.lock().await;
        let mut pending = tokio::spawn({
            let thread = thread.clone();
            async move { thread.call(|c| insert(c, "after")).await }
        });
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), &mut pending).await;
        assert!(early.is_err(), "wrote while the gate was held");
        drop(held);
        pending.await.unwrap().unwrap();
        assert_eq!(rows(&path).len(), 51);
    }
}
