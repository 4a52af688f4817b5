//! Dynamic broker configs at runtime: IncrementalAlterConfigs / AlterConfigs on the
//! BROKER resource change topic defaults (`broker_settings`), which re-resolves
//! every topic's config and hands it to the open logs on every shard.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use strata_schema::ErrorCode;

use super::{stopping, Broker, METADATA_SHARD};
use crate::broker_settings::{check_dynamic, store_dynamic, SettingError};
use crate::errors::WireError;
use crate::metadata::TopicMeta;
use crate::topic_config::TopicConfig;

fn setting_error(e: SettingError) -> WireError {
    let code = match e {
        SettingError::ReadOnly { .. } => ErrorCode::InvalidRequest,
        SettingError::Invalid { .. } | SettingError::Unknown { .. } => ErrorCode::InvalidConfig,
    };
    WireError::new(code, e.to_string())
}

impl Broker {
    /// Sets (value) or removes (no value) dynamic broker configs of the cluster-wide
    /// defaults (`cluster_default`) or of this broker, durably, and applies them to
    /// every topic that has no value of its own. Runs on the metadata shard.
    pub async fn alter_broker_configs(
        &self,
        cluster_default: bool,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), WireError> {
        debug_assert_eq!(self.shard.id(), METADATA_SHARD);
        let _lock = self
            .meta_lock
            .acquire_permit(1)
            .await
            .map_err(|_| stopping())?;
        let current = self.topics();
        let mut dynamic = (*current.dynamic).clone();
        {
            let layer = dynamic.layer_mut(cluster_default);
            for (k, v) in changes {
                match v {
                    Some(v) => {
                        let v = check_dynamic(&k, &v).map_err(setting_error)?;
                        layer.insert(k, v);
                    }
                    None => {
                        // Removing is allowed for any dynamic key, set or not.
                        if let Err(
                            e @ (SettingError::ReadOnly { .. } | SettingError::Unknown { .. }),
                        ) = check_dynamic(&k, "")
                        {
                            return Err(setting_error(e));
                        }
                        layer.remove(&k);
                    }
                }
            }
            if layer.len() > crate::broker_settings::DYNAMIC_CONFIGS_MAX {
                return Err(WireError::new(
                    ErrorCode::InvalidRequest,
                    "too many dynamic broker configs",
                ));
            }
        }
        let defaults = dynamic.topic_defaults(&self.config.topic_defaults);
        TopicConfig::resolve(&defaults, &BTreeMap::new()).map_err(|e| {
            WireError::new(
                ErrorCode::InvalidConfig,
                format!("as a broker default: {e}"),
            )
        })?;
        let mut topics = (*current).clone();
        for meta in topics.topics.values_mut() {
            let config = TopicConfig::resolve(&defaults, &meta.overrides).map_err(|e| {
                WireError::new(
                    ErrorCode::InvalidConfig,
                    format!("topic {} would get an invalid config: {e}", meta.name),
                )
            })?;
            if config != meta.config {
                let mut m: TopicMeta = (**meta).clone();
                m.config = config;
                *meta = Arc::new(m);
            }
        }
        if validate_only {
            return Ok(());
        }
        let text = dynamic.to_text();
        let data_dir = self.config.data_dir.clone();
        glommio::executor()
            .spawn_blocking(move || store_dynamic(&data_dir, &text))
            .await
            .map_err(|e| {
                WireError::new(
                    ErrorCode::StorageError,
                    format!("cannot write the dynamic broker configs: {e}"),
                )
            })?;
        topics.dynamic = Arc::new(dynamic);
        self.meta_cell.publish(Arc::new(topics));
        for s in 0..self.shard.shard_count() {
            if let Err(e) = self
                .shard
                .invoke_on(s, move |shard| async move {
                    apply_all_configs(&Broker::of(&shard));
                })
                .await
            {
                tracing::warn!(shard = s, error = %e, "broker config change did not reach a shard");
            }
        }
        Ok(())
    }
}

/// Gives every open log of this shard its topic's current config.
fn apply_all_configs(broker: &Rc<Broker>) {
    let topics = broker.topics();
    for ((t, _), log) in broker.logs.borrow().iter() {
        if let Some(meta) = topics.get(t) {
            log.set_config(meta.config.log.clone());
        }
    }
}
