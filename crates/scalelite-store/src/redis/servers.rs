//! Server administration on Redis: `server:<id>` and the sets Scalelite
//! derives state from (`servers.lua`, `create_server.lua`,
//! `update_server.lua`, `delete_server.lua`).

use async_trait::async_trait;
use redis::Value;
use scalelite_core::ServerId;

use super::{RedisStore, array, pairs, string};
use crate::model::{NewServer, Server, ServerState, ServerUpdate};
use crate::{ServerStore, StoreError};

impl RedisStore {
    /// Reads servers (all members of `servers` when `ids` is empty) with the
    /// load Scalelite derives from their state.
    async fn read_servers(&self, ids: &[&str]) -> Result<Vec<Server>, StoreError> {
        let reply = self.run(&self.scripts.servers, ids).await?;
        let mut servers = Vec::new();
        for entry in array(reply)? {
            let mut fields = array(entry)?.into_iter();
            let mut next = || fields.next().unwrap_or(Value::Nil);
            let id = ServerId::new(string(next())?);
            let hash = pairs(next())?;
            let enabled = matches!(next(), Value::Int(1));
            let load = string(next())?;
            let cordoned_load = string(next())?;
            let placement = pairs(next())?;
            let Some(mut server) = Server::from_hash(id, &hash, enabled) else {
                continue;
            };
            server.set_placement_fields(&placement);
            let score = match server.state.as_deref() {
                Some("cordoned") => cordoned_load,
                Some("disabled") => String::new(),
                Some(_) => load,
                None if enabled => load,
                None => String::new(),
            };
            server.load = score.parse().ok();
            servers.push(server);
        }
        Ok(servers)
    }
}

#[async_trait]
impl ServerStore for RedisStore {
    async fn servers(&self) -> Result<Vec<Server>, StoreError> {
        self.read_servers(&[]).await
    }

    async fn server(&self, id: &ServerId) -> Result<Option<Server>, StoreError> {
        Ok(self.read_servers(&[id.as_str()]).await?.pop())
    }

    async fn create_server(&self, server: &NewServer) -> Result<(), StoreError> {
        let reply = self
            .run(
                &self.scripts.create_server,
                &[
                    server.id.as_str(),
                    &server.url,
                    server.secret.expose(),
                    server.load_multiplier.as_deref().unwrap_or(""),
                    server.tag.as_deref().unwrap_or(""),
                ],
            )
            .await?;
        match string(reply)?.as_str() {
            "ok" => Ok(()),
            "exists" => Err(StoreError::Conflict(format!("Server already exists with id '{}'", server.id))),
            other => Err(StoreError::Unexpected(format!("create_server answered {other:?}"))),
        }
    }

    async fn update_server(&self, id: &ServerId, update: &ServerUpdate) -> Result<(), StoreError> {
        let flag = |set: bool| if set { "1" } else { "0" };
        let (tag_op, tag) = match &update.tag {
            None => ("0", ""),
            Some(Some(tag)) => ("1", tag.as_str()),
            Some(None) => ("2", ""),
        };
        let (region_op, region) = match &update.region {
            None => ("0", ""),
            Some(Some(region)) if !region.trim().is_empty() => ("1", region.trim()),
            Some(_) => ("2", ""),
        };
        let capabilities = update.capabilities.as_ref().map(|c| c.join(";"));
        let capabilities_op = match &capabilities {
            None => "0",
            Some(c) if c.is_empty() => "2",
            Some(_) => "1",
        };
        let reply = self
            .run(
                &self.scripts.update_server,
                &[
                    id.as_str(),
                    flag(update.url.is_some()),
                    update.url.as_deref().unwrap_or(""),
                    flag(update.secret.is_some()),
                    update.secret.as_ref().map_or("", |s| s.expose()),
                    flag(update.load_multiplier.is_some()),
                    update.load_multiplier.as_deref().unwrap_or(""),
                    tag_op,
                    tag,
                    update.state.map_or("", ServerState::as_str),
                    region_op,
                    region,
                    capabilities_op,
                    capabilities.as_deref().unwrap_or(""),
                ],
            )
            .await?;
        match string(reply)?.as_str() {
            "ok" => Ok(()),
            "missing" => Err(StoreError::NotFound(format!("Couldn't find Server with id={id}"))),
            other => Err(StoreError::Unexpected(format!("update_server answered {other:?}"))),
        }
    }

    async fn delete_server(&self, id: &ServerId) -> Result<bool, StoreError> {
        Ok(matches!(self.run(&self.scripts.delete_server, &[id.as_str()]).await?, Value::Int(1)))
    }
}
