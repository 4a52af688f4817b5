//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs.
//! Each change runs on the metadata shard (see `Broker::create_topic` and friends).

use std::collections::BTreeMap;

use flatbuffers::FlatBufferBuilder;
use strata_schema::protocol::*;
use strata_schema::{ApiKey, ErrorCode, REPAIR_PARTITIONS_KEY};

use super::{decode, Request};
use crate::broker::Broker;
use crate::errors::WireError;
use crate::response::{error_table, Response};

/// The configs of a request as (key, value-or-reset) pairs; duplicate keys are an
/// error.
fn config_entries<'a>(
    entries: Option<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<ConfigEntry<'a>>>>,
) -> Result<Vec<(String, Option<String>)>, WireError> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for e in entries.iter().flatten() {
        if out.iter().any(|(k, _)| k == e.key()) {
            return Err(WireError::new(
                ErrorCode::InvalidConfig,
                format!("topic config {} is given twice", e.key()),
            ));
        }
        out.push((e.key().to_owned(), e.value().map(str::to_owned)));
    }
    Ok(out)
}

/// A body whose root has one `error` field, built by `make`.
fn error_only_body<F>(error: Option<&WireError>, make: F) -> Vec<u8>
where
    F: for<'b> FnOnce(
        &mut FlatBufferBuilder<'b>,
        Option<flatbuffers::WIPOffset<Error<'b>>>,
    ) -> flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
{
    let mut fbb = FlatBufferBuilder::new();
    let e = error_table(&mut fbb, error);
    let root = make(&mut fbb, e);
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

pub async fn create_topics(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<CreateTopicsRequest>(req.body, ApiKey::CreateTopics)?;
    let name = r.name().to_owned();
    let partitions = r.partitions();
    let validate_only = r.validate_only();
    let replication_factor = match r.replication_factor() {
        -1 => None,
        n if n >= 1 => Some(n as u16),
        n => {
            return Err(WireError::new(
                ErrorCode::InvalidReplicationFactor,
                format!("replication factor {n}; give 1 or more"),
            ))
        }
    };
    let result = match config_entries(r.configs()) {
        Ok(entries) => {
            let mut overrides = BTreeMap::new();
            let mut missing = None;
            for (k, v) in entries {
                match v {
                    Some(v) => {
                        overrides.insert(k, v);
                    }
                    None => missing = Some(k),
                }
            }
            match missing {
                Some(k) => Err(WireError::new(
                    ErrorCode::InvalidConfig,
                    format!("topic config {k} has no value"),
                )),
                None => {
                    broker
                        .on_metadata_shard(move |b| async move {
                            b.create_topic_replicated(
                                name,
                                partitions,
                                replication_factor,
                                None,
                                overrides,
                                validate_only,
                            )
                            .await
                        })
                        .await
                }
            }
        }
        Err(e) => Err(e),
    };
    let body = error_only_body(result.err().as_ref(), |fbb, error| {
        CreateTopicsResponse::create(fbb, &CreateTopicsResponseArgs { error }).as_union_value()
    });
    Ok(req.reply(&body, Vec::new()))
}

pub async fn delete_topics(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<DeleteTopicsRequest>(req.body, ApiKey::DeleteTopics)?;
    let names: Vec<String> = r.names().iter().flatten().map(str::to_owned).collect();
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let n = name.clone();
        let result = broker
            .on_metadata_shard(move |b| async move { b.delete_topic(n).await })
            .await;
        results.push((name, result.err()));
    }
    let mut fbb = FlatBufferBuilder::new();
    let items: Vec<_> = results
        .iter()
        .map(|(name, error)| {
            let name = fbb.create_string(name);
            let error = error_table(&mut fbb, error.as_ref());
            TopicResult::create(
                &mut fbb,
                &TopicResultArgs {
                    name: Some(name),
                    error,
                },
            )
        })
        .collect();
    let results = fbb.create_vector(&items);
    let root = DeleteTopicsResponse::create(
        &mut fbb,
        &DeleteTopicsResponseArgs {
            results: Some(results),
        },
    );
    fbb.finish(root, None);
    Ok(req.reply(fbb.finished_data(), Vec::new()))
}

pub async fn create_partitions(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<CreatePartitionsRequest>(req.body, ApiKey::CreatePartitions)?;
    let name = r.name().to_owned();
    let total = r.total_partitions();
    let result = broker
        .on_metadata_shard(move |b| async move { b.create_partitions(name, total).await })
        .await;
    let body = error_only_body(result.err().as_ref(), |fbb, error| {
        CreatePartitionsResponse::create(fbb, &CreatePartitionsResponseArgs { error })
            .as_union_value()
    });
    Ok(req.reply(&body, Vec::new()))
}

/// Reopens the partitions a repair request names, each on its owner shard.
async fn repair(broker: &Broker, name: String, which: Option<&str>) -> Result<(), WireError> {
    let meta = broker.topic_meta(&name)?;
    let which = match which {
        Some("all") => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| {
            WireError::new(
                ErrorCode::InvalidConfig,
                format!("{REPAIR_PARTITIONS_KEY} = {v}: expected a partition number or `all`"),
            )
        })?),
        None => None,
    };
    let targets = crate::partition_health::repair_targets(meta.partitions, which)?;
    let items = targets
        .into_iter()
        .map(|p| (broker.owner(&name, p), (name.clone(), p)))
        .collect();
    let results = crate::broker::scatter(broker, items, repair_one, Err).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.message.clone()))
        .collect();
    match results.into_iter().find_map(Result::err) {
        None => Ok(()),
        Some(first) => Err(WireError::new(
            first.code,
            format!(
                "{} partition(s) of {name} could not be reopened: {}",
                failed.len(),
                failed.join("; ")
            ),
        )),
    }
}

async fn repair_one(b: std::rc::Rc<Broker>, (topic, p): (String, u32)) -> Result<(), WireError> {
    b.repair(&topic, p).await
}

pub async fn alter_configs(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<AlterConfigsRequest>(req.body, ApiKey::AlterConfigs)?;
    let name = r.name().to_owned();
    let validate_only = r.validate_only();
    let result = match config_entries(r.configs()) {
        Ok(changes) if changes.iter().any(|(k, _)| k == REPAIR_PARTITIONS_KEY) => {
            let which = changes
                .iter()
                .find(|(k, _)| k == REPAIR_PARTITIONS_KEY)
                .and_then(|(_, v)| v.clone());
            if changes.len() > 1 {
                Err(WireError::new(
                    ErrorCode::InvalidConfig,
                    format!("{REPAIR_PARTITIONS_KEY} is an action and cannot be combined with config changes"),
                ))
            } else if validate_only {
                Ok(())
            } else {
                repair(broker, name, which.as_deref()).await
            }
        }
        Ok(changes) => {
            broker
                .on_metadata_shard(move |b| async move {
                    b.alter_configs(name, changes, validate_only).await
                })
                .await
        }
        Err(e) => Err(e),
    };
    let body = error_only_body(result.err().as_ref(), |fbb, error| {
        AlterConfigsResponse::create(fbb, &AlterConfigsResponseArgs { error }).as_union_value()
    });
    Ok(req.reply(&body, Vec::new()))
}
