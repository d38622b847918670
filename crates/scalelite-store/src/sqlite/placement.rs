//! Scalelite's server selection on SQLite (`scalelite_core::selection::select`
//! is the reference), from an index instead of the whole pool.
//!
//! `servers_pool_by_tag` orders the placement pool (`load IS NOT NULL`, the
//! `server_load` members) by tag (`''` for untagged servers), load and id,
//! so the least loaded server carrying one tag, ties by id as `ZRANGE
//! server_load` orders them, is one index probe, however large the pool:
//!
//! - without tags: the head of the untagged servers;
//! - with tags: the head of each wanted tag (`none` is the untagged servers
//!   and those tagged `none`), the least loaded of those heads winning, ties
//!   going to the tag named first, then to the lower id — the first server
//!   of Scalelite's candidate list sorted by load;
//! - no head: no server if the pool is empty, else `serverTagUnavailable`
//!   when the tags are required, else the head of the untagged servers.
//!
//! A row here is the whole server record, so Scalelite's "first candidate
//! whose `server:<id>` hash exists" is always the first candidate.
//!
//! A create with [`Needs`] (capabilities, preferred regions) reads the pool
//! in load order instead and applies `select_for` itself: one row per
//! server of the pool, read in-process (a few microseconds per server); the
//! embedded store serves small fleets, and only such creates pay it.

use rusqlite::{Connection, OptionalExtension as _};
use scalelite_core::selection::{
    Candidate, Needs, Selection, TagSpec, Traits, parse_list, select_for, version_capability,
};

use crate::model::Placement;

/// Schema version 3: the placement pool by tag.
pub(super) const SCHEMA: &str =
    "CREATE INDEX servers_pool_by_tag ON servers (ifnull(tag, ''), load, id) WHERE load IS NOT NULL;";

/// Schema version 8: the operator's region and declared capabilities.
pub(super) const NEEDS_SCHEMA: &str =
    "ALTER TABLE servers ADD COLUMN region TEXT; ALTER TABLE servers ADD COLUMN capabilities TEXT;";

/// The pool in `ZRANGE server_load` order, with what [`Needs`] look at.
const POOL: &str = "SELECT id, load, tag, region, capabilities, bbb_version FROM servers \
     WHERE load IS NOT NULL ORDER BY load, id";

/// Whether the pool has a server.
const ANY: &str = "SELECT 1 FROM servers WHERE load IS NOT NULL LIMIT 1";

/// The least loaded server carrying tag `?1` (`''`: untagged), ties by id.
/// The tag expression is the index's, so SQLite walks the index.
const HEAD: &str =
    "SELECT id, load FROM servers WHERE ifnull(tag, '') = ?1 AND load IS NOT NULL ORDER BY load, id LIMIT 1";

/// The server a new meeting goes to, or the answer when there is none
/// ([`Placement::NoServer`], [`Placement::TagUnavailable`]). One probe
/// without tags, one per wanted tag (two for `none`) with them.
pub(super) fn choose(
    conn: &Connection,
    spec: &TagSpec,
    needs: &Needs,
) -> Result<Result<String, Placement>, rusqlite::Error> {
    if !needs.is_empty() {
        return choose_with_needs(conn, spec, needs);
    }
    if !spec.is_empty() {
        // (load, position of the tag in the list, id) of the best head so far.
        let mut best: Option<(f64, usize, String)> = None;
        for (position, tag) in spec.tags.iter().enumerate() {
            let keys: &[&str] = match tag.as_str() {
                "none" => &["", "none"],
                // An untagged server counts as `none`, never as `''`.
                "" => &[],
                tag => &[tag],
            };
            for key in keys {
                let Some((id, load)) = head(conn, key)? else { continue };
                let better = best.as_ref().is_none_or(|(best_load, best_position, best_id)| {
                    load.total_cmp(best_load).then(position.cmp(best_position)).then_with(|| id.cmp(best_id)).is_lt()
                });
                if better {
                    best = Some((load, position, id));
                }
            }
        }
        if let Some((_, _, id)) = best {
            return Ok(Ok(id));
        }
        // An empty pool is "no server" even when the tags are required.
        if conn.prepare_cached(ANY)?.query_row([], |_| Ok(())).optional()?.is_none() {
            return Ok(Err(Placement::NoServer));
        }
        if spec.required {
            return Ok(Err(Placement::TagUnavailable));
        }
    }
    Ok(head(conn, "")?.map(|(id, _)| id).ok_or(Placement::NoServer))
}

/// [`choose`] for a create with needs: the whole pool through `select_for`.
fn choose_with_needs(
    conn: &Connection,
    spec: &TagSpec,
    needs: &Needs,
) -> Result<Result<String, Placement>, rusqlite::Error> {
    struct Row {
        id: String,
        load: f64,
        tag: Option<String>,
        region: Option<String>,
        capabilities: Vec<String>,
    }
    let mut statement = conn.prepare_cached(POOL)?;
    let rows = statement.query_map([], |row| {
        let mut capabilities = parse_list(row.get::<_, Option<String>>(4)?.as_deref());
        if let Some(auto) = row.get::<_, Option<String>>(5)?.as_deref().and_then(version_capability) {
            capabilities.push(auto);
        }
        Ok(Row {
            id: row.get(0)?,
            load: row.get(1)?,
            tag: row.get::<_, Option<String>>(2)?.filter(|t| !t.is_empty()),
            region: row.get::<_, Option<String>>(3)?.filter(|r| !r.is_empty()),
            capabilities,
        })
    })?;
    let pool = rows.collect::<Result<Vec<Row>, _>>()?;
    let candidates: Vec<Candidate<'_>> =
        pool.iter().map(|r| Candidate { id: &r.id, load: r.load, tag: r.tag.as_deref(), exists: true }).collect();
    let traits: Vec<Traits<'_>> = pool
        .iter()
        .map(|r| Traits {
            region: r.region.as_deref(),
            capabilities: r.capabilities.iter().map(String::as_str).collect(),
        })
        .collect();
    Ok(match select_for(&candidates, &traits, spec, needs) {
        Selection::Chosen(i) => Ok(pool[i].id.clone()),
        Selection::NoServer => Err(Placement::NoServer),
        Selection::TagUnavailable => Err(Placement::TagUnavailable),
        Selection::CapabilityUnavailable => Err(Placement::CapabilityUnavailable),
    })
}

fn head(conn: &Connection, tag: &str) -> Result<Option<(String, f64)>, rusqlite::Error> {
    conn.prepare_cached(HEAD)?.query_row([tag], |row| Ok((row.get(0)?, row.get(1)?))).optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each probe reads one index from its start, never the whole table,
    /// and needs no sort.
    #[tokio::test]
    async fn probes_walk_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::open(dir.path().join("db")).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        for (sql, index) in [(HEAD, "servers_pool_by_tag"), (ANY, "servers_pool")] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
            if sql.contains("?1") {
                query = query.bind("gpu");
            }
            let steps: Vec<String> = query.fetch_all(&mut *conn).await.unwrap().into_iter().map(|row| row.3).collect();
            assert_eq!(steps.len(), 1, "{sql}: {steps:?}");
            assert!(steps[0].contains(&format!("INDEX {index}")), "{sql}: {steps:?}");
        }
    }
}
