//! Meeting routing on SQLite: the `meetings` and `voice_bridges` tables
//! (`place.lua`, `join.lua`, `lookup.lua`, `delete_meeting.lua` and
//! `voice_bridge.lua` are the reference).
//!
//! Routing a join, placing a meeting and deleting one run on the connection
//! thread (`super::thread`), each a synchronous function over one
//! `rusqlite` connection inside a write transaction; the lookups run on the
//! sqlx readers.
//!
//! `meeting_creates` holds the create parameters kept for re-homing a
//! meeting (`meeting_create:<id>` on Redis), written by a placement with the
//! record's expiry and deleted with the record.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, params};
use scalelite_core::{MeetingId, ServerId, TenantId};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::placement;
use super::servers::{read_server, read_server_lite, server_of_lite};
use super::thread::lite;
use super::{SqliteStore, expiry, now_ms, sq};
use crate::model::{JoinRoute, Meeting, MeetingRecord, MeetingRoute, Placement, PlacementRequest, StoredCreate};

/// Schema version 5: the create parameters kept for re-homing.
pub(super) const SCHEMA: &str = "
CREATE TABLE meeting_creates (
    meeting_id TEXT PRIMARY KEY NOT NULL,
    params TEXT NOT NULL,
    origin TEXT,
    server_id TEXT NOT NULL,
    rehomed_from TEXT NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL
) STRICT;
";

/// Schema version 6: a tenant's meetings, counted for its limit
/// ([`PlacementRequest::max_meetings`]) by an index probe bounded by the
/// tenant's own meetings, however large the fleet.
/// With it, `tenant_participants`: the participants the poller counted in
/// each tenant's meetings, plus the joins routed since under a participant
/// limit (`tenant_participants.lua`).
pub(super) const TENANT_SCHEMA: &str = "
CREATE INDEX meetings_by_tenant ON meetings (tenant_id, expires_at);
CREATE TABLE tenant_participants (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    participants INTEGER NOT NULL
) STRICT;
";

/// The live meetings of tenant `?1` other than `?2` at `?3`.
const TENANT_COUNT: &str =
    "SELECT count(*) FROM meetings WHERE tenant_id = ?1 AND id <> ?2 AND (expires_at IS NULL OR expires_at > ?3)";

/// At most this many servers are remembered in `rehomed_from` (the most
/// recent ones), as in `place.lua`.
const REHOMED_FROM_MAX: usize = 16;
use crate::{MeetingStore, StoreError};

#[async_trait]
impl MeetingStore for SqliteStore {
    async fn find_meeting(
        &self,
        id: &MeetingId,
        tenant: Option<&TenantId>,
    ) -> Result<Option<MeetingRoute>, StoreError> {
        let mut tx = self.read().await?;
        let Some(meeting) = live_meeting(&mut tx, id.as_str(), now_ms()).await.map_err(sq)? else {
            return Ok(None);
        };
        if hidden_from(&meeting, tenant_str(tenant)) {
            return Ok(None);
        }
        let route = route_of(&mut tx, meeting).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(Some(route))
    }

    async fn route_join(
        &self,
        id: &MeetingId,
        tenant: Option<&TenantId>,
        max_participants: Option<u32>,
    ) -> Result<JoinRoute, StoreError> {
        let id = id.as_str().to_owned();
        let tenant = tenant_str(tenant).to_owned();
        self.thread.call(move |conn| route_join(conn, &id, &tenant, max_participants, now_ms())).await
    }

    async fn add_load(&self, loads: &[(ServerId, f64)]) -> Result<(), StoreError> {
        if loads.is_empty() {
            return Ok(());
        }
        let loads = loads.to_vec();
        self.thread.call(move |conn| add_load(conn, &loads)).await
    }

    async fn place_meeting(&self, request: &PlacementRequest) -> Result<Placement, StoreError> {
        let request = request.clone();
        self.thread.call(move |conn| place_meeting(conn, &request, now_ms())).await
    }

    async fn delete_meeting(&self, id: &MeetingId, only_on: Option<&ServerId>) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        let only_on = only_on.cloned();
        self.thread.call(move |conn| delete_meeting(conn, &id, only_on.as_ref(), now_ms())).await
    }

    async fn find_meeting_by_voice_bridge(&self, pin: &str) -> Result<Option<MeetingRoute>, StoreError> {
        let mut tx = self.read().await?;
        let owner: Option<String> = sqlx::query_scalar("SELECT meeting_id FROM voice_bridges WHERE voice_bridge = ?1")
            .bind(pin)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        let Some(meeting) = live_meeting(&mut tx, &owner, now_ms()).await.map_err(sq)? else {
            return Ok(None);
        };
        if meeting.voice_bridge != pin || meeting.server_id.as_str().is_empty() {
            return Ok(None);
        }
        let route = route_of(&mut tx, meeting).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(Some(route))
    }

    async fn stored_create(&self, id: &MeetingId) -> Result<Option<StoredCreate>, StoreError> {
        let row: Option<(String, Option<String>, String, String)> = sqlx::query_as(
            "SELECT params, origin, server_id, rehomed_from FROM meeting_creates WHERE meeting_id = ?1 AND expires_at > ?2",
        )
        .bind(id.as_str())
        .bind(now_ms())
        .fetch_optional(&self.readers)
        .await
        .map_err(sq)?;
        Ok(row.map(|(params, origin, server_id, rehomed_from)| StoredCreate {
            params,
            origin: origin.filter(|o| !o.is_empty()),
            placed_on: (!server_id.is_empty()).then(|| ServerId::new(server_id)),
            rehomed_from: StoredCreate::parse_rehomed_from(&rehomed_from),
        }))
    }

    async fn meetings(&self) -> Result<Vec<MeetingRecord>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings WHERE expires_at IS NULL OR expires_at > ?1 ORDER BY id"
        ))
        .bind(now)
        .fetch_all(&self.readers)
        .await
        .map_err(sq)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let meeting = meeting_of(row).map_err(sq)?;
            let expires: Option<i64> = row.try_get("expires_at").map_err(sq)?;
            let ttl = expires.map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
            records.push(MeetingRecord { meeting, ttl });
        }
        Ok(records)
    }
}

fn tenant_str(tenant: Option<&TenantId>) -> &str {
    tenant.map_or("", TenantId::as_str)
}

/// Whether `meeting` is hidden from `tenant` (no check when it is blank).
fn hidden_from(meeting: &Meeting, tenant: &str) -> bool {
    !tenant.is_empty() && tenant_str(meeting.tenant_id.as_ref()) != tenant
}

fn meeting_of(row: &SqliteRow) -> Result<Meeting, sqlx::Error> {
    Ok(Meeting {
        id: MeetingId::new(row.try_get::<String, _>("id")?),
        server_id: ServerId::new(row.try_get::<String, _>("server_id")?),
        moderator_pw: row.try_get("moderator_pw")?,
        voice_bridge: row.try_get("voice_bridge")?,
        tenant_id: row.try_get::<String, _>("tenant_id").map(|t| (!t.is_empty()).then(|| TenantId::new(t)))?,
    })
}

/// A meeting whose record has not expired.
async fn live_meeting(conn: &mut SqliteConnection, id: &str, now: i64) -> Result<Option<Meeting>, sqlx::Error> {
    sqlx::query(concat!("SELECT ", meeting_columns!(), " FROM meetings WHERE id = ?1 AND ", live!()))
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| meeting_of(&row))
        .transpose()
}

async fn route_of(conn: &mut SqliteConnection, meeting: Meeting) -> Result<MeetingRoute, sqlx::Error> {
    let server = read_server(conn, meeting.server_id.as_str(), false).await?;
    Ok(MeetingRoute { meeting, server })
}

// === On the connection thread ===

/// Routes a join: the meeting with its server, refused when the server is
/// offline or disabled, and the server's load incremented by its
/// multiplier, all in the thread's write transaction (`join.lua`). The load
/// is only added while the server is in the pool (`load IS NOT NULL`), as
/// the Redis script adds it only to a `server_load` member.
fn route_join(
    conn: &Connection,
    id: &str,
    tenant: &str,
    max_participants: Option<u32>,
    now: i64,
) -> Result<JoinRoute, StoreError> {
    let found = conn
        .prepare_cached(concat!(
            "SELECT m.tenant_id AS meeting_tenant_id, ",
            server_columns!(s),
            " FROM meetings m JOIN servers s ON s.id = m.server_id \
             WHERE m.id = ?1 AND (m.expires_at IS NULL OR m.expires_at > ?2)"
        ))
        .and_then(|mut select| {
            select
                .query_row(params![id, now], |row| {
                    Ok((row.get::<_, String>("meeting_tenant_id")?, server_of_lite(row)?))
                })
                .optional()
        })
        .map_err(lite)?;
    let Some((meeting_tenant, server)) = found else { return Ok(JoinRoute::NotFound) };
    if !tenant.is_empty() && meeting_tenant != tenant {
        return Ok(JoinRoute::NotFound);
    }
    if !server.online || server.is_disabled() {
        return Ok(JoinRoute::Unavailable);
    }
    if let Some(limit) = max_participants
        && !tenant.is_empty()
    {
        let count: i64 = conn
            .prepare_cached("SELECT participants FROM tenant_participants WHERE tenant_id = ?1")
            .and_then(|mut select| select.query_row([tenant], |row| row.get(0)).optional())
            .map_err(lite)?
            .unwrap_or(0);
        if count >= i64::from(limit) {
            return Ok(JoinRoute::LimitReached);
        }
        conn.prepare_cached(
            "INSERT INTO tenant_participants (tenant_id, participants) VALUES (?1, 1) \
             ON CONFLICT (tenant_id) DO UPDATE SET participants = participants + 1",
        )
        .and_then(|mut upsert| upsert.execute([tenant]))
        .map_err(lite)?;
    }
    let multiplier = server.multiplier();
    add_server_load(conn, server.id.as_str(), multiplier)?;
    Ok(JoinRoute::Ready { url: server.url, secret: server.secret, server_id: server.id, multiplier })
}

/// Adds joins counted by the API's join route cache to their servers'
/// loads (`MeetingStore::add_load`), in the thread's write transaction.
fn add_load(conn: &Connection, loads: &[(ServerId, f64)]) -> Result<(), StoreError> {
    for (server, amount) in loads {
        add_server_load(conn, server.as_str(), *amount)?;
    }
    Ok(())
}

/// Adds `amount` to a server's load while it is in the pool
/// (`load IS NOT NULL`), as `ZADD server_load XX INCR` does.
fn add_server_load(conn: &Connection, server: &str, amount: f64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE servers SET load = load + ?2 WHERE id = ?1 AND load IS NOT NULL")
        .and_then(|mut update| update.execute(params![server, amount]))
        .map_err(lite)?;
    Ok(())
}

/// Places a meeting (`place.lua`): an existing live record is returned as
/// is; otherwise Scalelite's selection picks a server of the pool, the
/// first free voice bridge is taken and the reserved users are added to the
/// chosen server's load.
fn place_meeting(conn: &Connection, request: &PlacementRequest, now: i64) -> Result<Placement, StoreError> {
    let id = request.meeting_id.as_str();
    let tenant = tenant_str(request.tenant_id.as_ref());
    let mut replacing = false;
    if let Some(meeting) = live_meeting_lite(conn, id, now).map_err(lite)? {
        // A tenant never takes over another tenant's meeting, nor one
        // stored without tenant.
        if !tenant.is_empty() && tenant_str(meeting.tenant_id.as_ref()) != tenant {
            return Ok(Placement::TenantConflict);
        }
        // Re-homing replaces a record still on the server it leaves.
        if request.replace_on.as_ref() != Some(&meeting.server_id) {
            let route = route_of_lite(conn, meeting).map_err(lite)?;
            return Ok(Placement::Existing(route));
        }
        replacing = true;
    }

    // The tenant's limit (a re-homed meeting is one of its meetings already).
    if let Some(limit) = request.max_meetings
        && !tenant.is_empty()
        && !replacing
    {
        let count: i64 = conn
            .prepare_cached(TENANT_COUNT)
            .and_then(|mut select| select.query_row(params![tenant, id, now], |row| row.get(0)))
            .map_err(lite)?;
        if count >= i64::from(limit) {
            return Ok(Placement::TenantLimit);
        }
    }

    let chosen = match placement::choose(conn, &request.tags, &request.needs).map_err(lite)? {
        Ok(id) => id,
        Err(answer) => return Ok(answer),
    };

    // Voice bridge: the first candidate that is free or already ours.
    let mut voice_bridge = None;
    for candidate in &request.voice_bridges {
        let owner: Option<String> = conn
            .prepare_cached("SELECT meeting_id FROM voice_bridges WHERE voice_bridge = ?1")
            .and_then(|mut select| select.query_row([candidate], |row| row.get(0)).optional())
            .map_err(lite)?;
        match owner {
            None => {
                conn.prepare_cached("INSERT INTO voice_bridges (voice_bridge, meeting_id) VALUES (?1, ?2)")
                    .and_then(|mut insert| insert.execute(params![candidate, id]))
                    .map_err(lite)?;
                voice_bridge = Some(candidate.clone());
                break;
            }
            Some(owner) if owner == id => {
                voice_bridge = Some(candidate.clone());
                break;
            }
            Some(_) => {}
        }
    }
    let Some(voice_bridge) = voice_bridge else {
        return Ok(Placement::VoiceBridgesExhausted);
    };

    conn.prepare_cached(
        "INSERT OR REPLACE INTO meetings (id, server_id, moderator_pw, voice_bridge, tenant_id, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut insert| {
        insert.execute(params![id, &chosen, &request.moderator_pw, &voice_bridge, tenant, expiry(now, request.ttl)])
    })
    .map_err(lite)?;
    let server = read_server_lite(conn, &chosen)
        .map_err(lite)?
        .ok_or_else(|| StoreError::Unexpected(format!("chosen server {chosen} has no record")))?;
    let reserve = f64::from(request.reserve_users) * server.multiplier();
    if reserve > 0.0 {
        conn.prepare_cached("UPDATE servers SET load = load + ?2 WHERE id = ?1 AND load IS NOT NULL")
            .and_then(|mut update| update.execute(params![&chosen, reserve]))
            .map_err(lite)?;
    }
    keep_create(conn, request, &chosen, replacing, now).map_err(lite)?;
    let meeting = Meeting {
        id: request.meeting_id.clone(),
        server_id: server.id.clone(),
        moderator_pw: request.moderator_pw.clone(),
        voice_bridge,
        tenant_id: request.tenant_id.clone().filter(|t| !t.as_str().is_empty()),
    };
    Ok(Placement::Placed { meeting, server })
}

/// Replaces the create parameters kept for the meeting just placed on
/// `chosen` (`place.lua`): none when the request keeps none; a re-homing
/// placement adds the server it replaced to `rehomed_from`.
fn keep_create(
    conn: &Connection,
    request: &PlacementRequest,
    chosen: &str,
    replacing: bool,
    now: i64,
) -> rusqlite::Result<()> {
    let id = request.meeting_id.as_str();
    let mut rehomed_from = Vec::new();
    if let (true, Some(replaced)) = (replacing, &request.replace_on) {
        let previous: Option<String> = conn
            .prepare_cached("SELECT rehomed_from FROM meeting_creates WHERE meeting_id = ?1 AND expires_at > ?2")?
            .query_row(params![id, now], |row| row.get(0))
            .optional()?;
        rehomed_from = StoredCreate::parse_rehomed_from(previous.as_deref().unwrap_or(""));
        rehomed_from.retain(|s| s != replaced);
        rehomed_from.push(replaced.clone());
        let excess = rehomed_from.len().saturating_sub(REHOMED_FROM_MAX);
        rehomed_from.drain(..excess);
    }
    conn.prepare_cached("DELETE FROM meeting_creates WHERE meeting_id = ?1")?.execute([id])?;
    if let Some(create) = &request.create {
        let rehomed_from: Vec<&str> = rehomed_from.iter().map(ServerId::as_str).collect();
        conn.prepare_cached(
            "INSERT INTO meeting_creates (meeting_id, params, origin, server_id, rehomed_from, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            id,
            &create.params,
            create.origin.as_deref(),
            chosen,
            rehomed_from.join(";"),
            expiry(now, request.ttl)
        ])?;
    }
    Ok(())
}

/// Deletes a meeting with its voice bridge and kept create parameters
/// (`delete_meeting.lua`); with `only_on`, only while it is still recorded
/// on that server.
fn delete_meeting(conn: &Connection, id: &str, only_on: Option<&ServerId>, now: i64) -> Result<bool, StoreError> {
    let delete = |conn: &Connection| {
        conn.prepare_cached("DELETE FROM meetings WHERE id = ?1").and_then(|mut delete| delete.execute([id]))?;
        conn.prepare_cached("DELETE FROM meeting_creates WHERE meeting_id = ?1")
            .and_then(|mut delete| delete.execute([id]))
    };
    let Some(meeting) = live_meeting_lite(conn, id, now).map_err(lite)? else {
        // An expired record goes now (its voice bridge is prune's).
        delete(conn).map_err(lite)?;
        return Ok(false);
    };
    if only_on.is_some_and(|expected| *expected != meeting.server_id) {
        return Ok(false);
    }
    delete(conn).map_err(lite)?;
    if !meeting.voice_bridge.is_empty() {
        conn.prepare_cached("DELETE FROM voice_bridges WHERE voice_bridge = ?1 AND meeting_id = ?2")
            .and_then(|mut delete| delete.execute(params![&meeting.voice_bridge, id]))
            .map_err(lite)?;
    }
    Ok(true)
}

fn meeting_of_lite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Meeting> {
    Ok(Meeting {
        id: MeetingId::new(row.get::<_, String>("id")?),
        server_id: ServerId::new(row.get::<_, String>("server_id")?),
        moderator_pw: row.get("moderator_pw")?,
        voice_bridge: row.get("voice_bridge")?,
        tenant_id: row.get::<_, String>("tenant_id").map(|t| (!t.is_empty()).then(|| TenantId::new(t)))?,
    })
}

/// [`live_meeting`] on the connection thread.
fn live_meeting_lite(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<Option<Meeting>> {
    conn.prepare_cached(concat!("SELECT ", meeting_columns!(), " FROM meetings WHERE id = ?1 AND ", live!()))?
        .query_row(params![id, now], meeting_of_lite)
        .optional()
}

/// [`route_of`] on the connection thread.
fn route_of_lite(conn: &Connection, meeting: Meeting) -> rusqlite::Result<MeetingRoute> {
    let server = read_server_lite(conn, meeting.server_id.as_str())?;
    Ok(MeetingRoute { meeting, server })
}
