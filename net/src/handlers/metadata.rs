//! Metadata: list and describe topics, with per-partition offsets and sizes from
//! their owner shards, and every topic's effective configs.

use std::rc::Rc;

use flatbuffers::FlatBufferBuilder;
use strata_schema::protocol::*;
use strata_schema::ApiKey;

use super::{decode, Request};
use crate::broker::{scatter, unknown_topic, Broker};
use crate::errors::WireError;
use crate::response::{error_table, Response};

/// What a partition's owner reports.
struct PartitionStats {
    log_start_offset: i64,
    high_watermark: i64,
    size_bytes: u64,
    error: Option<WireError>,
}

async fn stats(broker: Rc<Broker>, (topic, partition): (String, u32)) -> PartitionStats {
    match broker.log(&topic, partition).await {
        Ok(log) => PartitionStats {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            size_bytes: log.size_bytes(),
            error: None,
        },
        Err(e) => failed(e),
    }
}

fn failed(e: WireError) -> PartitionStats {
    PartitionStats {
        log_start_offset: -1,
        high_watermark: -1,
        size_bytes: 0,
        error: Some(e),
    }
}

pub async fn handle(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<MetadataRequest>(req.body, ApiKey::Metadata)?;
    let topics = broker.topics();
    let wanted: Vec<String> = match r.topics() {
        Some(names) => names.iter().map(str::to_owned).collect(),
        None => topics
            .topics
            .values()
            .filter(|t| r.include_internal() || !t.internal())
            .map(|t| t.name.clone())
            .collect(),
    };
    let mut items = Vec::new();
    for name in &wanted {
        if let Some(t) = topics.get(name) {
            for p in 0..t.partitions {
                items.push((broker.owner(name, p), (name.clone(), p)));
            }
        }
    }
    let owners: Vec<usize> = items.iter().map(|(s, _)| *s).collect();
    let mut stats = scatter(broker, items, stats, failed).await.into_iter();
    let mut owners = owners.into_iter();

    let mut fbb = FlatBufferBuilder::new();
    let mut topic_offsets = Vec::with_capacity(wanted.len());
    for name in &wanted {
        let name_off = fbb.create_string(name);
        let Some(t) = topics.get(name) else {
            let error = error_table(&mut fbb, Some(&unknown_topic(name)));
            topic_offsets.push(TopicInfo::create(
                &mut fbb,
                &TopicInfoArgs {
                    name: Some(name_off),
                    error,
                    ..Default::default()
                },
            ));
            continue;
        };
        let mut parts = Vec::with_capacity(t.partitions as usize);
        for p in 0..t.partitions {
            let s = stats.next().expect("one result per partition");
            let shard = owners.next().expect("one owner per partition");
            let error = error_table(&mut fbb, s.error.as_ref());
            parts.push(PartitionInfo::create(
                &mut fbb,
                &PartitionInfoArgs {
                    partition: p,
                    leader_broker: broker.config.broker_id,
                    leader_shard: shard as u32,
                    log_start_offset: s.log_start_offset,
                    high_watermark: s.high_watermark,
                    size_bytes: s.size_bytes,
                    error,
                },
            ));
        }
        let parts = fbb.create_vector(&parts);
        let configs: Vec<_> = t
            .config
            .entries()
            .into_iter()
            .map(|(k, v)| {
                let key = fbb.create_string(k);
                let value = fbb.create_string(&v);
                ConfigEntry::create(
                    &mut fbb,
                    &ConfigEntryArgs {
                        key: Some(key),
                        value: Some(value),
                    },
                )
            })
            .collect();
        let configs = fbb.create_vector(&configs);
        topic_offsets.push(TopicInfo::create(
            &mut fbb,
            &TopicInfoArgs {
                name: Some(name_off),
                error: None,
                internal: t.internal(),
                partitions: Some(parts),
                configs: Some(configs),
            },
        ));
    }
    let topics_vec = fbb.create_vector(&topic_offsets);
    let host = fbb.create_string(&broker.config.listen.ip().to_string());
    let b = BrokerInfo::create(
        &mut fbb,
        &BrokerInfoArgs {
            id: broker.config.broker_id,
            host: Some(host),
            port: broker.config.listen.port(),
            shards: broker.shard.shard_count() as u32,
        },
    );
    let brokers = fbb.create_vector(&[b]);
    let root = MetadataResponse::create(
        &mut fbb,
        &MetadataResponseArgs {
            brokers: Some(brokers),
            topics: Some(topics_vec),
        },
    );
    fbb.finish(root, None);
    Ok(req.reply(fbb.finished_data(), Vec::new()))
}
