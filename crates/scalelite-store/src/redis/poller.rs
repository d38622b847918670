//! The poller's writes and the leases on Redis (`poll_save.lua`,
//! `prune.lua`, `tenant_participants.lua`, `lease.lua`).

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use scalelite_core::TenantId;

use super::{RedisStore, array, string};
use crate::model::{PollResult, PollSave, PollSaved, Pruned, RoundNote, Transition};
use crate::{Lease, LeaseStore, PollerStore, StoreError};

#[async_trait]
impl PollerStore for RedisStore {
    async fn save_poll(&self, lease: &Lease, save: &PollSave) -> Result<PollSaved, StoreError> {
        let (reachable, load, stats) = match &save.result {
            PollResult::Reachable { load, stats } => ("1", *load, *stats),
            PollResult::Unreachable => ("0", 0.0, Default::default()),
        };
        let numbers = [
            format!("{load:?}"),
            stats.meetings.to_string(),
            stats.users.to_string(),
            stats.largest_meeting.to_string(),
            stats.videos.to_string(),
            save.healthy_threshold.to_string(),
            save.unhealthy_threshold.to_string(),
        ];
        let reply = self
            .run(
                &self.scripts.poll_save,
                &[
                    &lease.name,
                    &lease.token,
                    save.server_id.as_str(),
                    reachable,
                    &numbers[0],
                    &numbers[1],
                    &numbers[2],
                    &numbers[3],
                    &numbers[4],
                    if save.bbb_version.is_some() { "1" } else { "0" },
                    save.bbb_version.as_deref().unwrap_or(""),
                    &numbers[5],
                    &numbers[6],
                ],
            )
            .await?;
        let mut parts = array(reply)?.into_iter();
        let first = string(parts.next().unwrap_or(Value::Nil))?;
        Ok(match first.as_str() {
            "not_leader" => PollSaved::NotLeader,
            "gone" => PollSaved::Gone,
            online => {
                let state = string(parts.next().unwrap_or(Value::Nil))?;
                let transition = match string(parts.next().unwrap_or(Value::Nil))?.as_str() {
                    "online" => Some(Transition::CameOnline),
                    "offline" => Some(Transition::WentOffline),
                    "drained" => Some(Transition::Drained),
                    _ => None,
                };
                PollSaved::Saved { online: online == "1", state: (!state.is_empty()).then_some(state), transition }
            }
        })
    }

    async fn save_tenant_participants(&self, lease: &Lease, counts: &[(TenantId, u64)]) -> Result<bool, StoreError> {
        let numbers: Vec<String> = counts.iter().map(|(_, n)| n.to_string()).collect();
        let mut args: Vec<&str> = vec![&lease.name, &lease.token];
        for ((tenant, _), n) in counts.iter().zip(&numbers) {
            args.push(tenant.as_str());
            args.push(n);
        }
        Ok(matches!(self.run(&self.scripts.tenant_participants, &args).await?, Value::Int(1)))
    }

    async fn prune(&self, previous_orphans: &[String]) -> Result<(Pruned, Vec<String>), StoreError> {
        let args: Vec<&str> = previous_orphans.iter().map(String::as_str).collect();
        let mut parts = array(self.run(&self.scripts.prune, &args).await?)?.into_iter();
        let mut count = || match parts.next() {
            Some(Value::Int(n)) => n.max(0) as u64,
            _ => 0,
        };
        let pruned = Pruned { stale_members: count(), orphan_voice_bridges: count() };
        let orphans = array(parts.next().unwrap_or(Value::Nil))?.into_iter().map(string).collect::<Result<_, _>>()?;
        Ok((pruned, orphans))
    }
}

#[async_trait]
impl LeaseStore for RedisStore {
    async fn acquire_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.lease_op(lease, "acquire", ttl).await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.lease_op(lease, "renew", ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.lease_op(lease, "release", Duration::ZERO).await.map(|_| ())
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let reply = self.run(&self.scripts.lease, &[name, "holder", "", "0"]).await?;
        Ok(match reply {
            Value::Nil => None,
            other => Some(string(other)?),
        })
    }

    async fn note_round(&self, note: &RoundNote, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}{}", self.prefix, crate::ROUND_NOTE))
            .arg(note.to_json())
            .arg("PX")
            .arg(ttl.as_millis().max(1).to_string())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn last_round(&self) -> Result<Option<RoundNote>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> =
            redis::cmd("GET").arg(format!("{}{}", self.prefix, crate::ROUND_NOTE)).query_async(&mut conn).await?;
        Ok(raw.as_deref().and_then(RoundNote::from_json))
    }
}

impl RedisStore {
    async fn lease_op(&self, lease: &Lease, op: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis().max(1).to_string();
        let reply = self.run(&self.scripts.lease, &[&lease.name, op, &lease.token, &ttl_ms]).await?;
        Ok(matches!(reply, Value::Int(1)))
    }
}
