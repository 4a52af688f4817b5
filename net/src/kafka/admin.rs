//! Kafka admin apis: topics (CreateTopics, DeleteTopics, CreatePartitions) here;
//! configs, DescribeCluster, OffsetForLeaderEpoch, DeleteRecords, ElectLeaders and
//! the reassignment apis (with UnregisterBroker) in files of their own. Every change runs on the metadata shard through the same `Broker`
//! methods the native protocol uses, so both protocols see one set of topics and
//! configs.
//!
//! This broker is a single node: a replication factor other than 1 (or -1, the
//! default) and manual replica assignments are refused with a message saying so.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::dispatch::call;
use super::errors::{kafka_error, KafkaCode};
use super::{
    cluster, configs, delete_records, elect_leaders, leader_epochs, reassignments, Ctx, ServedApi,
};
use crate::broker::{scatter, Broker};
use crate::errors::WireError;
use crate::metadata::{CONSUMER_OFFSETS_TOPIC, PARTITIONS_MAX};
use crate::response::Response;
use strata_engine::placement::ShardId;

/// The apis of this file and of the admin files it dispatches to.
pub(crate) const APIS: &[ServedApi] = &[
    ServedApi::new(ApiKey::CreateTopics, 2, 7),
    ServedApi::new(ApiKey::DeleteTopics, 1, 6),
    ServedApi::new(ApiKey::CreatePartitions, 0, 3),
    ServedApi::new(ApiKey::DescribeConfigs, 1, 4),
    ServedApi::new(ApiKey::AlterConfigs, 0, 2),
    ServedApi::new(ApiKey::IncrementalAlterConfigs, 0, 1),
    ServedApi::new(ApiKey::DescribeCluster, 0, 2),
    ServedApi::new(ApiKey::OffsetForLeaderEpoch, 2, 4),
    ServedApi::new(ApiKey::DeleteRecords, 0, 2),
    ServedApi::new(ApiKey::ElectLeaders, 0, 2),
    ServedApi::new(ApiKey::AlterPartitionReassignments, 0, 1),
    ServedApi::new(ApiKey::ListPartitionReassignments, 0, 0),
    ServedApi::new(ApiKey::UnregisterBroker, 0, 0),
];

/// The only replication factor a single-node broker has.
pub(crate) use crate::topic_config::REPLICATION_FACTOR;

/// Answers a request of one of [`APIS`].
pub(crate) async fn serve(ctx: &Ctx, body: Bytes) -> Response {
    match ctx.api {
        ApiKey::CreateTopics => call!(ctx, body, create_topics),
        ApiKey::DeleteTopics => call!(ctx, body, delete_topics),
        ApiKey::CreatePartitions => call!(ctx, body, create_partitions),
        ApiKey::DescribeConfigs => call!(ctx, body, configs::describe_configs),
        ApiKey::AlterConfigs => call!(ctx, body, configs::alter_configs),
        ApiKey::IncrementalAlterConfigs => {
            call!(ctx, body, configs::incremental_alter_configs)
        }
        ApiKey::DescribeCluster => call!(ctx, body, cluster::describe_cluster),
        ApiKey::OffsetForLeaderEpoch => {
            call!(ctx, body, leader_epochs::offset_for_leader_epoch)
        }
        ApiKey::DeleteRecords => call!(ctx, body, delete_records::delete_records),
        ApiKey::ElectLeaders => call!(ctx, body, elect_leaders::elect_leaders),
        ApiKey::AlterPartitionReassignments => {
            call!(ctx, body, reassignments::alter_partition_reassignments)
        }
        ApiKey::ListPartitionReassignments => {
            call!(ctx, body, reassignments::list_partition_reassignments)
        }
        ApiKey::UnregisterBroker => call!(ctx, body, reassignments::unregister_broker),
        _ => super::dispatch::unsupported(ctx.correlation_id, KafkaCode::UnsupportedVersion),
    }
}

/// A Kafka error code and message for one item of a request (`(0, None)`: none).
pub(crate) type Outcome = (i16, Option<String>);

/// Success.
pub(crate) const OK: Outcome = (0, None);

/// A refusal with `code` and a message.
pub(crate) fn refuse(code: KafkaCode, message: impl Into<String>) -> Outcome {
    (code.code(), Some(message.into()))
}

/// The outcome of a strata operation.
pub(crate) fn outcome(result: Result<(), WireError>) -> Outcome {
    match result {
        Ok(()) => OK,
        Err(e) => kafka_error(&e),
    }
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}

/// Names that occur more than once in `names`.
pub(crate) fn duplicates<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            dup.insert(n.to_owned());
        }
    }
    dup
}

/// Runs `job` for every item on the shard that owns its partition; items refused
/// up front (`Err`) make no trip. The results come back in item order.
pub(crate) async fn on_owners<T, R, Fut>(
    broker: &Broker,
    items: Vec<Result<(ShardId, T), Outcome>>,
    job: fn(Rc<Broker>, T) -> Fut,
) -> Vec<Result<R, Outcome>>
where
    T: Send + 'static,
    R: Send + 'static,
    Fut: Future<Output = Result<R, Outcome>> + 'static,
{
    let mut refused = Vec::with_capacity(items.len());
    let mut sent = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Ok(x) => {
                sent.push(x);
                refused.push(None);
            }
            Err(o) => refused.push(Some(o)),
        }
    }
    let mut done = scatter(broker, sent, job, |e| Err(kafka_error(&e)))
        .await
        .into_iter();
    refused
        .into_iter()
        .map(|r| match r {
            Some(o) => Err(o),
            None => done
                .next()
                .unwrap_or_else(|| Err(refuse(KafkaCode::UnknownServerError, "no answer"))),
        })
        .collect()
}

/// The owner of partition `partition` of `topic`, or UNKNOWN_TOPIC_OR_PARTITION for
/// a negative partition.
pub(crate) fn owner_of(broker: &Broker, topic: &str, partition: i32) -> Result<ShardId, Outcome> {
    match u32::try_from(partition) {
        Ok(p) => Ok(broker.owner(topic, p)),
        Err(_) => Err(kafka_error(&WireError::new(
            strata_schema::ErrorCode::UnknownPartition,
            format!("partition {partition} of topic {topic} does not exist"),
        ))),
    }
}

// ---- CreateTopics -------------------------------------------------------------

/// What a CreateTopics entry asks for in a cluster beyond [`creation_plan`]: the
/// replication factor (`None`: the broker's default) and explicit assignments.
type Replication = (Option<u16>, Option<Vec<Vec<u64>>>);

/// The replication a CreateTopics entry asks of a cluster.
fn cluster_replication(t: &CreatableTopic) -> Result<Replication, Outcome> {
    let name = t.name.0.as_str();
    let rf = match t.replication_factor {
        -1 => None,
        n if n >= 1 => Some(n as u16),
        n => {
            return Err(refuse(
                KafkaCode::InvalidReplicationFactor,
                format!("topic {name}: replication factor {n}; give 1 or more (or -1 for default.replication.factor)"),
            ))
        }
    };
    if t.assignments.is_empty() {
        return Ok((rf, None));
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err(refuse(
            KafkaCode::InvalidRequest,
            format!("topic {name}: with replica assignments, num_partitions and replication_factor must be -1"),
        ));
    }
    let mut by_partition: Vec<(i32, Vec<u64>)> = Vec::with_capacity(t.assignments.len());
    for a in &t.assignments {
        let mut replicas = Vec::with_capacity(a.broker_ids.len());
        for id in &a.broker_ids {
            let Ok(id) = u64::try_from(id.0) else {
                return Err(refuse(
                    KafkaCode::InvalidReplicaAssignment,
                    format!(
                        "topic {name}: broker id {} in the assignment of partition {}",
                        id.0, a.partition_index
                    ),
                ));
            };
            replicas.push(id);
        }
        by_partition.push((a.partition_index, replicas));
    }
    by_partition.sort_by_key(|(p, _)| *p);
    if by_partition
        .iter()
        .enumerate()
        .any(|(i, (p, _))| *p != i as i32)
    {
        return Err(refuse(
            KafkaCode::InvalidReplicaAssignment,
            format!(
                "topic {name}: the assignments must cover partitions 0 to {} once each",
                by_partition.len() - 1
            ),
        ));
    }
    Ok((
        None,
        Some(by_partition.into_iter().map(|(_, r)| r).collect()),
    ))
}

/// What a CreateTopics entry asks for, checked: (partitions, overrides);
/// `num_partitions` -1 means the broker's `num.partitions`, `default_partitions`.
/// On a cluster the replication is checked by [`cluster_replication`] instead.
fn creation_plan(
    t: &CreatableTopic,
    default_partitions: u32,
    cluster: bool,
) -> Result<(u32, BTreeMap<String, String>), Outcome> {
    let name = t.name.0.as_str();
    if cluster && !t.assignments.is_empty() {
        // The partition count is the assignments' (checked by cluster_replication).
    } else if cluster {
        // Any replication factor; the controller checks it against the brokers.
    } else if !t.assignments.is_empty() {
        return Err(refuse(
            KafkaCode::InvalidReplicaAssignment,
            format!(
                "topic {name}: manual replica assignments are not supported by this single-node broker; give num_partitions (and replication_factor 1 or -1) instead"
            ),
        ));
    }
    if !cluster && t.replication_factor != REPLICATION_FACTOR && t.replication_factor != -1 {
        return Err(refuse(
            KafkaCode::InvalidReplicationFactor,
            format!(
                "topic {name}: replication factor {} is not possible on this single-node broker; use 1 (or -1 for the default)",
                t.replication_factor
            ),
        ));
    }
    let partitions = match t.num_partitions {
        -1 if cluster && !t.assignments.is_empty() => t.assignments.len() as u32,
        -1 => default_partitions,
        n if n >= 1 => n as u32,
        n => {
            return Err(refuse(
                KafkaCode::InvalidPartitions,
                format!(
                    "topic {name}: {n} partitions asked for; give 1 to {PARTITIONS_MAX} (or -1 for the default, num.partitions = {default_partitions})"
                ),
            ))
        }
    };
    let mut overrides = BTreeMap::new();
    for c in &t.configs {
        let key = c.name.as_str();
        let Some(value) = &c.value else {
            return Err(refuse(
                KafkaCode::InvalidConfig,
                format!("topic {name}: config {key} has no value"),
            ));
        };
        if overrides
            .insert(key.to_owned(), value.as_str().to_owned())
            .is_some()
        {
            return Err(refuse(
                KafkaCode::InvalidRequest,
                format!("topic {name}: config {key} is given more than once"),
            ));
        }
    }
    Ok((partitions, overrides))
}

/// The v5+ description of a topic just created (or that would be): partitions,
/// replication factor, every config with its source.
fn created_result(
    defaults: &configs::Layers<'_>,
    result: &mut CreatableTopicResult,
    partitions: u32,
    replication_factor: i16,
    overrides: &BTreeMap<String, String>,
) {
    result.num_partitions = partitions as i32;
    result.replication_factor = replication_factor;
    let Ok(views) = configs::resolved_views(defaults, overrides) else {
        result.configs = None;
        return;
    };
    result.configs = Some(
        views
            .into_iter()
            .map(|v| {
                CreatableTopicConfigs::default()
                    .with_name(StrBytes::from_static_str(v.name))
                    .with_value(Some(str_bytes(v.value)))
                    .with_read_only(v.read_only)
                    .with_config_source(v.source as i8)
                    .with_is_sensitive(false)
            })
            .collect(),
    );
}

/// A topic CreateTopics created (or validated): its partitions, overrides and id.
struct Created<'a> {
    partitions: u32,
    replication_factor: i16,
    overrides: &'a BTreeMap<String, String>,
    id: Option<[u8; 16]>,
}

/// One CreateTopics answer at `version`: the description of a created topic only
/// from v5 and its id only from v7, the versions that have them.
fn creatable_topic_result(
    version: i16,
    name: TopicName,
    defaults: &configs::Layers<'_>,
    created: Option<Created<'_>>,
    (code, message): Outcome,
) -> CreatableTopicResult {
    let mut result = CreatableTopicResult::default().with_name(name);
    result.configs = None;
    if let Some(c) = created {
        if version >= 5 {
            created_result(
                defaults,
                &mut result,
                c.partitions,
                c.replication_factor,
                c.overrides,
            );
        }
        if version >= 7 {
            if let Some(id) = c.id {
                result.topic_id = uuid(&id);
            }
        }
    }
    result.error_code = code;
    result.error_message = message.map(str_bytes);
    result
}

pub(crate) async fn create_topics(ctx: &Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let broker = &ctx.broker;
    let dup = duplicates(req.topics.iter().map(|t| t.name.0.as_str()));
    let mut out = CreateTopicsResponse::default();
    let mut answered = BTreeSet::new();
    for t in &req.topics {
        let name = t.name.0.as_str().to_owned();
        if !answered.insert(name.clone()) {
            continue;
        }
        let topics = broker.topics();
        let layers = configs::Layers {
            statics: &broker.config.topic_defaults,
            dynamic: &topics.dynamic,
        };
        let defaults = &layers;
        let result = if dup.contains(&name) {
            let refused = refuse(
                KafkaCode::InvalidRequest,
                format!("topic {name} is given more than once in one CreateTopics request"),
            );
            creatable_topic_result(ctx.version, t.name.clone(), defaults, None, refused)
        } else {
            let cluster = broker.config.cluster.is_some();
            let plan = creation_plan(t, broker.config.num_partitions, cluster).and_then(|p| {
                let replication = if cluster {
                    cluster_replication(t)?
                } else {
                    (None, None)
                };
                Ok((p, replication))
            });
            match plan {
                Err(o) => creatable_topic_result(ctx.version, t.name.clone(), defaults, None, o),
                Ok(((partitions, overrides), (rf, assignments))) => {
                    let validate_only = req.validate_only;
                    let (n, o) = (name.clone(), overrides.clone());
                    let created = broker
                        .on_metadata_shard(move |b| async move {
                            b.create_topic_replicated(
                                n,
                                partitions,
                                rf,
                                assignments,
                                o,
                                validate_only,
                            )
                            .await
                        })
                        .await;
                    let meta = broker.topics().get(&name).cloned();
                    let replication_factor = meta
                        .as_ref()
                        .and_then(|m| m.replicas.first())
                        .map_or(REPLICATION_FACTOR, |r| r.len() as i16);
                    let described = created.is_ok().then(|| Created {
                        partitions,
                        replication_factor,
                        overrides: &overrides,
                        id: broker.topics().get(&name).map(|meta| meta.id),
                    });
                    creatable_topic_result(
                        ctx.version,
                        t.name.clone(),
                        defaults,
                        described,
                        outcome(created),
                    )
                }
            }
        };
        out.topics.push(result);
    }
    out
}

/// A topic id as the protocol's UUID.
pub(crate) fn uuid<U: TryFrom<Vec<u8>> + Default>(id: &[u8; 16]) -> U {
    U::try_from(id.to_vec()).unwrap_or_default()
}

/// A protocol UUID as a topic id.
pub(crate) fn topic_id<U: Into<Vec<u8>>>(u: U) -> Option<[u8; 16]> {
    let bytes: Vec<u8> = u.into();
    let id: [u8; 16] = bytes.try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

// ---- DeleteTopics -------------------------------------------------------------

/// Deletes the topic called `name`, or the topic with id `id` (whose name is
/// returned). Runs the deletion on the metadata shard.
async fn delete_one(
    broker: &Broker,
    name: Option<String>,
    id: Option<[u8; 16]>,
) -> (Option<String>, Outcome) {
    let topics = broker.topics();
    let name = match (name, id) {
        (Some(n), _) => n,
        (None, Some(id)) => match topics.by_id(&id) {
            Some(meta) => meta.name.clone(),
            None => {
                return (
                    None,
                    refuse(
                        KafkaCode::UnknownTopicId,
                        format!("no topic has id {}", hex_id(&id)),
                    ),
                )
            }
        },
        (None, None) => {
            return (
                None,
                refuse(
                    KafkaCode::InvalidRequest,
                    "a DeleteTopics entry needs a topic name or a topic id",
                ),
            )
        }
    };
    let n = name.clone();
    let deleted = broker
        .on_metadata_shard(move |b| async move {
            // By id: the name must still be that topic's when the delete runs.
            if let Some(id) = id {
                if b.topics().get(&n).is_none_or(|m| m.id != id) {
                    return Err(WireError::new(
                        strata_schema::ErrorCode::UnknownTopic,
                        format!("topic {n} with id {} no longer exists", hex_id(&id)),
                    ));
                }
            }
            b.delete_topic(n).await
        })
        .await;
    (Some(name), outcome(deleted))
}

/// A topic id in the usual UUID text form.
fn hex_id(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub(crate) async fn delete_topics(ctx: &Ctx, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v6 lists topics by name or id; v1-5 by name only.
    let wanted: Vec<(Option<String>, Option<[u8; 16]>)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.as_str().to_owned()),
                    topic_id(t.topic_id),
                )
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.as_str().to_owned()), None))
            .collect()
    };
    let mut out = DeleteTopicsResponse::default();
    for (name, id) in wanted {
        let (name, outcome) = delete_one(&ctx.broker, name, id).await;
        out.responses
            .push(deletable_topic_result(ctx.version, name, id, outcome));
    }
    out
}

/// One DeleteTopics answer at `version`: the topic id only from v6 and the message
/// only from v5, the versions that have them.
fn deletable_topic_result(
    version: i16,
    name: Option<String>,
    id: Option<[u8; 16]>,
    (code, message): Outcome,
) -> DeletableTopicResult {
    let mut r = DeletableTopicResult::default();
    r.name = name.map(topic_name);
    if version >= 6 {
        r.topic_id = id.map(|id| uuid(&id)).unwrap_or_default();
    }
    r.error_code = code;
    if version >= 5 {
        r.error_message = message.map(str_bytes);
    }
    r
}

// ---- CreatePartitions ---------------------------------------------------------

/// Checks a new partition count for `name` against the current topics.
fn check_partition_count(broker: &Broker, name: &str, count: i32) -> Result<u32, Outcome> {
    if name == CONSUMER_OFFSETS_TOPIC {
        return Err(refuse(
            KafkaCode::InvalidRequest,
            format!("topic {name} holds the consumer groups' offsets; its partition count cannot change"),
        ));
    }
    let Some(meta) = broker.topics().get(name).cloned() else {
        return Err(refuse(
            KafkaCode::UnknownTopicOrPartition,
            format!("topic {name:?} does not exist"),
        ));
    };
    let current = meta.partitions;
    match u32::try_from(count) {
        Ok(n) if n > current && n <= PARTITIONS_MAX => Ok(n),
        Ok(n) if n == current => Err(refuse(
            KafkaCode::InvalidPartitions,
            format!("topic {name} already has {current} partitions"),
        )),
        _ => Err(refuse(
            KafkaCode::InvalidPartitions,
            format!(
                "topic {name} has {current} partitions; the new count must be larger and at most {PARTITIONS_MAX}, {count} was asked for"
            ),
        )),
    }
}

pub(crate) async fn create_partitions(
    ctx: &Ctx,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let broker = &ctx.broker;
    let dup = duplicates(req.topics.iter().map(|t| t.name.0.as_str()));
    let mut out = CreatePartitionsResponse::default();
    let mut answered = BTreeSet::new();
    for t in &req.topics {
        let name = t.name.0.as_str().to_owned();
        if !answered.insert(name.clone()) {
            continue;
        }
        let (code, message) = if dup.contains(&name) {
            refuse(
                KafkaCode::InvalidRequest,
                format!("topic {name} is given more than once in one CreatePartitions request"),
            )
        } else if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            refuse(
                KafkaCode::InvalidReplicaAssignment,
                format!("topic {name}: manual replica assignments are not supported by this single-node broker; give only the new count"),
            )
        } else {
            match check_partition_count(broker, &name, t.count) {
                Err(o) => o,
                Ok(_) if req.validate_only => OK,
                Ok(total) => {
                    let n = name.clone();
                    outcome(
                        broker
                            .on_metadata_shard(move |b| async move {
                                b.create_partitions(n, total).await
                            })
                            .await,
                    )
                }
            }
        };
        out.results
            .push(partitions_result(t.name.clone(), (code, message)));
    }
    out
}

/// One CreatePartitions answer (every field is in every version).
fn partitions_result(name: TopicName, (code, message): Outcome) -> CreatePartitionsTopicResult {
    let mut r = CreatePartitionsTopicResult::default().with_name(name);
    r.error_code = code;
    r.error_message = message.map(str_bytes);
    r
}

/// The versions of `key` served by [`APIS`].
#[cfg(test)]
pub(crate) fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let api = APIS
        .iter()
        .find(|a| a.key == key)
        .expect("an api of this file");
    api.min_version..=api.max_version
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopicConfig,
    };

    fn topic(partitions: i32, rf: i16) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(topic_name("t"))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
    }

    #[test]
    fn creation_defaults_and_single_node_limits() {
        assert_eq!(creation_plan(&topic(-1, -1), 7, false).unwrap().0, 7);
        assert_eq!(creation_plan(&topic(6, 1), 1, false).unwrap().0, 6);
        let (code, msg) = creation_plan(&topic(3, 3), 1, false).unwrap_err();
        assert_eq!(code, KafkaCode::InvalidReplicationFactor.code());
        assert!(msg.unwrap().contains("single-node"));
        let (code, _) = creation_plan(&topic(0, 1), 1, false).unwrap_err();
        assert_eq!(code, KafkaCode::InvalidPartitions.code());
        let assigned = topic(-1, -1).with_assignments(vec![CreatableReplicaAssignment::default()]);
        assert_eq!(
            creation_plan(&assigned, 1, false).unwrap_err().0,
            KafkaCode::InvalidReplicaAssignment.code()
        );
    }

    #[test]
    fn creation_configs_need_values_once() {
        let cfg = |k: &'static str, v: Option<&'static str>| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(k))
                .with_value(v.map(StrBytes::from_static_str))
        };
        let t = topic(1, 1).with_configs(vec![cfg("retention.ms", Some("1000"))]);
        assert_eq!(
            creation_plan(&t, 1, false).unwrap().1["retention.ms"],
            "1000"
        );
        let t = topic(1, 1).with_configs(vec![cfg("retention.ms", None)]);
        assert_eq!(
            creation_plan(&t, 1, false).unwrap_err().0,
            KafkaCode::InvalidConfig.code()
        );
        let t = topic(1, 1).with_configs(vec![
            cfg("retention.ms", Some("1")),
            cfg("retention.ms", Some("2")),
        ]);
        assert_eq!(
            creation_plan(&t, 1, false).unwrap_err().0,
            KafkaCode::InvalidRequest.code()
        );
    }

    #[test]
    fn topic_ids_convert_both_ways() {
        let id: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
        let u: kafka_protocol::messages::delete_topics_request::DeleteTopicState =
            Default::default();
        assert_eq!(topic_id(u.topic_id), None, "the nil uuid is no id");
        let u = u.with_topic_id(uuid(&id));
        assert_eq!(topic_id(u.topic_id), Some(id));
    }

    #[test]
    fn topic_ids_print_as_uuids() {
        let id: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(hex_id(&id), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }

    #[test]
    fn responses_encode_at_every_served_version() {
        let statics: BTreeMap<String, String> = [("retention.ms".to_owned(), "1000".to_owned())]
            .into_iter()
            .collect();
        let dynamic = crate::broker_settings::DynamicBrokerConfigs::default();
        let defaults = configs::Layers {
            statics: &statics,
            dynamic: &dynamic,
        };
        let overrides: BTreeMap<String, String> =
            [("cleanup.policy".to_owned(), "compact".to_owned())]
                .into_iter()
                .collect();
        let id: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
        let refused = || refuse(KafkaCode::InvalidPartitions, "no");
        for version in versions(ApiKey::CreateTopics) {
            let created = Created {
                partitions: 3,
                replication_factor: 1,
                overrides: &overrides,
                id: Some(id),
            };
            let out = CreateTopicsResponse::default().with_topics(vec![
                creatable_topic_result(version, topic_name("a"), &defaults, Some(created), OK),
                creatable_topic_result(version, topic_name("b"), &defaults, None, refused()),
            ]);
            assert_encodes(&out, version);
        }
        for version in versions(ApiKey::DeleteTopics) {
            let mut results = vec![
                deletable_topic_result(version, Some("a".into()), Some(id), OK),
                deletable_topic_result(version, Some("b".into()), None, refused()),
            ];
            if version >= 6 {
                // By id, for an id no topic has: no name.
                results.push(deletable_topic_result(version, None, Some(id), refused()));
            }
            let out = DeleteTopicsResponse::default().with_responses(results);
            assert_encodes(&out, version);
        }
        for version in versions(ApiKey::CreatePartitions) {
            let out = CreatePartitionsResponse::default().with_results(vec![
                partitions_result(topic_name("a"), OK),
                partitions_result(topic_name("b"), refused()),
            ]);
            assert_encodes(&out, version);
        }
    }

    #[test]
    fn duplicates_are_found() {
        let d = duplicates(["a", "b", "a", "c", "b", "a"]);
        assert_eq!(d.into_iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
