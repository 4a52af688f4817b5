//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs over the topic configs
//! of `topic_config` — the same keys, validation and defaults as the native api and
//! the CLI.
//!
//! A topic key's value comes from the topic's own setting (source TOPIC_CONFIG),
//! else the broker's topic default (`topic.KEY` in the `strata serve` config file;
//! source STATIC_BROKER_CONFIG, named with Kafka's broker key such as
//! `log.retention.ms`), else the built-in default (DEFAULT_CONFIG). The broker
//! resource shows the broker's topic defaults under their broker keys, read-only:
//! they are set when the broker starts.
//!
//! AlterConfigs (the legacy api) replaces a topic's whole set of overrides, as
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

use super::admin::{
    duplicates, outcome, refuse, str_bytes, Outcome, DEFAULT_PARTITIONS, REPLICATION_FACTOR,
};
use super::errors::KafkaCode;
use super::Ctx;
use crate::errors::WireError;
use crate::topic_config::{
    key_spec, ConfigError, ConfigValueType, TopicConfig, TOPIC_CONFIG_KEYS, TOPIC_CONFIG_KEY_SPECS,
};

/// Kafka's config resource types this broker knows.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Where a config value comes from (Kafka's `ConfigSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum ConfigSource {
    TopicConfig = 1,
    StaticBroker = 4,
    Default = 5,
}

/// Kafka's config type codes.
fn kafka_type(t: ConfigValueType) -> i8 {
    match t {
        ConfigValueType::String => 2,
        ConfigValueType::Int => 3,
        ConfigValueType::Long => 5,
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

/// The effective value of every key of `config`.
fn values(config: &TopicConfig) -> BTreeMap<&'static str, String> {
    config.entries().into_iter().collect()
}

/// Every topic config of a topic with `overrides` on a broker with `defaults`.
pub(crate) fn resolved_views(
    defaults: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
) -> Result<Vec<ConfigView>, ConfigError> {
    let effective = values(&TopicConfig::resolve(defaults, overrides)?);
    let broker = values(&TopicConfig::resolve(defaults, &BTreeMap::new())?);
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
            if defaults.contains_key(spec.key) {
                synonyms.push(Synonym {
                    name: spec.broker_key,
                    value: broker[spec.key].clone(),
                    source: ConfigSource::StaticBroker,
                });
            }
            synonyms.push(Synonym {
                name: spec.broker_key,
                value: builtin[spec.key].clone(),
                source: ConfigSource::Default,
            });
            ConfigView {
                name: spec.key,
                value: effective[spec.key].clone(),
                source: synonyms[0].source,
                read_only: false,
                value_type: spec.value_type,
                doc: spec.doc,
                synonyms,
            }
        })
        .collect())
}

/// The broker resource: its topic defaults under Kafka's broker keys, and its fixed
/// settings. All read-only.
pub(crate) fn broker_views(broker_id: i32, defaults: &BTreeMap<String, String>) -> Vec<ConfigView> {
    let builtin = values(&TopicConfig::default());
    let broker = TopicConfig::resolve(defaults, &BTreeMap::new())
        .map_or_else(|_| builtin.clone(), |c| values(&c));
    let fixed =
        |name: &'static str, value: String, source: ConfigSource, doc: &'static str| ConfigView {
            name,
            value: value.clone(),
            source,
            read_only: true,
            value_type: ConfigValueType::Int,
            doc,
            synonyms: vec![Synonym {
                name,
                value,
                source,
            }],
        };
    let mut out = vec![
        fixed(
            "broker.id",
            broker_id.to_string(),
            ConfigSource::StaticBroker,
            "This broker's id.",
        ),
        fixed(
            "num.partitions",
            DEFAULT_PARTITIONS.to_string(),
            ConfigSource::Default,
            "Partitions of a topic created without a partition count.",
        ),
        fixed(
            "default.replication.factor",
            REPLICATION_FACTOR.to_string(),
            ConfigSource::Default,
            "Replicas of every partition (this broker is a single node).",
        ),
    ];
    for spec in &TOPIC_CONFIG_KEY_SPECS {
        let mut synonyms = Vec::new();
        if defaults.contains_key(spec.key) {
            synonyms.push(Synonym {
                name: spec.broker_key,
                value: broker[spec.key].clone(),
                source: ConfigSource::StaticBroker,
            });
        }
        synonyms.push(Synonym {
            name: spec.broker_key,
            value: builtin[spec.key].clone(),
            source: ConfigSource::Default,
        });
        out.push(ConfigView {
            name: spec.broker_key,
            value: broker[spec.key].clone(),
            source: synonyms[0].source,
            read_only: true,
            value_type: spec.value_type,
            doc: spec.doc,
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

/// Which broker names `name` means: this one (`Ok`), or an error.
fn check_broker_name(broker_id: i32, name: &str) -> Result<(), Outcome> {
    if name.is_empty() || name.parse::<i32>() == Ok(broker_id) {
        return Ok(());
    }
    Err(refuse(
        KafkaCode::InvalidRequest,
        format!("this is broker {broker_id}; broker resource {name:?} is not it (give {broker_id} or an empty name)"),
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
    let defaults = &broker.config.topic_defaults;
    let mut out = DescribeConfigsResponse::default();
    for res in &req.resources {
        let name = res.resource_name.as_str();
        let views = match res.resource_type {
            RESOURCE_TOPIC => match broker.topics().get(name) {
                Some(meta) => resolved_views(defaults, &meta.overrides)
                    .map_err(|e| refuse(KafkaCode::InvalidConfig, format!("topic {name}: {e}"))),
                None => Err(refuse(
                    KafkaCode::UnknownTopicOrPartition,
                    format!("topic {name:?} does not exist"),
                )),
            },
            RESOURCE_BROKER => check_broker_name(broker.config.broker_id, name).map(|()| {
                let mut views = broker_views(broker.config.broker_id, defaults);
                views.push(storage_min_free_view(broker.config.storage_min_free_bytes));
                views
            }),
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
                format!("config {k} has no value; AlterConfigs replaces all of a topic's configs, so leave {k} out to reset it"),
            ));
        };
        changes.push((k.clone(), Some(v.clone())));
    }
    let given: BTreeSet<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
    for k in TOPIC_CONFIG_KEYS {
        if !given.contains(k) {
            changes.push((k.to_owned(), None));
        }
    }
    Ok(changes)
}

fn broker_read_only(broker_id: i32, name: &str) -> Outcome {
    check_broker_name(broker_id, name).err().unwrap_or_else(|| {
        refuse(
            KafkaCode::InvalidRequest,
            "broker configs are read-only while the broker runs; set topic defaults with `topic.KEY = VALUE` lines in the `strata serve --config` file",
        )
    })
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
            RESOURCE_BROKER => broker_read_only(ctx.broker.config.broker_id, &name),
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
            RESOURCE_BROKER => broker_read_only(ctx.broker.config.broker_id, &name),
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

    #[test]
    fn sources_follow_topic_then_broker_then_builtin() {
        let defaults = map(&[("retention.ms", "1000"), ("segment.bytes", "1048576")]);
        let overrides = map(&[("retention.ms", "5000"), ("cleanup.policy", "compact")]);
        let views = resolved_views(&defaults, &overrides).unwrap();
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
        let defaults = map(&[("retention.ms", "1000")]);
        let views = broker_views(7, &defaults);
        let by: BTreeMap<_, _> = views.iter().map(|v| (v.name, v)).collect();
        assert_eq!(by["broker.id"].value, "7");
        let r = by["log.retention.ms"];
        assert_eq!(
            (r.value.as_str(), r.source),
            ("1000", ConfigSource::StaticBroker)
        );
        assert_eq!(by["log.roll.ms"].source, ConfigSource::Default);
        assert!(views.iter().all(|v| v.read_only));
        assert!(check_broker_name(7, "7").is_ok() && check_broker_name(7, "").is_ok());
        assert!(check_broker_name(7, "8").is_err());
    }

    #[test]
    fn describe_filters_keys_and_adds_synonyms_on_request() {
        let views = resolved_views(&BTreeMap::new(), &BTreeMap::new()).unwrap();
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
                        resolved_views(&defaults, &overrides).map_err(|_| refused()),
                        None,
                        synonyms,
                        documentation,
                    ),
                    describe_configs_result(
                        version,
                        RESOURCE_TOPIC,
                        name("t"),
                        resolved_views(&defaults, &overrides).map_err(|_| refused()),
                        Some(&keys),
                        synonyms,
                        documentation,
                    ),
                    describe_configs_result(
                        version,
                        RESOURCE_BROKER,
                        name("7"),
                        Ok(broker_views(7, &defaults)),
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
                alter_result(RESOURCE_BROKER, name("7"), broker_read_only(7, "7")),
                alter_result(9, name("x"), unsupported_resource(9)),
            ]);
            assert_encodes(&out, version);
        }
        for version in versions(ApiKey::IncrementalAlterConfigs) {
            let out = IncrementalAlterConfigsResponse::default().with_responses(vec![
                incremental_alter_result(RESOURCE_TOPIC, name("t"), OK),
                incremental_alter_result(RESOURCE_BROKER, name("7"), broker_read_only(7, "7")),
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
