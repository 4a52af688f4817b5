//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs over the topic configs
//! of `topic_config` and the broker settings of `broker_settings` — the same keys,
//! validation and defaults as the native api and the CLI.
//!
//! A topic key's value comes from the topic's own setting (source TOPIC_CONFIG),
//! else this broker's dynamic config (DYNAMIC_BROKER_CONFIG), else the cluster-wide
//! dynamic default (DYNAMIC_DEFAULT_BROKER_CONFIG), else the `strata serve` config
//! file (`log.retention.ms = …` or `topic.retention.ms = …`; STATIC_BROKER_CONFIG),
//! else the built-in default (DEFAULT_CONFIG); broker-level sources are named with
//! Kafka's broker key (`log.retention.ms`). The BROKER resource lists every broker
//! setting with its source: the topic defaults (alterable: IncrementalAlterConfigs
//! and AlterConfigs set them durably, for this broker with its id as the resource
//! name or cluster-wide with an empty name) and the settings read at startup
//! (`listeners`, `num.partitions`, `group.*`, …; read-only).
//!
//! AlterConfigs (the legacy api) replaces a resource's whole set of overrides, as
//! Kafka's does; IncrementalAlterConfigs sets, deletes, appends to or subtracts from
//! single keys (append and subtract only for list keys: `cleanup.policy`).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_schema::ErrorCode;

use super::admin::{duplicates, outcome, refuse, str_bytes, Outcome};
use super::errors::KafkaCode;
use super::Ctx;
use crate::broker_settings::{DynamicBrokerConfigs, STATIC_KEYS};
use crate::config::BrokerConfig;
use crate::errors::WireError;
use crate::topic_config::{
    by_broker_key, key_spec, ConfigError, ConfigValueType, KeyEffect, TopicConfig, TopicConfigKey,
    REPLICATION_FACTOR, TOPIC_CONFIG_KEYS, TOPIC_CONFIG_KEY_SPECS,
};

/// Kafka's config resource types this broker knows.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Where a config value comes from (Kafka's `ConfigSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum ConfigSource {
    TopicConfig = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// Kafka's config type codes.
fn kafka_type(t: ConfigValueType) -> i8 {
    match t {
        ConfigValueType::Boolean => 1,
        ConfigValueType::String => 2,
        ConfigValueType::Int => 3,
        ConfigValueType::Short => 4,
        ConfigValueType::Long => 5,
        ConfigValueType::Double => 6,
        ConfigValueType::List => 7,
    }
}

/// Another place a value is or could be set (Kafka's config synonyms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Synonym {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

/// One config as DescribeConfigs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConfigView {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub read_only: bool,
    pub value_type: ConfigValueType,
    pub doc: &'static str,
    /// Most specific first, the value's own source included.
    pub synonyms: Vec<Synonym>,
}

/// The broker-level layers topic defaults come from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layers<'a> {
    /// The config file's topic defaults (`BrokerConfig::topic_defaults`).
    pub statics: &'a BTreeMap<String, String>,
    pub dynamic: &'a DynamicBrokerConfigs,
}

impl Layers<'_> {
    /// The topic defaults all layers give.
    fn defaults(&self) -> BTreeMap<String, String> {
        self.dynamic.topic_defaults(self.statics)
    }

    /// Where the broker-wide default of topic key `spec` is set, most specific
    /// first, ending with the built-in default.
    fn broker_synonyms(&self, spec: &TopicConfigKey, builtin: &str) -> Vec<Synonym> {
        let name = spec.broker_key.unwrap_or(spec.key);
        let mut out = Vec::new();
        if let Some(bk) = spec.broker_key {
            for (layer, source) in [
                (&self.dynamic.broker, ConfigSource::DynamicBroker),
                (
                    &self.dynamic.cluster_default,
                    ConfigSource::DynamicDefaultBroker,
                ),
            ] {
                if let Some(v) = layer.get(bk) {
                    out.push(Synonym {
                        name,
                        value: v.clone(),
                        source,
                    });
                }
            }
        }
        if let Some(v) = self.statics.get(spec.key) {
            out.push(Synonym {
                name,
                value: v.clone(),
                source: ConfigSource::StaticBroker,
            });
        }
        out.push(Synonym {
            name,
            value: builtin.to_owned(),
            source: ConfigSource::Default,
        });
        out
    }
}

/// The effective value of every key of `config`.
fn values(config: &TopicConfig) -> BTreeMap<&'static str, String> {
    config.entries().into_iter().collect()
}

/// A config's documentation: what it does, and for inert keys why it does nothing.
fn doc(spec: &TopicConfigKey) -> &'static str {
    match spec.effect {
        KeyEffect::Inert { why, .. } => why,
        KeyEffect::Honoured => spec.doc,
    }
}

/// Every topic config of a topic with `overrides` on a broker with `layers`.
pub(crate) fn resolved_views(
    layers: &Layers<'_>,
    overrides: &BTreeMap<String, String>,
) -> Result<Vec<ConfigView>, ConfigError> {
    let defaults = layers.defaults();
    let effective = values(&TopicConfig::resolve(&defaults, overrides)?);
    let builtin = values(&TopicConfig::default());
    Ok(TOPIC_CONFIG_KEY_SPECS
        .iter()
        .map(|spec| {
            let mut synonyms = Vec::new();
            if overrides.contains_key(spec.key) {
                synonyms.push(Synonym {
                    name: spec.key,
                    value: effective[spec.key].clone(),
                    source: ConfigSource::TopicConfig,
                });
            }
            synonyms.extend(layers.broker_synonyms(spec, &builtin[spec.key]));
            ConfigView {
                name: spec.key,
                value: effective[spec.key].clone(),
                source: synonyms[0].source,
                read_only: false,
                value_type: spec.value_type,
                doc: doc(spec),
                synonyms,
            }
        })
        .collect())
}

/// A broker setting read at startup: (type, value, built-in default, doc).
fn static_setting(
    config: &BrokerConfig,
    name: &str,
) -> (ConfigValueType, String, String, &'static str) {
    use ConfigValueType as T;
    let kafka_listen = config
        .kafka_listen
        .map_or_else(String::new, |a| format!("PLAINTEXT://{a}"));
    match name {
        "advertised.listeners" => (
            T::String,
            config
                .kafka_advertised
                .as_ref()
                .map_or_else(|| kafka_listen.clone(), |a| format!("PLAINTEXT://{a}")),
            kafka_listen,
            "The listener Kafka clients are told to connect to (Metadata, FindCoordinator).",
        ),
        "listeners" => (
            T::String,
            kafka_listen,
            format!("PLAINTEXT://{}", crate::config::KAFKA_LISTEN_ADDR_DEFAULT),
            "The Kafka listener (PLAINTEXT only).",
        ),
        "broker.id" | "node.id" => (
            T::Int,
            config.broker_id.to_string(),
            "0".to_owned(),
            "This broker's id.",
        ),
        "log.dirs" => (
            T::String,
            config.data_dir.display().to_string(),
            crate::config::DATA_DIR_DEFAULT.to_owned(),
            "The directory topic metadata and partition logs live in (one).",
        ),
        "num.partitions" => (
            T::Int,
            config.num_partitions.to_string(),
            crate::broker_settings::NUM_PARTITIONS_DEFAULT.to_string(),
            "Partitions of auto-created topics and of topics created with num_partitions -1.",
        ),
        "default.replication.factor" => (
            T::Short,
            config.default_replication_factor.to_string(),
            REPLICATION_FACTOR.to_string(),
            "Replicas of topics created without a replication factor (1 on a single node).",
        ),
        "offsets.topic.replication.factor" => (
            T::Short,
            config
                .offsets_topic_replication_factor
                .map_or_else(|| offsets_rf_default(config).to_string(), |rf| rf.to_string()),
            offsets_rf_default(config).to_string(),
            "Replicas of __consumer_offsets (1 on a single node; in a cluster 3, or fewer while fewer brokers are registered).",
        ),
        "metadata.log.max.record.bytes.between.snapshots" => (
            T::Long,
            config.metadata_snapshot_interval_bytes.to_string(),
            crate::cluster::metadata_snapshot::SNAPSHOT_INTERVAL_BYTES_DEFAULT.to_string(),
            "Bytes of the metadata log a controller replica applies before it writes a snapshot of the metadata image and compacts the log below its previous one.",
        ),
        "auto.leader.rebalance.enable" => (
            T::Boolean,
            config.auto_leader_rebalance.to_string(),
            "true".to_owned(),
            "Whether the controller moves leadership back to each partition's preferred replica when a broker leads too few of its preferred partitions (a cluster only).",
        ),
        "leader.imbalance.check.interval.seconds" => (
            T::Long,
            config.leader_imbalance_check_interval_s.to_string(),
            crate::controller::leader_balance::IMBALANCE_CHECK_INTERVAL_S_DEFAULT.to_string(),
            "How often the controller looks for brokers that lead too few of their preferred partitions.",
        ),
        "leader.imbalance.per.broker.percentage" => (
            T::Int,
            config.leader_imbalance_per_broker_percentage.to_string(),
            crate::controller::leader_balance::IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT.to_string(),
            "The share of a broker's preferred partitions it may not lead before the controller moves them back.",
        ),
        "auto.create.topics.enable" => (
            T::Boolean,
            config.auto_create_topics.to_string(),
            "true".to_owned(),
            "Whether a Metadata request for an unknown topic creates it.",
        ),
        "group.initial.rebalance.delay.ms" => (
            T::Int,
            config.group_initial_rebalance_delay_ms.to_string(),
            crate::broker_settings::GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT.to_string(),
            "How long an empty classic group's first rebalance waits for more members.",
        ),
        "group.min.session.timeout.ms" => (
            T::Int,
            config.group_min_session_timeout_ms.to_string(),
            crate::broker_settings::GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT.to_string(),
            "Shortest session timeout a group member may ask for (else INVALID_SESSION_TIMEOUT).",
        ),
        "group.max.session.timeout.ms" => (
            T::Int,
            config.group_max_session_timeout_ms.to_string(),
            crate::broker_settings::GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT.to_string(),
            "Longest session timeout a group member may ask for (else INVALID_SESSION_TIMEOUT).",
        ),
        "connections.max.idle.ms" => (
            T::Long,
            config.connections.max_idle_ms.to_string(),
            crate::config::CONNECTIONS_MAX_IDLE_MS_DEFAULT.to_string(),
            "Connections idle this long are closed.",
        ),
        "offsets.topic.num.partitions" => (
            T::Int,
            config.offsets_topic_num_partitions.to_string(),
            crate::broker_settings::OFFSETS_TOPIC_NUM_PARTITIONS_DEFAULT.to_string(),
            "Partitions __consumer_offsets is created with (an existing one keeps its count).",
        ),
        "log.retention.hours" | "log.retention.minutes" | "log.roll.hours" => (
            T::Int,
            config
                .static_kafka_keys
                .get(name)
                .cloned()
                .unwrap_or_else(|| {
                    if name == "log.retention.minutes" {
                        String::new()
                    } else {
                        "168".to_owned()
                    }
                }),
            if name == "log.retention.minutes" {
                String::new()
            } else {
                "168".to_owned()
            },
            "Read at startup into log.retention.ms / log.roll.ms, which win when both are set.",
        ),
        _ => (T::String, String::new(), String::new(), ""),
    }
}

/// The BROKER resource: every broker setting with its value and source. With
/// `cluster_default` (an empty resource name), only the cluster-wide dynamic
/// configs, as Kafka describes its default broker resource.
pub(crate) fn broker_views(
    config: &BrokerConfig,
    dynamic: &DynamicBrokerConfigs,
    cluster_default: bool,
) -> Vec<ConfigView> {
    let layers = Layers {
        statics: &config.topic_defaults,
        dynamic,
    };
    let builtin = values(&TopicConfig::default());
    let mut out = Vec::new();
    if cluster_default {
        for (k, v) in &dynamic.cluster_default {
            let Some(spec) = by_broker_key(k) else {
                continue;
            };
            let name = spec.broker_key.unwrap_or(spec.key);
            let source = ConfigSource::DynamicDefaultBroker;
            out.push(ConfigView {
                name,
                value: v.clone(),
                source,
                read_only: false,
                value_type: spec.value_type,
                doc: doc(spec),
                synonyms: vec![Synonym {
                    name,
                    value: v.clone(),
                    source,
                }],
            });
        }
        return out;
    }
    for name in STATIC_KEYS {
        let (value_type, value, default, doc_text) = static_setting(config, name);
        if name == "log.retention.minutes" && value.is_empty() {
            // Kafka's default is null; left out rather than shown empty.
            continue;
        }
        let source = if config.static_kafka_keys.contains_key(name) || value != default {
            ConfigSource::StaticBroker
        } else {
            ConfigSource::Default
        };
        let mut synonyms = vec![Synonym {
            name,
            value: value.clone(),
            source,
        }];
        if source != ConfigSource::Default {
            synonyms.push(Synonym {
                name,
                value: default,
                source: ConfigSource::Default,
            });
        }
        out.push(ConfigView {
            name,
            value,
            source,
            read_only: true,
            value_type,
            doc: doc_text,
            synonyms,
        });
    }
    for spec in &TOPIC_CONFIG_KEY_SPECS {
        let Some(name) = spec.broker_key else {
            continue;
        };
        if out.iter().any(|v| v.name == name) {
            continue;
        }
        let synonyms = layers.broker_synonyms(spec, &builtin[spec.key]);
        out.push(ConfigView {
            name,
            value: synonyms[0].value.clone(),
            source: synonyms[0].source,
            read_only: false,
            value_type: spec.value_type,
            doc: doc(spec),
            synonyms,
        });
    }
    out
}

// ---- storage.min.free.bytes (the free-space floor, see `disk_space`) ----------

/// The broker's free-space floor, read-only (set when the broker starts).
fn storage_min_free_view(configured: Option<u64>) -> ConfigView {
    let (value, source) = match configured {
        Some(b) => (b.to_string(), ConfigSource::StaticBroker),
        None => (
            crate::disk_space::MIN_FREE_BYTES_DEFAULT_MAX.to_string(),
            ConfigSource::Default,
        ),
    };
    ConfigView {
        name: "storage.min.free.bytes",
        value: value.clone(),
        source,
        read_only: true,
        value_type: ConfigValueType::Long,
        doc: "Produces are refused with KAFKA_STORAGE_ERROR while the data directory's disk \
              has less free space than this (default 64 MiB, or 5% of a smaller disk; 0 = off).",
        synonyms: vec![Synonym {
            name: "storage.min.free.bytes",
            value,
            source,
        }],
    }
}

/// Which broker resource `name` means: this broker (`Ok(false)`), the cluster-wide
/// default (`Ok(true)`, an empty name), or an error.
fn check_broker_name(broker_id: i32, name: &str) -> Result<bool, Outcome> {
    if name.is_empty() {
        return Ok(true);
    }
    if name.parse::<i32>() == Ok(broker_id) {
        return Ok(false);
    }
    Err(refuse(
        KafkaCode::InvalidRequest,
        format!("this is broker {broker_id}; broker resource {name:?} is not it (give {broker_id}, or an empty name for the cluster-wide defaults)"),
    ))
}

fn unsupported_resource(resource_type: i8) -> Outcome {
    refuse(
        KafkaCode::InvalidRequest,
        format!(
            "config resource type {resource_type} is not supported; this broker has topic ({RESOURCE_TOPIC}) and broker ({RESOURCE_BROKER}) configs"
        ),
    )
}

// ---- DescribeConfigs ----------------------------------------------------------

/// The configs of one resource at `version`: the type and documentation only from
/// v3, the versions that have them.
fn describe_result(
    version: i16,
    views: Vec<ConfigView>,
    keys: Option<&[StrBytes]>,
    synonyms: bool,
    documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    views
        .into_iter()
        .filter(|v| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == v.name)))
        .map(|v| {
            let mut r = DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(v.name))
                .with_value(Some(str_bytes(v.value)))
                .with_read_only(v.read_only)
                .with_config_source(v.source as i8)
                .with_is_sensitive(false);
            if version >= 3 {
                r.config_type = kafka_type(v.value_type);
                r.documentation = documentation.then(|| StrBytes::from_static_str(v.doc));
            }
            if synonyms {
                r.synonyms = v
                    .synonyms
                    .into_iter()
                    .map(|s| {
                        DescribeConfigsSynonym::default()
                            .with_name(StrBytes::from_static_str(s.name))
                            .with_value(Some(str_bytes(s.value)))
                            .with_source(s.source as i8)
                    })
                    .collect();
            }
            r
        })
        .collect()
}

pub(crate) async fn describe_configs(
    ctx: &Ctx,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = &ctx.broker;
    let topics = broker.topics();
    let layers = Layers {
        statics: &broker.config.topic_defaults,
        dynamic: &topics.dynamic,
    };
    let mut out = DescribeConfigsResponse::default();
    for res in &req.resources {
        let name = res.resource_name.as_str();
        let views = match res.resource_type {
            RESOURCE_TOPIC => match topics.get(name) {
                Some(meta) => resolved_views(&layers, &meta.overrides)
                    .map_err(|e| refuse(KafkaCode::InvalidConfig, format!("topic {name}: {e}"))),
                None => Err(refuse(
                    KafkaCode::UnknownTopicOrPartition,
                    format!("topic {name:?} does not exist"),
                )),
            },
            RESOURCE_BROKER => {
                check_broker_name(broker.config.broker_id, name).map(|cluster_default| {
                    let mut views = broker_views(&broker.config, &topics.dynamic, cluster_default);
                    if !cluster_default {
                        views.push(storage_min_free_view(broker.config.storage_min_free_bytes));
                    }
                    views
                })
            }
            t => Err(unsupported_resource(t)),
        };
        out.results.push(describe_configs_result(
            ctx.version,
            res.resource_type,
            res.resource_name.clone(),
            views,
            res.configuration_keys.as_deref(),
            req.include_synonyms,
            req.include_documentation,
        ));
    }
    out
}

/// One resource's DescribeConfigs answer at `version`: its configs, or why not.
fn describe_configs_result(
    version: i16,
    resource_type: i8,
    resource_name: StrBytes,
    views: Result<Vec<ConfigView>, Outcome>,
    keys: Option<&[StrBytes]>,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResult {
    let mut r = DescribeConfigsResult::default()
        .with_resource_type(resource_type)
        .with_resource_name(resource_name);
    match views {
        Ok(views) => {
            r.error_message = None;
            r.configs = describe_result(version, views, keys, synonyms, documentation);
        }
        Err((code, message)) => {
            r.error_code = code;
            r.error_message = message.map(str_bytes);
        }
    }
    r
}

// ---- AlterConfigs (legacy: replace every override) ----------------------------

/// The changes that make `given` a topic's whole set of overrides: every known key
/// not given is reset.
pub(crate) fn replace_all(
    given: &[(String, Option<String>)],
) -> Result<Vec<(String, Option<String>)>, WireError> {
    let mut changes = replace_given(given)?;
    let given: BTreeSet<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
    for k in TOPIC_CONFIG_KEYS {
        if !given.contains(k) {
            changes.push((k.to_owned(), None));
        }
    }
    Ok(changes)
}

/// The given configs of an AlterConfigs resource as changes: each once, with a value.
fn replace_given(
    given: &[(String, Option<String>)],
) -> Result<Vec<(String, Option<String>)>, WireError> {
    if let Some(k) = duplicates(given.iter().map(|(k, _)| k.as_str()))
        .into_iter()
        .next()
    {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("config {k} is given more than once"),
        ));
    }
    let mut changes = Vec::with_capacity(given.len() + TOPIC_CONFIG_KEYS.len());
    for (k, v) in given {
        let Some(v) = v else {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!("config {k} has no value; AlterConfigs replaces all of a resource's configs, so leave {k} out to reset it"),
            ));
        };
        changes.push((k.clone(), Some(v.clone())));
    }
    Ok(changes)
}

/// Applies `changes(current dynamic configs of the resource)` to the broker
/// resource `name` on the metadata shard.
async fn alter_broker<F>(ctx: &Ctx, name: &str, validate_only: bool, changes: F) -> Outcome
where
    F: FnOnce(
            &BTreeMap<String, String>,
            &TopicConfig,
        ) -> Result<Vec<(String, Option<String>)>, WireError>
        + Send
        + 'static,
{
    let cluster_default = match check_broker_name(ctx.broker.config.broker_id, name) {
        Ok(d) => d,
        Err(o) => return o,
    };
    outcome(
        ctx.broker
            .on_metadata_shard(move |b| async move {
                let topics = b.topics();
                let current = topics.dynamic.layer(cluster_default);
                let defaults = TopicConfig::resolve(&b.topic_defaults(), &BTreeMap::new())
                    .map_err(|e| WireError::new(ErrorCode::InvalidConfig, e.to_string()))?;
                let changes = changes(current, &defaults)?;
                b.alter_broker_configs(cluster_default, changes, validate_only)
                    .await
            })
            .await,
    )
}

/// The changes that make `given` a broker resource's whole set of dynamic configs.
fn replace_all_broker(
    given: &[(String, Option<String>)],
    current: &BTreeMap<String, String>,
) -> Result<Vec<(String, Option<String>)>, WireError> {
    let mut changes = replace_given(given)?;
    for k in current.keys() {
        if !given.iter().any(|(g, _)| g == k) {
            changes.push((k.clone(), None));
        }
    }
    Ok(changes)
}

/// IncrementalAlterConfigs on broker keys: list operations work on the broker's
/// current topic default (`log.cleanup.policy` appends to `cleanup.policy`'s).
fn broker_incremental_changes(
    ops: &[(String, i8, Option<String>)],
    defaults: &TopicConfig,
) -> Result<Vec<(String, Option<String>)>, WireError> {
    let as_topic: Vec<(String, i8, Option<String>)> = ops
        .iter()
        .map(|(k, code, v)| {
            let key = by_broker_key(k).map_or_else(|| k.clone(), |s| s.key.to_owned());
            (key, *code, v.clone())
        })
        .collect();
    let changes = incremental_changes(&as_topic, defaults)?;
    // Same order and length as `ops`: give each change its broker key back.
    Ok(ops
        .iter()
        .zip(changes)
        .map(|((k, _, _), (_, v))| (k.clone(), v))
        .collect())
}

/// Applies `changes(current config)` to topic `name` on the metadata shard.
async fn alter_topic<F>(ctx: &Ctx, name: String, validate_only: bool, changes: F) -> Outcome
where
    F: FnOnce(&TopicConfig) -> Result<Vec<(String, Option<String>)>, WireError> + Send + 'static,
{
    outcome(
        ctx.broker
            .on_metadata_shard(move |b| async move {
                let meta = b.topic_meta(&name)?;
                let changes = changes(&meta.config)?;
                b.alter_configs(name, changes, validate_only).await
            })
            .await,
    )
}

pub(crate) async fn alter_configs(ctx: &Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut out = AlterConfigsResponse::default();
    for res in &req.resources {
        let name = res.resource_name.as_str().to_owned();
        let (code, message) = match res.resource_type {
            RESOURCE_TOPIC => {
                let given: Vec<(String, Option<String>)> = res
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.as_str().to_owned(),
                            c.value.as_ref().map(|v| v.as_str().to_owned()),
                        )
                    })
                    .collect();
                alter_topic(ctx, name, req.validate_only, move |_| replace_all(&given)).await
            }
            RESOURCE_BROKER => {
                let given: Vec<(String, Option<String>)> = res
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.as_str().to_owned(),
                            c.value.as_ref().map(|v| v.as_str().to_owned()),
                        )
                    })
                    .collect();
                alter_broker(ctx, &name, req.validate_only, move |current, _| {
                    replace_all_broker(&given, current)
                })
                .await
            }
            t => unsupported_resource(t),
        };
        out.responses.push(alter_result(
            res.resource_type,
            res.resource_name.clone(),
            (code, message),
        ));
    }
    out
}

/// One resource's AlterConfigs answer (every field is in every version).
fn alter_result(
    resource_type: i8,
    resource_name: StrBytes,
    (code, message): Outcome,
) -> alter_configs_response::AlterConfigsResourceResponse {
    let mut r = alter_configs_response::AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(resource_name)
        .with_error_code(code);
    r.error_message = message.map(str_bytes);
    r
}

// ---- IncrementalAlterConfigs --------------------------------------------------

/// One IncrementalAlterConfigs operation (Kafka's `AlterConfigOp.OpType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    pub(crate) fn from_code(code: i8) -> Option<ConfigOp> {
        match code {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }
}

/// The set/reset changes that carry out `ops` (key, operation code, value) on a
/// topic whose current configuration is `current`.
pub(crate) fn incremental_changes(
    ops: &[(String, i8, Option<String>)],
    current: &TopicConfig,
) -> Result<Vec<(String, Option<String>)>, WireError> {
    let invalid_request = |m: String| WireError::new(ErrorCode::InvalidRequest, m);
    if let Some(k) = duplicates(ops.iter().map(|(k, _, _)| k.as_str()))
        .into_iter()
        .next()
    {
        return Err(invalid_request(format!(
            "config {k} is given more than once"
        )));
    }
    let effective = values(current);
    let mut changes = Vec::with_capacity(ops.len());
    for (key, code, value) in ops {
        let op = ConfigOp::from_code(*code).ok_or_else(|| {
            invalid_request(format!(
                "config {key}: unknown operation {code} (0 set, 1 delete, 2 append, 3 subtract)"
            ))
        })?;
        let change = match (op, value) {
            (ConfigOp::Delete, _) => None,
            (_, None) => {
                return Err(invalid_request(format!(
                    "config {key}: {op:?} needs a value"
                )))
            }
            (ConfigOp::Set, Some(v)) => Some(v.clone()),
            (ConfigOp::Append | ConfigOp::Subtract, Some(v)) => {
                let spec = key_spec(key).ok_or_else(|| {
                    WireError::new(
                        ErrorCode::InvalidConfig,
                        ConfigError::UnknownKey { key: key.clone() }.to_string(),
                    )
                })?;
                if spec.value_type != ConfigValueType::List {
                    return Err(WireError::new(
                        ErrorCode::InvalidConfig,
                        format!("config {key} is not a list: {op:?} works only on list configs (cleanup.policy); use set"),
                    ));
                }
                let mut list: Vec<String> = split_list(&effective[spec.key]);
                let items = split_list(v);
                if op == ConfigOp::Append {
                    for item in items {
                        if !list.contains(&item) {
                            list.push(item);
                        }
                    }
                } else {
                    list.retain(|i| !items.contains(i));
                }
                Some(list.join(","))
            }
        };
        changes.push((key.clone(), change));
    }
    Ok(changes)
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) async fn incremental_alter_configs(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut out = IncrementalAlterConfigsResponse::default();
    for res in &req.resources {
        let name = res.resource_name.as_str().to_owned();
        let (code, message) = match res.resource_type {
            RESOURCE_TOPIC => {
                let ops: Vec<(String, i8, Option<String>)> = res
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.as_str().to_owned(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.as_str().to_owned()),
                        )
                    })
                    .collect();
                alter_topic(ctx, name, req.validate_only, move |current| {
                    incremental_changes(&ops, current)
                })
                .await
            }
            RESOURCE_BROKER => {
                let ops: Vec<(String, i8, Option<String>)> = res
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.as_str().to_owned(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.as_str().to_owned()),
                        )
                    })
                    .collect();
                alter_broker(ctx, &name, req.validate_only, move |_, defaults| {
                    broker_incremental_changes(&ops, defaults)
                })
                .await
            }
            t => unsupported_resource(t),
        };
        out.responses.push(incremental_alter_result(
            res.resource_type,
            res.resource_name.clone(),
            (code, message),
        ));
    }
    out
}

/// One resource's IncrementalAlterConfigs answer (every field is in every version).
fn incremental_alter_result(
    resource_type: i8,
    resource_name: StrBytes,
    (code, message): Outcome,
) -> incremental_alter_configs_response::AlterConfigsResourceResponse {
    let mut r = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(resource_name)
        .with_error_code(code);
    r.error_message = message.map(str_bytes);
    r
}

/// `offsets.topic.replication.factor` when unset: Kafka's 3 in a cluster (capped by the
/// registered brokers when the topic is made), 1 on a single node.
fn offsets_rf_default(config: &BrokerConfig) -> u16 {
    if config.cluster.is_some() {
        3
    } else {
        REPLICATION_FACTOR as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::admin::{versions, OK};
    use crate::kafka::codec::assert_encodes;
    use kafka_protocol::messages::ApiKey;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    static NO_DYNAMIC: DynamicBrokerConfigs = DynamicBrokerConfigs {
        broker: BTreeMap::new(),
        cluster_default: BTreeMap::new(),
    };

    fn layers(statics: &BTreeMap<String, String>) -> Layers<'_> {
        Layers {
            statics,
            dynamic: &NO_DYNAMIC,
        }
    }

    #[test]
    fn sources_follow_topic_then_broker_then_builtin() {
        let defaults = map(&[("retention.ms", "1000"), ("segment.bytes", "1048576")]);
        let overrides = map(&[("retention.ms", "5000"), ("cleanup.policy", "compact")]);
        let views = resolved_views(&layers(&defaults), &overrides).unwrap();
        assert_eq!(views.len(), TOPIC_CONFIG_KEYS.len());
        let by: BTreeMap<_, _> = views.iter().map(|v| (v.name, v)).collect();
        let r = by["retention.ms"];
        assert_eq!(
            (r.value.as_str(), r.source),
            ("5000", ConfigSource::TopicConfig)
        );
        assert_eq!(
            r.synonyms,
            vec![
                Synonym {
                    name: "retention.ms",
                    value: "5000".into(),
                    source: ConfigSource::TopicConfig
                },
                Synonym {
                    name: "log.retention.ms",
                    value: "1000".into(),
                    source: ConfigSource::StaticBroker
                },
                Synonym {
                    name: "log.retention.ms",
                    value: "604800000".into(),
                    source: ConfigSource::Default
                },
            ]
        );
        let s = by["segment.bytes"];
        assert_eq!(
            (s.value.as_str(), s.source),
            ("1048576", ConfigSource::StaticBroker)
        );
        let f = by["flush.ms"];
        assert_eq!((f.value.as_str(), f.source), ("0", ConfigSource::Default));
        assert_eq!(by["cleanup.policy"].value_type, ConfigValueType::List);
        assert!(views.iter().all(|v| !v.read_only));
    }

    #[test]
    fn broker_resource_shows_defaults_under_broker_keys() {
        let mut config = BrokerConfig {
            broker_id: 7,
            topic_defaults: map(&[("retention.ms", "1000")]),
            ..BrokerConfig::default()
        };
        crate::broker_settings::apply_static(&mut config, "num.partitions", "3").unwrap();
        let views = broker_views(&config, &NO_DYNAMIC, false);
        let by: BTreeMap<_, _> = views.iter().map(|v| (v.name, v)).collect();
        assert_eq!(by["broker.id"].value, "7");
        assert_eq!(
            (
                by["num.partitions"].value.as_str(),
                by["num.partitions"].source
            ),
            ("3", ConfigSource::StaticBroker)
        );
        assert_eq!(
            by["group.min.session.timeout.ms"].source,
            ConfigSource::Default
        );
        assert_eq!(by["group.min.session.timeout.ms"].value, "6000");
        assert!(by["num.partitions"].read_only);
        for key in [
            "advertised.listeners",
            "listeners",
            "auto.create.topics.enable",
            "group.initial.rebalance.delay.ms",
            "group.max.session.timeout.ms",
            "connections.max.idle.ms",
            "offsets.topic.num.partitions",
            "default.replication.factor",
            "log.retention.bytes",
            "log.segment.bytes",
            "log.cleanup.policy",
            "message.max.bytes",
            "log.flush.interval.ms",
            "compression.type",
            "log.retention.hours",
        ] {
            assert!(by.contains_key(key), "{key} is described");
        }
        let r = by["log.retention.ms"];
        assert_eq!(
            (r.value.as_str(), r.source, r.read_only),
            ("1000", ConfigSource::StaticBroker, false)
        );
        assert_eq!(by["log.roll.ms"].source, ConfigSource::Default);
        // Dynamic layers: this broker's over the cluster-wide over the file.
        let dynamic = DynamicBrokerConfigs {
            broker: map(&[("log.retention.ms", "3000")]),
            cluster_default: map(&[("log.retention.ms", "2000"), ("log.roll.ms", "5000")]),
        };
        let views = broker_views(&config, &dynamic, false);
        let by: BTreeMap<_, _> = views.iter().map(|v| (v.name, v)).collect();
        let r = by["log.retention.ms"];
        assert_eq!(
            (r.value.as_str(), r.source),
            ("3000", ConfigSource::DynamicBroker)
        );
        let sources: Vec<ConfigSource> = r.synonyms.iter().map(|s| s.source).collect();
        assert_eq!(
            sources,
            [
                ConfigSource::DynamicBroker,
                ConfigSource::DynamicDefaultBroker,
                ConfigSource::StaticBroker,
                ConfigSource::Default
            ]
        );
        assert_eq!(by["log.roll.ms"].source, ConfigSource::DynamicDefaultBroker);
        let defaults_only = broker_views(&config, &dynamic, true);
        assert_eq!(defaults_only.len(), 2);
        assert!(defaults_only
            .iter()
            .all(|v| v.source == ConfigSource::DynamicDefaultBroker));
        assert_eq!(check_broker_name(7, "7"), Ok(false));
        assert_eq!(check_broker_name(7, ""), Ok(true));
        assert!(check_broker_name(7, "8").is_err());
    }

    #[test]
    fn broker_incremental_ops_use_broker_keys() {
        let defaults = TopicConfig::default();
        let changes = broker_incremental_changes(
            &[
                op("log.retention.ms", 0, Some("10")),
                op("log.cleanup.policy", 2, Some("compact")),
                op("log.roll.ms", 1, None),
            ],
            &defaults,
        )
        .unwrap();
        assert_eq!(
            changes,
            vec![
                ("log.retention.ms".into(), Some("10".into())),
                ("log.cleanup.policy".into(), Some("delete,compact".into())),
                ("log.roll.ms".into(), None),
            ]
        );
        let replaced = replace_all_broker(
            &[("log.retention.ms".into(), Some("5".into()))],
            &map(&[("log.roll.ms", "1"), ("log.retention.ms", "2")]),
        )
        .unwrap();
        assert_eq!(
            replaced,
            vec![
                ("log.retention.ms".into(), Some("5".into())),
                ("log.roll.ms".into(), None)
            ]
        );
    }

    #[test]
    fn describe_filters_keys_and_adds_synonyms_on_request() {
        let views = resolved_views(&layers(&BTreeMap::new()), &BTreeMap::new()).unwrap();
        let keys = [
            StrBytes::from_static_str("retention.ms"),
            StrBytes::from_static_str("nope"),
        ];
        let out = describe_result(4, views.clone(), Some(&keys), false, false);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name.as_str(), "retention.ms");
        assert!(out[0].synonyms.is_empty() && out[0].documentation.is_none());
        assert_eq!(out[0].config_type, 5);
        let out = describe_result(4, views, None, true, true);
        assert_eq!(out.len(), TOPIC_CONFIG_KEYS.len());
        assert_eq!(out[0].synonyms.len(), 1);
        assert!(out[0].documentation.is_some());
    }

    #[test]
    fn replace_all_resets_every_key_not_given() {
        let changes = replace_all(&[("retention.ms".into(), Some("5".into()))]).unwrap();
        assert_eq!(changes.len(), TOPIC_CONFIG_KEYS.len());
        assert!(changes.contains(&("retention.ms".into(), Some("5".into()))));
        assert!(changes.contains(&("cleanup.policy".into(), None)));
        assert!(replace_all(&[("retention.ms".into(), None)]).is_err());
        let twice = [
            ("retention.ms".into(), Some("5".into())),
            ("retention.ms".into(), Some("6".into())),
        ];
        assert_eq!(
            replace_all(&twice).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn responses_encode_at_every_served_version() {
        let defaults = map(&[("retention.ms", "1000")]);
        let overrides = map(&[("cleanup.policy", "compact"), ("segment.ms", "60000")]);
        let name = |n: &'static str| StrBytes::from_static_str(n);
        let refused = || refuse(KafkaCode::UnknownTopicOrPartition, "no such topic");
        for version in versions(ApiKey::DescribeConfigs) {
            for (synonyms, documentation) in [(false, false), (true, true)] {
                let keys = [name("retention.ms"), name("cleanup.policy")];
                let out = DescribeConfigsResponse::default().with_results(vec![
                    describe_configs_result(
                        version,
                        RESOURCE_TOPIC,
                        name("t"),
                        resolved_views(&layers(&defaults), &overrides).map_err(|_| refused()),
                        None,
                        synonyms,
                        documentation,
                    ),
                    describe_configs_result(
                        version,
                        RESOURCE_TOPIC,
                        name("t"),
                        resolved_views(&layers(&defaults), &overrides).map_err(|_| refused()),
                        Some(&keys),
                        synonyms,
                        documentation,
                    ),
                    describe_configs_result(
                        version,
                        RESOURCE_BROKER,
                        name("7"),
                        Ok(broker_views(
                            &BrokerConfig {
                                topic_defaults: defaults.clone(),
                                ..BrokerConfig::default()
                            },
                            &NO_DYNAMIC,
                            false,
                        )),
                        None,
                        synonyms,
                        documentation,
                    ),
                    describe_configs_result(
                        version,
                        RESOURCE_TOPIC,
                        name("gone"),
                        Err(refused()),
                        None,
                        synonyms,
                        documentation,
                    ),
                ]);
                assert_encodes(&out, version);
            }
        }
        for version in versions(ApiKey::AlterConfigs) {
            let out = AlterConfigsResponse::default().with_responses(vec![
                alter_result(RESOURCE_TOPIC, name("t"), OK),
                alter_result(
                    RESOURCE_BROKER,
                    name("7"),
                    refuse(KafkaCode::InvalidRequest, "read-only"),
                ),
                alter_result(9, name("x"), unsupported_resource(9)),
            ]);
            assert_encodes(&out, version);
        }
        for version in versions(ApiKey::IncrementalAlterConfigs) {
            let out = IncrementalAlterConfigsResponse::default().with_responses(vec![
                incremental_alter_result(RESOURCE_TOPIC, name("t"), OK),
                incremental_alter_result(
                    RESOURCE_BROKER,
                    name("7"),
                    refuse(KafkaCode::InvalidRequest, "read-only"),
                ),
                incremental_alter_result(9, name("x"), unsupported_resource(9)),
            ]);
            assert_encodes(&out, version);
        }
    }

    fn op(k: &str, code: i8, v: Option<&str>) -> (String, i8, Option<String>) {
        (k.to_owned(), code, v.map(str::to_owned))
    }

    #[test]
    fn incremental_set_delete_append_subtract() {
        let current = TopicConfig::default();
        let changes = incremental_changes(
            &[
                op("retention.ms", 0, Some("10")),
                op("segment.ms", 1, None),
                op("cleanup.policy", 2, Some("compact")),
            ],
            &current,
        )
        .unwrap();
        assert_eq!(
            changes,
            vec![
                ("retention.ms".into(), Some("10".into())),
                ("segment.ms".into(), None),
                ("cleanup.policy".into(), Some("delete,compact".into())),
            ]
        );
        let mut both = TopicConfig::default();
        both.apply("cleanup.policy", "compact,delete").unwrap();
        let changes =
            incremental_changes(&[op("cleanup.policy", 3, Some("delete"))], &both).unwrap();
        assert_eq!(
            changes,
            vec![("cleanup.policy".into(), Some("compact".into()))]
        );
        // Appending what is there already changes nothing.
        let changes =
            incremental_changes(&[op("cleanup.policy", 2, Some("delete"))], &current).unwrap();
        assert_eq!(
            changes,
            vec![("cleanup.policy".into(), Some("delete".into()))]
        );
    }

    #[test]
    fn incremental_refusals_have_the_right_codes() {
        let c = TopicConfig::default();
        let code =
            |ops: &[(String, i8, Option<String>)]| incremental_changes(ops, &c).unwrap_err().code;
        assert_eq!(
            code(&[op("retention.ms", 2, Some("5"))]),
            ErrorCode::InvalidConfig
        );
        assert_eq!(code(&[op("nope", 3, Some("5"))]), ErrorCode::InvalidConfig);
        assert_eq!(
            code(&[op("retention.ms", 9, Some("5"))]),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(&[op("retention.ms", 0, None)]),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(&[
                op("retention.ms", 0, Some("1")),
                op("retention.ms", 1, None)
            ]),
            ErrorCode::InvalidRequest
        );
    }
}
