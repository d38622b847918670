//! Meeting routing on SQLite: the `meetings` and `voice_bridges` tables
//! (`place.lua`, `join.lua`, `lookup.lua`, `delete_meeting.lua` and
//! `voice_bridge.lua` are the reference).

use std::time::Duration;

use async_trait::async_trait;
use scalelite_core::{MeetingId, ServerId, TenantId};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::placement;
use super::servers::{read_server, server_of};
use super::{SqliteStore, expiry, now_ms, sq};
use crate::model::{JoinRoute, Meeting, MeetingRecord, MeetingRoute, Placement, PlacementRequest};
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

    async fn route_join(&self, id: &MeetingId, tenant: Option<&TenantId>) -> Result<JoinRoute, StoreError> {
        // The hot path: one read of the meeting with its server on a reader,
        // then one statement on the writer (each statement is a hop to the
        // connection's thread; a transaction would add three). The load is
        // only added while the server is in the pool (`load IS NOT NULL`),
        // as the Redis script adds it only to a `server_load` member.
        let row = sqlx::query(concat!(
            "SELECT m.tenant_id AS meeting_tenant_id, ",
            server_columns!(s),
            " FROM meetings m JOIN servers s ON s.id = m.server_id \
             WHERE m.id = ?1 AND (m.expires_at IS NULL OR m.expires_at > ?2)"
        ))
        .bind(id.as_str())
        .bind(now_ms())
        .fetch_optional(&self.readers)
        .await
        .map_err(sq)?;
        let Some(row) = row else { return Ok(JoinRoute::NotFound) };
        let meeting_tenant: String = row.try_get("meeting_tenant_id").map_err(sq)?;
        let tenant = tenant_str(tenant);
        if !tenant.is_empty() && meeting_tenant != tenant {
            return Ok(JoinRoute::NotFound);
        }
        let server = server_of(&row, false).map_err(sq)?;
        if !server.online || server.is_disabled() {
            return Ok(JoinRoute::Unavailable);
        }
        sqlx::query("UPDATE servers SET load = load + ?2 WHERE id = ?1 AND load IS NOT NULL")
            .bind(server.id.as_str())
            .bind(server.multiplier())
            .execute(&self.writer)
            .await
            .map_err(sq)?;
        Ok(JoinRoute::Ready { url: server.url, secret: server.secret })
    }

    async fn place_meeting(&self, request: &PlacementRequest) -> Result<Placement, StoreError> {
        let now = now_ms();
        let id = request.meeting_id.as_str();
        let tenant = tenant_str(request.tenant_id.as_ref());
        let mut tx = self.write().await?;
        if let Some(meeting) = live_meeting(&mut tx, id, now).await.map_err(sq)? {
            // A tenant never takes over another tenant's meeting, nor one
            // stored without tenant.
            if !tenant.is_empty() && tenant_str(meeting.tenant_id.as_ref()) != tenant {
                return Ok(Placement::TenantConflict);
            }
            let route = route_of(&mut tx, meeting).await.map_err(sq)?;
            tx.commit().await.map_err(sq)?;
            return Ok(Placement::Existing(route));
        }

        let chosen = match placement::choose(&mut tx, &request.tags).await.map_err(sq)? {
            Ok(id) => id,
            Err(answer) => return Ok(answer),
        };

        // Voice bridge: the first candidate that is free or already ours.
        let mut voice_bridge = None;
        for candidate in &request.voice_bridges {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT meeting_id FROM voice_bridges WHERE voice_bridge = ?1")
                    .bind(candidate)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sq)?;
            match owner {
                None => {
                    sqlx::query("INSERT INTO voice_bridges (voice_bridge, meeting_id) VALUES (?1, ?2)")
                        .bind(candidate)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(sq)?;
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

        sqlx::query(
            "INSERT OR REPLACE INTO meetings (id, server_id, moderator_pw, voice_bridge, tenant_id, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(id)
        .bind(&chosen)
        .bind(&request.moderator_pw)
        .bind(&voice_bridge)
        .bind(tenant)
        .bind(expiry(now, request.ttl))
        .execute(&mut *tx)
        .await
        .map_err(sq)?;
        let server = read_server(&mut tx, &chosen, false)
            .await
            .map_err(sq)?
            .ok_or_else(|| StoreError::Unexpected(format!("chosen server {chosen} has no record")))?;
        let reserve = f64::from(request.reserve_users) * server.multiplier();
        if reserve > 0.0 {
            sqlx::query("UPDATE servers SET load = load + ?2 WHERE id = ?1 AND load IS NOT NULL")
                .bind(&chosen)
                .bind(reserve)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)?;
        let meeting = Meeting {
            id: request.meeting_id.clone(),
            server_id: server.id.clone(),
            moderator_pw: request.moderator_pw.clone(),
            voice_bridge,
            tenant_id: request.tenant_id.clone().filter(|t| !t.as_str().is_empty()),
        };
        Ok(Placement::Placed { meeting, server })
    }

    async fn delete_meeting(&self, id: &MeetingId, only_on: Option<&ServerId>) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let Some(meeting) = live_meeting(&mut tx, id.as_str(), now_ms()).await.map_err(sq)? else {
            // An expired record goes now (its voice bridge is prune's).
            sqlx::query("DELETE FROM meetings WHERE id = ?1").bind(id.as_str()).execute(&mut *tx).await.map_err(sq)?;
            tx.commit().await.map_err(sq)?;
            return Ok(false);
        };
        if only_on.is_some_and(|expected| *expected != meeting.server_id) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM meetings WHERE id = ?1").bind(id.as_str()).execute(&mut *tx).await.map_err(sq)?;
        if !meeting.voice_bridge.is_empty() {
            sqlx::query("DELETE FROM voice_bridges WHERE voice_bridge = ?1 AND meeting_id = ?2")
                .bind(&meeting.voice_bridge)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)?;
        Ok(true)
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
