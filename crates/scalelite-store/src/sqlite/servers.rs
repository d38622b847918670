//! Server administration on SQLite: the `servers` table, with the set
//! bookkeeping of Scalelite's `Server#save` (`update_server.lua`) and the
//! health hysteresis of a poll (`poll_save.lua`) on [`ServerRow`].

use async_trait::async_trait;
use scalelite_core::{Secret, ServerId};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::{SqliteStore, sq};
use crate::model::{NewServer, PollResult, PollSave, Server, ServerStats, ServerUpdate, Transition};
use crate::{ServerStore, StoreError};

#[async_trait]
impl ServerStore for SqliteStore {
    async fn servers(&self) -> Result<Vec<Server>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", server_columns!(), " FROM servers ORDER BY id"))
            .fetch_all(&self.readers)
            .await
            .map_err(sq)?;
        rows.iter().map(|row| server_of(row, true)).collect::<Result<_, _>>().map_err(sq)
    }

    async fn server(&self, id: &ServerId) -> Result<Option<Server>, StoreError> {
        let mut conn = self.readers.acquire().await.map_err(sq)?;
        read_server(&mut conn, id.as_str(), true).await.map_err(sq)
    }

    async fn create_server(&self, server: &NewServer) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM servers WHERE id = ?1")
            .bind(server.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("Server already exists with id '{}'", server.id)));
        }
        sqlx::query(
            "INSERT INTO servers (id, url, secret, tag, load_multiplier, online) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        )
        .bind(server.id.as_str())
        .bind(&server.url)
        .bind(server.secret.expose())
        .bind(server.tag.as_deref().filter(|t| !t.is_empty()))
        .bind(server.load_multiplier.as_deref().filter(|m| !m.is_empty()))
        .execute(&mut *tx)
        .await
        .map_err(sq)?;
        tx.commit().await.map_err(sq)
    }

    async fn update_server(&self, id: &ServerId, update: &ServerUpdate) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let Some(mut row) = ServerRow::read(&mut tx, id.as_str()).await.map_err(sq)? else {
            return Err(StoreError::NotFound(format!("Couldn't find Server with id={id}")));
        };
        if let Some(url) = &update.url {
            sqlx::query("UPDATE servers SET url = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(url)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(secret) = &update.secret {
            sqlx::query("UPDATE servers SET secret = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(secret.expose())
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(multiplier) = &update.load_multiplier {
            sqlx::query("UPDATE servers SET load_multiplier = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(multiplier)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(tag) = &update.tag {
            sqlx::query("UPDATE servers SET tag = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(tag.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(region) = &update.region {
            sqlx::query("UPDATE servers SET region = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(region.as_deref().map(str::trim).filter(|r| !r.is_empty()))
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(capabilities) = &update.capabilities {
            sqlx::query("UPDATE servers SET capabilities = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(Some(capabilities.join(";")).filter(|c| !c.is_empty()))
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(state) = update.state {
            row.set_state(state.as_str());
            row.write(&mut tx, id.as_str()).await.map_err(sq)?;
        }
        tx.commit().await.map_err(sq)
    }

    async fn delete_server(&self, id: &ServerId) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let deleted =
            sqlx::query("DELETE FROM servers WHERE id = ?1").bind(id.as_str()).execute(&mut *tx).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(deleted.rows_affected() > 0)
    }
}

fn count(value: Option<i64>) -> Option<u64> {
    value.and_then(|n| u64::try_from(n).ok())
}

pub(super) fn server_of(row: &SqliteRow, with_load: bool) -> Result<Server, sqlx::Error> {
    let state: Option<String> = row.try_get::<Option<String>, _>("state")?.filter(|s| !s.is_empty());
    let in_enabled_set = row.try_get::<i64, _>("in_enabled_set")? != 0;
    let load = if with_load {
        match state.as_deref() {
            Some("cordoned") => row.try_get("cordoned_load")?,
            Some("disabled") => None,
            Some(_) => row.try_get("load")?,
            None if in_enabled_set => row.try_get("load")?,
            None => None,
        }
    } else {
        None
    };
    Ok(Server {
        id: ServerId::new(row.try_get::<String, _>("id")?),
        url: row.try_get("url")?,
        secret: Secret::new(row.try_get::<String, _>("secret")?),
        tag: row.try_get::<Option<String>, _>("tag")?.filter(|t| !t.is_empty()),
        online: row.try_get::<i64, _>("online")? != 0,
        state,
        in_enabled_set,
        load_multiplier: row.try_get::<Option<String>, _>("load_multiplier")?.filter(|m| !m.is_empty()),
        load,
        stats: ServerStats {
            meetings: count(row.try_get("meetings")?),
            users: count(row.try_get("users")?),
            largest_meeting: count(row.try_get("largest_meeting")?),
            videos: count(row.try_get("videos")?),
        },
        bbb_version: row.try_get("bbb_version")?,
        region: row.try_get::<Option<String>, _>("region")?.filter(|r| !r.is_empty()),
        capabilities: scalelite_core::selection::parse_list(
            row.try_get::<Option<String>, _>("capabilities")?.as_deref(),
        ),
    })
}

/// [`server_of`] for a row of the connection thread, its load left out.
pub(super) fn server_of_lite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Server> {
    Ok(Server {
        id: ServerId::new(row.get::<_, String>("id")?),
        url: row.get("url")?,
        secret: Secret::new(row.get::<_, String>("secret")?),
        tag: row.get::<_, Option<String>>("tag")?.filter(|t| !t.is_empty()),
        online: row.get::<_, i64>("online")? != 0,
        state: row.get::<_, Option<String>>("state")?.filter(|s| !s.is_empty()),
        in_enabled_set: row.get::<_, i64>("in_enabled_set")? != 0,
        load_multiplier: row.get::<_, Option<String>>("load_multiplier")?.filter(|m| !m.is_empty()),
        load: None,
        stats: ServerStats {
            meetings: count(row.get("meetings")?),
            users: count(row.get("users")?),
            largest_meeting: count(row.get("largest_meeting")?),
            videos: count(row.get("videos")?),
        },
        bbb_version: row.get("bbb_version")?,
        region: row.get::<_, Option<String>>("region")?.filter(|r| !r.is_empty()),
        capabilities: scalelite_core::selection::parse_list(row.get::<_, Option<String>>("capabilities")?.as_deref()),
    })
}

/// [`read_server`] on the connection thread.
pub(super) fn read_server_lite(conn: &rusqlite::Connection, id: &str) -> rusqlite::Result<Option<Server>> {
    use rusqlite::OptionalExtension as _;
    conn.prepare_cached(concat!("SELECT ", server_columns!(), " FROM servers WHERE id = ?1"))?
        .query_row([id], server_of_lite)
        .optional()
}

/// One server (its load left out, as a route carries it in Redis too).
pub(super) async fn read_server(
    conn: &mut SqliteConnection,
    id: &str,
    with_load: bool,
) -> Result<Option<Server>, sqlx::Error> {
    sqlx::query(concat!("SELECT ", server_columns!(), " FROM servers WHERE id = ?1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| server_of(&row, with_load))
        .transpose()
}

/// The columns of a server that state changes and polls rewrite.
pub(super) struct ServerRow {
    pub(super) online: bool,
    pub(super) state: Option<String>,
    in_enabled_set: bool,
    load: Option<f64>,
    cordoned_load: Option<f64>,
    stats: [Option<i64>; 4],
    bbb_version: Option<String>,
    healthy: i64,
    unhealthy: i64,
}

impl ServerRow {
    pub(super) async fn read(conn: &mut SqliteConnection, id: &str) -> Result<Option<Self>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT online, state, in_enabled_set, load, cordoned_load, meetings, users, largest_meeting, videos, \
             bbb_version, healthy_counter, unhealthy_counter FROM servers WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Self {
            online: row.try_get::<i64, _>("online")? != 0,
            state: row.try_get::<Option<String>, _>("state")?.filter(|s| !s.is_empty()),
            in_enabled_set: row.try_get::<i64, _>("in_enabled_set")? != 0,
            load: row.try_get("load")?,
            cordoned_load: row.try_get("cordoned_load")?,
            stats: [
                row.try_get("meetings")?,
                row.try_get("users")?,
                row.try_get("largest_meeting")?,
                row.try_get("videos")?,
            ],
            bbb_version: row.try_get("bbb_version")?,
            healthy: row.try_get("healthy_counter")?,
            unhealthy: row.try_get("unhealthy_counter")?,
        }))
    }

    pub(super) async fn write(&self, conn: &mut SqliteConnection, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE servers SET online = ?2, state = ?3, in_enabled_set = ?4, load = ?5, cordoned_load = ?6, \
             meetings = ?7, users = ?8, largest_meeting = ?9, videos = ?10, bbb_version = ?11, \
             healthy_counter = ?12, unhealthy_counter = ?13 WHERE id = ?1",
        )
        .bind(id)
        .bind(i64::from(self.online))
        .bind(&self.state)
        .bind(i64::from(self.in_enabled_set))
        .bind(self.load)
        .bind(self.cordoned_load)
        .bind(self.stats[0])
        .bind(self.stats[1])
        .bind(self.stats[2])
        .bind(self.stats[3])
        .bind(&self.bbb_version)
        .bind(self.healthy)
        .bind(self.unhealthy)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The load Scalelite's `Server.find` reads for the current state.
    fn visible_load(&self) -> Option<f64> {
        match self.state.as_deref() {
            Some("cordoned") => self.cordoned_load,
            Some("disabled") => None,
            Some(_) => self.load,
            None if self.in_enabled_set => self.load,
            None => None,
        }
    }

    /// The state bookkeeping of Scalelite's `Server#save` (`update_server.lua`).
    fn set_state(&mut self, new: &str) {
        if self.state.as_deref() == Some(new) {
            return;
        }
        let mut load = self.visible_load();
        self.state = Some(new.to_owned());
        match new {
            "enabled" => {
                load = load.or(self.cordoned_load);
                self.in_enabled_set = true;
                if load.is_some() {
                    self.load = load;
                }
                self.cordoned_load = None;
            }
            "cordoned" => {
                load = load.or(self.load);
                if load.is_some() {
                    self.cordoned_load = load;
                }
                self.load = None;
                self.in_enabled_set = false;
            }
            _ => {
                self.in_enabled_set = false;
                self.load = None;
                self.cordoned_load = None;
            }
        }
    }

    /// Applies a poll result with the health hysteresis (`poll_save.lua`).
    pub(super) fn apply_poll(&mut self, save: &PollSave) -> Option<Transition> {
        if let Some(version) = &save.bbb_version {
            self.bbb_version = Some(version.clone());
        }
        let PollResult::Reachable { load, stats } = &save.result else {
            self.healthy = 0;
            if !self.online {
                return None;
            }
            self.unhealthy += 1;
            if self.unhealthy < i64::from(save.unhealthy_threshold) {
                return None;
            }
            self.healthy = 0;
            self.unhealthy = 0;
            self.online = false;
            self.stats = [Some(0); 4];
            self.load = None;
            self.cordoned_load = None;
            return Some(Transition::WentOffline);
        };
        self.unhealthy = 0;
        let mut transition = None;
        if !self.online {
            self.healthy += 1;
            if self.healthy < i64::from(save.healthy_threshold) {
                return None;
            }
            self.healthy = 0;
            self.unhealthy = 0;
            self.online = true;
            transition = Some(Transition::CameOnline);
        }
        if self.state.as_deref() == Some("cordoned") && *load == 0.0 {
            self.state = Some("disabled".to_owned());
            self.in_enabled_set = false;
            self.load = None;
            self.cordoned_load = None;
            transition.get_or_insert(Transition::Drained);
        }
        let number = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
        self.stats = [number(stats.meetings), number(stats.users), number(stats.largest_meeting), number(stats.videos)];
        match self.state.as_deref() {
            Some("cordoned") => self.cordoned_load = Some(*load),
            Some("disabled") => {}
            Some(_) => self.load = Some(*load),
            None if self.in_enabled_set => self.load = Some(*load),
            None => {}
        }
        transition
    }
}
