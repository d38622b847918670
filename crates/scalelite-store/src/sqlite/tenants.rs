//! Tenants and their settings on SQLite: the `tenants`, `tenant_names` and
//! `tenant_settings` tables.

use std::collections::HashMap;

use async_trait::async_trait;
use scalelite_core::TenantId;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, sq};
use crate::tenants::{LRS_FIELDS, Tenant, TenantRecord, TenantSetting, TenantUpdate};
use crate::{StoreError, TenantStore};

#[async_trait]
impl TenantStore for SqliteStore {
    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.read_tenants(TenantFilter::All).await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.read_tenants(TenantFilter::Id(id.as_str())).await?.into_iter().next())
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.read_tenants(TenantFilter::Name(name)).await?.into_iter().next())
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let lrs: HashMap<&str, &str> = tenant.lrs_fields().collect();
        let lrs = serde_json::to_string(&lrs).map_err(|e| StoreError::Unexpected(e.to_string()))?;
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = ?1")
            .bind(tenant.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("Tenant already exists with id '{}'", tenant.id)));
        }
        sqlx::query("INSERT INTO tenants (id, name, secrets, lrs) VALUES (?1, ?2, ?3, ?4)")
            .bind(tenant.id.as_str())
            .bind(&tenant.name)
            .bind(&tenant.secrets)
            .bind(lrs)
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        sqlx::query("INSERT OR REPLACE INTO tenant_names (name, tenant_id) VALUES (?1, ?2)")
            .bind(&tenant.name)
            .bind(tenant.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        tx.commit().await.map_err(sq)
    }

    async fn update_tenant(&self, id: &TenantId, update: &TenantUpdate) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let current: Option<(String, String)> = sqlx::query_as("SELECT name, lrs FROM tenants WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        let Some((old_name, lrs)) = current else {
            return Err(StoreError::NotFound(format!("Couldn't find Tenant with id={id}")));
        };
        if let Some(name) = &update.name {
            if *name != old_name {
                // The old index entry goes, whomever it points to (as Scalelite).
                sqlx::query("DELETE FROM tenant_names WHERE name = ?1")
                    .bind(&old_name)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
            }
            sqlx::query("INSERT OR REPLACE INTO tenant_names (name, tenant_id) VALUES (?1, ?2)")
                .bind(name)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
            sqlx::query("UPDATE tenants SET name = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(secrets) = &update.secrets {
            sqlx::query("UPDATE tenants SET secrets = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(secrets)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if !update.lrs.is_empty() {
            let mut fields = parse_lrs(&lrs)?;
            fields.extend(update.lrs.iter().cloned());
            let json = serde_json::to_string(&fields).map_err(|e| StoreError::Unexpected(e.to_string()))?;
            sqlx::query("UPDATE tenants SET lrs = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(json)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let name: Option<String> = sqlx::query_scalar("DELETE FROM tenants WHERE id = ?1 RETURNING name")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        if let Some(name) = &name {
            sqlx::query("DELETE FROM tenant_names WHERE name = ?1").bind(name).execute(&mut *tx).await.map_err(sq)?;
        }
        tx.commit().await.map_err(sq)?;
        Ok(name.is_some())
    }

    async fn create_tenant_setting(&self, setting: &TenantSetting) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO tenant_settings (id, tenant_id, param, value, override_flag) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&setting.id)
        .bind(setting.tenant_id.as_str())
        .bind(&setting.param)
        .bind(&setting.value)
        .bind(&setting.override_flag)
        .execute(&mut *self.writer().await?)
        .await
        .map_err(sq)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("TenantSetting already exists with id '{}'", setting.id)));
        }
        Ok(())
    }

    async fn delete_tenant_setting(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM tenant_settings WHERE id = ?1")
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(sq)?;
        Ok(deleted.rows_affected() > 0)
    }
}

impl SqliteStore {
    async fn read_tenants(&self, filter: TenantFilter<'_>) -> Result<Vec<TenantRecord>, StoreError> {
        let mut tx = self.read().await?;
        let rows = match filter {
            TenantFilter::All => {
                sqlx::query("SELECT id, name, secrets, lrs FROM tenants ORDER BY id").fetch_all(&mut *tx)
            }
            TenantFilter::Id(id) => {
                sqlx::query("SELECT id, name, secrets, lrs FROM tenants WHERE id = ?1").bind(id).fetch_all(&mut *tx)
            }
            TenantFilter::Name(name) => sqlx::query(
                "SELECT t.id, t.name, t.secrets, t.lrs FROM tenant_names n JOIN tenants t ON t.id = n.tenant_id \
                 WHERE n.name = ?1",
            )
            .bind(name)
            .fetch_all(&mut *tx),
        }
        .await
        .map_err(sq)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id").map_err(sq)?;
            let lrs_json: String = row.try_get("lrs").map_err(sq)?;
            let lrs = parse_lrs(&lrs_json)?;
            let tenant = Tenant {
                id: TenantId::new(id.clone()),
                name: row.try_get("name").map_err(sq)?,
                secrets: row.try_get("secrets").map_err(sq)?,
                lrs: LRS_FIELDS.iter().filter_map(|f| lrs.get(*f).map(|v| ((*f).to_owned(), v.clone()))).collect(),
            };
            let settings = sqlx::query(
                "SELECT id, tenant_id, param, value, override_flag FROM tenant_settings WHERE tenant_id = ?1 \
                 ORDER BY id",
            )
            .bind(&id)
            .fetch_all(&mut *tx)
            .await
            .map_err(sq)?
            .iter()
            .map(setting_of)
            .collect::<Result<_, _>>()
            .map_err(sq)?;
            records.push(TenantRecord { tenant, settings });
        }
        tx.commit().await.map_err(sq)?;
        Ok(records)
    }
}

#[derive(Clone, Copy)]
enum TenantFilter<'a> {
    All,
    Id(&'a str),
    Name(&'a str),
}

fn parse_lrs(json: &str) -> Result<HashMap<String, String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Unexpected(format!("tenant lrs fields: {e}")))
}

fn setting_of(row: &SqliteRow) -> Result<TenantSetting, sqlx::Error> {
    Ok(TenantSetting {
        id: row.try_get("id")?,
        tenant_id: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        param: row.try_get("param")?,
        value: row.try_get("value")?,
        override_flag: row.try_get("override_flag")?,
    })
}
