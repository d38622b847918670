//! Meeting routing on Redis: `meeting:<id>`, `meetings` and
//! `voice_bridges` (`lookup.lua`, `join.lua`, `place.lua`,
//! `delete_meeting.lua`, `voice_bridge.lua`, `meetings.lua`), and
//! `meeting_create:<id>`, the create parameters kept for re-homing (written
//! by `place.lua`, removed by `delete_meeting.lua`), and
//! `tenant_meetings:<tenant id>`, a tenant's meetings for its limit
//! (written by `place.lua`, removed by `delete_meeting.lua` and
//! `prune.lua`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use scalelite_core::load::parse_multiplier;
use scalelite_core::{MeetingId, ServerId, TenantId};

use super::{RedisStore, array, pairs, string};
use crate::model::{
    JoinRoute, Meeting, MeetingRecord, MeetingRoute, Placement, PlacementRequest, Server, StoredCreate,
};
use crate::{MeetingStore, StoreError};

#[async_trait]
impl MeetingStore for RedisStore {
    async fn find_meeting(
        &self,
        id: &MeetingId,
        tenant: Option<&TenantId>,
    ) -> Result<Option<MeetingRoute>, StoreError> {
        let reply = self.run(&self.scripts.lookup, &[id.as_str(), tenant_arg(tenant)]).await?;
        let parts = array(reply)?;
        if parts.is_empty() {
            return Ok(None);
        }
        route_from(id, parts).map(Some)
    }

    async fn route_join(
        &self,
        id: &MeetingId,
        tenant: Option<&TenantId>,
        max_participants: Option<u32>,
    ) -> Result<JoinRoute, StoreError> {
        let limit = max_participants.map_or_else(String::new, |n| n.to_string());
        let reply = self.run(&self.scripts.join, &[id.as_str(), tenant_arg(tenant), &limit]).await?;
        match reply {
            Value::Int(0) => Ok(JoinRoute::NotFound),
            Value::Int(1) => Ok(JoinRoute::Unavailable),
            Value::Int(2) => Ok(JoinRoute::LimitReached),
            Value::Array(parts) => {
                let mut parts = parts.into_iter();
                let url = string(parts.next().unwrap_or(Value::Nil))?;
                let secret = string(parts.next().unwrap_or(Value::Nil))?;
                let server_id = string(parts.next().unwrap_or(Value::Nil))?;
                let multiplier = string(parts.next().unwrap_or(Value::Nil))?;
                Ok(JoinRoute::Ready {
                    url,
                    secret: secret.as_str().into(),
                    server_id: ServerId::new(server_id),
                    multiplier: parse_multiplier(Some(&multiplier)),
                })
            }
            other => Err(StoreError::Unexpected(format!("join script answered {other:?}"))),
        }
    }

    async fn add_load(&self, loads: &[(ServerId, f64)]) -> Result<(), StoreError> {
        if loads.is_empty() {
            return Ok(());
        }
        // What join.lua does per join, one ZADD per server for a batch of
        // them: only a member of server_load changes.
        let key = format!("{}server_load", self.prefix);
        let mut pipe = redis::pipe();
        for (server, amount) in loads {
            pipe.cmd("ZADD").arg(&key).arg("XX").arg("INCR").arg(*amount).arg(server.as_str()).ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    async fn place_meeting(&self, request: &PlacementRequest) -> Result<Placement, StoreError> {
        let tags = request.tags.tags.join(";");
        let ttl = request.ttl.as_secs().max(1).to_string();
        let reserve = request.reserve_users.to_string();
        let create = request.create.as_ref();
        let max_meetings = request.max_meetings.map_or_else(String::new, |n| n.to_string());
        let capabilities = request.needs.capabilities.join(";");
        let regions = request.needs.regions.join(";");
        let capacity = request.needs.capacity.to_string();
        let mut args: Vec<&str> = vec![
            request.meeting_id.as_str(),
            tenant_arg(request.tenant_id.as_ref()),
            &tags,
            if request.tags.required { "1" } else { "0" },
            &request.moderator_pw,
            &ttl,
            &reserve,
            request.replace_on.as_ref().map_or("", ServerId::as_str),
            create.map_or("", |c| c.params.as_str()),
            create.and_then(|c| c.origin.as_deref()).unwrap_or(""),
            &max_meetings,
            &capabilities,
            &regions,
            &capacity,
        ];
        args.extend(request.voice_bridges.iter().map(String::as_str));
        let reply = self.run(&self.scripts.place, &args).await?;
        let mut parts = array(reply)?;
        if parts.is_empty() {
            return Err(StoreError::Unexpected("empty placement reply".into()));
        }
        let status = string(parts.remove(0))?;
        Ok(match status.as_str() {
            "existing" => Placement::Existing(route_from(&request.meeting_id, parts)?),
            "placed" => {
                let route = route_from(&request.meeting_id, parts)?;
                let server =
                    route.server.ok_or_else(|| StoreError::Unexpected("placed meeting without server".into()))?;
                Placement::Placed { meeting: route.meeting, server }
            }
            "noserver" => Placement::NoServer,
            "tagunavailable" => Placement::TagUnavailable,
            "capabilityunavailable" => Placement::CapabilityUnavailable,
            "tenant_conflict" => Placement::TenantConflict,
            "vb_exhausted" => Placement::VoiceBridgesExhausted,
            "tenant_limit" => Placement::TenantLimit,
            other => {
                return Err(StoreError::Unexpected(format!("placement script answered {other:?}")));
            }
        })
    }

    async fn delete_meeting(&self, id: &MeetingId, only_on: Option<&ServerId>) -> Result<bool, StoreError> {
        let expected = only_on.map_or("", ServerId::as_str);
        let reply = self.run(&self.scripts.delete_meeting, &[id.as_str(), expected]).await?;
        Ok(matches!(reply, Value::Int(1)))
    }

    async fn find_meeting_by_voice_bridge(&self, pin: &str) -> Result<Option<MeetingRoute>, StoreError> {
        let mut parts = array(self.run(&self.scripts.voice_bridge, &[pin]).await?)?;
        if parts.is_empty() {
            return Ok(None);
        }
        let id = MeetingId::new(string(parts.remove(0))?);
        route_from(&id, parts).map(Some)
    }

    async fn stored_create(&self, id: &MeetingId) -> Result<Option<StoredCreate>, StoreError> {
        let key = format!("{}meeting_create:{id}", self.prefix);
        let mut conn = self.conn.clone();
        let mut hash: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await?;
        Ok(hash.remove("params").filter(|p| !p.is_empty()).map(|params| StoredCreate {
            params,
            origin: hash.remove("origin").filter(|o| !o.is_empty()),
            placed_on: hash.remove("server_id").filter(|s| !s.is_empty()).map(ServerId::new),
            rehomed_from: StoredCreate::parse_rehomed_from(hash.get("rehomed_from").map_or("", String::as_str)),
        }))
    }

    async fn meetings(&self) -> Result<Vec<MeetingRecord>, StoreError> {
        let mut records = Vec::new();
        for entry in array(self.run(&self.scripts.meetings, &[]).await?)? {
            let mut fields = array(entry)?.into_iter();
            let id = MeetingId::new(string(fields.next().unwrap_or(Value::Nil))?);
            let hash = pairs(fields.next().unwrap_or(Value::Nil))?;
            let ttl = match fields.next() {
                Some(Value::Int(ms)) if ms >= 0 => Some(Duration::from_millis(ms as u64)),
                _ => None,
            };
            if let Some(meeting) = Meeting::from_hash(id, &hash) {
                records.push(MeetingRecord { meeting, ttl });
            }
        }
        Ok(records)
    }
}

fn tenant_arg(tenant: Option<&TenantId>) -> &str {
    tenant.map_or("", TenantId::as_str)
}

fn route_from(id: &MeetingId, parts: Vec<Value>) -> Result<MeetingRoute, StoreError> {
    let mut parts = parts.into_iter();
    let meeting_hash = pairs(parts.next().unwrap_or(Value::Nil))?;
    let server_hash = pairs(parts.next().unwrap_or(Value::Nil))?;
    let enabled = matches!(parts.next(), Some(Value::Int(1)));
    // place.lua adds the chosen server's server_placement:<id>.
    let placement = parts.next().map(pairs).transpose()?;
    let meeting = Meeting::from_hash(id.clone(), &meeting_hash)
        .ok_or_else(|| StoreError::Unexpected(format!("meeting {id} has no server_id")))?;
    let mut server = Server::from_hash(meeting.server_id.clone(), &server_hash, enabled);
    if let (Some(server), Some(placement)) = (server.as_mut(), placement) {
        server.set_placement_fields(&placement);
    }
    Ok(MeetingRoute { meeting, server })
}
