//! Tenants and their settings on Redis: `tenant:<id>`, `tenant_name:<name>`
//! and `tenant_setting:<id>` (`tenants.lua`, `save_tenant.lua`,
//! `delete_tenant.lua`, `tenant_setting.lua`).

use async_trait::async_trait;
use redis::Value;
use scalelite_core::TenantId;

use super::{RedisStore, array, pairs, string};
use crate::tenants::{Tenant, TenantRecord, TenantSetting, TenantUpdate};
use crate::{StoreError, TenantStore};

impl RedisStore {
    async fn read_tenants(&self, mode: &str, arg: &str) -> Result<Vec<TenantRecord>, StoreError> {
        let reply = self.run(&self.scripts.tenants, &[mode, arg]).await?;
        let mut records = Vec::new();
        for entry in array(reply)? {
            let mut fields = array(entry)?.into_iter();
            let mut next = || fields.next().unwrap_or(Value::Nil);
            let id = TenantId::new(string(next())?);
            let Some(tenant) = Tenant::from_hash(id, &pairs(next())?) else {
                continue;
            };
            let mut settings = Vec::new();
            for setting in array(next())? {
                let mut parts = array(setting)?.into_iter();
                let sid = string(parts.next().unwrap_or(Value::Nil))?;
                settings.extend(TenantSetting::from_hash(sid, &pairs(parts.next().unwrap_or(Value::Nil))?));
            }
            records.push(TenantRecord { tenant, settings });
        }
        Ok(records)
    }

    async fn save_tenant(&self, mode: &str, id: &TenantId, fields: &[(&str, &str)]) -> Result<String, StoreError> {
        let mut args = vec![mode, id.as_str()];
        for (field, value) in fields {
            args.push(field);
            args.push(value);
        }
        string(self.run(&self.scripts.save_tenant, &args).await?)
    }
}

#[async_trait]
impl TenantStore for RedisStore {
    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.read_tenants("all", "").await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.read_tenants("id", id.as_str()).await?.into_iter().next())
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.read_tenants("name", name).await?.into_iter().next())
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let mut fields = vec![("name", tenant.name.as_str()), ("secrets", tenant.secrets.as_str())];
        fields.extend(tenant.lrs_fields());
        match self.save_tenant("create", &tenant.id, &fields).await?.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::Conflict(format!("Tenant already exists with id '{}'", tenant.id))),
        }
    }

    async fn update_tenant(&self, id: &TenantId, update: &TenantUpdate) -> Result<(), StoreError> {
        let mut fields: Vec<(&str, &str)> = Vec::new();
        if let Some(name) = &update.name {
            fields.push(("name", name));
        }
        if let Some(secrets) = &update.secrets {
            fields.push(("secrets", secrets));
        }
        fields.extend(update.lrs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        match self.save_tenant("update", id, &fields).await?.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::NotFound(format!("Couldn't find Tenant with id={id}"))),
        }
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<bool, StoreError> {
        Ok(matches!(self.run(&self.scripts.delete_tenant, &[id.as_str()]).await?, Value::Int(1)))
    }

    async fn create_tenant_setting(&self, setting: &TenantSetting) -> Result<(), StoreError> {
        let args = [
            "create",
            setting.id.as_str(),
            setting.tenant_id.as_str(),
            setting.param.as_str(),
            setting.value.as_str(),
            setting.override_flag.as_str(),
        ];
        match string(self.run(&self.scripts.tenant_setting, &args).await?)?.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::Conflict(format!("TenantSetting already exists with id '{}'", setting.id))),
        }
    }

    async fn delete_tenant_setting(&self, id: &str) -> Result<bool, StoreError> {
        Ok(matches!(self.run(&self.scripts.tenant_setting, &["delete", id]).await?, Value::Int(1)))
    }
}
