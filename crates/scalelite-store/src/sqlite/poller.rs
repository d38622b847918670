//! The poller's writes and the leases on SQLite: poll saves fenced by the
//! lease, prune, and the `leases` table (`lease.lua` is the reference).

use std::time::Duration;

use async_trait::async_trait;
use scalelite_core::TenantId;
use sqlx::sqlite::SqliteConnection;

use super::servers::ServerRow;
use super::{SqliteStore, now_ms, sq};
use crate::model::{PollSave, PollSaved, Pruned, RoundNote};
use crate::{Lease, LeaseStore, PollerStore, StoreError};

#[async_trait]
impl PollerStore for SqliteStore {
    async fn save_poll(&self, lease: &Lease, save: &PollSave) -> Result<PollSaved, StoreError> {
        let mut tx = self.write().await?;
        let holder = lease_token(&mut tx, &lease.name, now_ms()).await.map_err(sq)?;
        if holder.as_deref() != Some(lease.token.as_str()) {
            return Ok(PollSaved::NotLeader);
        }
        let Some(mut row) = ServerRow::read(&mut tx, save.server_id.as_str()).await.map_err(sq)? else {
            return Ok(PollSaved::Gone);
        };
        let transition = row.apply_poll(save);
        row.write(&mut tx, save.server_id.as_str()).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(PollSaved::Saved { online: row.online, state: row.state, transition })
    }

    async fn save_tenant_participants(&self, lease: &Lease, counts: &[(TenantId, u64)]) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let holder = lease_token(&mut tx, &lease.name, now_ms()).await.map_err(sq)?;
        if holder.as_deref() != Some(lease.token.as_str()) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM tenant_participants").execute(&mut *tx).await.map_err(sq)?;
        for (tenant, count) in counts {
            sqlx::query("INSERT OR REPLACE INTO tenant_participants (tenant_id, participants) VALUES (?1, ?2)")
                .bind(tenant.as_str())
                .bind(i64::try_from(*count).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)?;
        Ok(true)
    }

    async fn prune(&self, previous_orphans: &[String]) -> Result<(Pruned, Vec<String>), StoreError> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let stale = sqlx::query("DELETE FROM meetings WHERE expires_at IS NOT NULL AND expires_at <= ?1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(sq)?
            .rows_affected();
        for table in ["leases", "recording_ready_urls", "playback_tokens", "analytics_callbacks", "meeting_creates"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE expires_at <= ?1")))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        // Expired meetings are gone now, so a voice bridge is an orphan when
        // no meeting row holds it.
        const ORPHAN: &str = "SELECT v.voice_bridge FROM voice_bridges v LEFT JOIN meetings m ON m.id = v.meeting_id \
                              WHERE m.voice_bridge IS NOT v.voice_bridge";
        let mut removed = 0;
        for vb in previous_orphans {
            let orphan: Option<String> = sqlx::query_scalar(concat!(
                "SELECT v.voice_bridge FROM voice_bridges v LEFT JOIN meetings m ON m.id = v.meeting_id ",
                "WHERE m.voice_bridge IS NOT v.voice_bridge AND v.voice_bridge = ?1"
            ))
            .bind(vb)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
            if orphan.is_some() {
                sqlx::query("DELETE FROM voice_bridges WHERE voice_bridge = ?1")
                    .bind(vb)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
                removed += 1;
            }
        }
        let current: Vec<String> = sqlx::query_scalar(ORPHAN).fetch_all(&mut *tx).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok((Pruned { stale_members: stale, orphan_voice_bridges: removed }, current))
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.lease_op(lease, LeaseOp::Acquire, ttl).await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.lease_op(lease, LeaseOp::Renew, ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.lease_op(lease, LeaseOp::Release, Duration::ZERO).await.map(|_| ())
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.readers.acquire().await.map_err(sq)?;
        lease_token(&mut conn, name, now_ms()).await.map_err(sq)
    }

    async fn note_round(&self, note: &RoundNote, ttl: Duration) -> Result<(), StoreError> {
        let expires = now_ms().saturating_add(i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX));
        let mut tx = self.write().await?;
        sqlx::query("INSERT OR REPLACE INTO leases (name, token, expires_at) VALUES (?1, ?2, ?3)")
            .bind(crate::ROUND_NOTE)
            .bind(note.to_json())
            .bind(expires)
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        tx.commit().await.map_err(sq)
    }

    async fn last_round(&self) -> Result<Option<RoundNote>, StoreError> {
        let mut conn = self.readers.acquire().await.map_err(sq)?;
        let raw = lease_token(&mut conn, crate::ROUND_NOTE, now_ms()).await.map_err(sq)?;
        Ok(raw.as_deref().and_then(RoundNote::from_json))
    }
}

impl SqliteStore {
    async fn lease_op(&self, lease: &Lease, op: LeaseOp, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_ms();
        let expires = now.saturating_add(i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX));
        let mut tx = self.write().await?;
        let current = lease_token(&mut tx, &lease.name, now).await.map_err(sq)?;
        let ours = current.as_deref() == Some(lease.token.as_str());
        let done = match op {
            LeaseOp::Acquire if current.is_none() => {
                sqlx::query("INSERT OR REPLACE INTO leases (name, token, expires_at) VALUES (?1, ?2, ?3)")
                    .bind(&lease.name)
                    .bind(&lease.token)
                    .bind(expires)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
                true
            }
            LeaseOp::Acquire | LeaseOp::Renew if ours => {
                sqlx::query("UPDATE leases SET expires_at = ?2 WHERE name = ?1")
                    .bind(&lease.name)
                    .bind(expires)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
                true
            }
            LeaseOp::Release if ours => {
                sqlx::query("DELETE FROM leases WHERE name = ?1")
                    .bind(&lease.name)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
                true
            }
            _ => false,
        };
        tx.commit().await.map_err(sq)?;
        Ok(done)
    }
}

#[derive(Clone, Copy)]
enum LeaseOp {
    Acquire,
    Renew,
    Release,
}

async fn lease_token(conn: &mut SqliteConnection, name: &str, now: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT token FROM leases WHERE name = ?1 AND expires_at > ?2")
        .bind(name)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
}
