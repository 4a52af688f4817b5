//! Metadata: list and describe topics, with per-partition offsets and sizes from
//! their owner shards, and every topic's effective configs; brokers, controller and
//! each partition's leader, epoch, replicas and in-sync set from the cluster view
//! (`cluster_view`).

use std::rc::Rc;

use flatbuffers::FlatBufferBuilder;
use strata_engine::placement::Placement;
use strata_schema::protocol::*;
use strata_schema::ApiKey;

use super::{decode, Request};
use crate::broker::{scatter, unknown_topic, Broker};
use crate::cluster_config::NodeId;
use crate::cluster_view::{kafka_id, kafka_id_or_none, ClusterView, NO_NODE_KAFKA_ID};
use crate::errors::WireError;
use crate::response::{error_table, Response};

/// What a partition's owner reports.
struct PartitionStats {
    log_start_offset: i64,
    high_watermark: i64,
    size_bytes: u64,
    error: Option<WireError>,
    /// Records each replica (in the view's `replicas` order) is behind, -1 = not
    /// known; `None` unless this broker leads the partition.
    replica_lag: Option<Vec<i64>>,
}

async fn stats(broker: Rc<Broker>, (topic, partition): (String, u32)) -> PartitionStats {
    match broker.log(&topic, partition).await {
        Ok(log) => PartitionStats {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            size_bytes: log.size_bytes(),
            error: None,
            replica_lag: replica_lag(&broker, &topic, partition),
        },
        Err(e) => failed(e),
    }
}

/// Each replica's lag behind this broker's log, when this broker leads the
/// partition in a cluster (run on the partition's owner shard).
fn replica_lag(broker: &Broker, topic: &str, partition: u32) -> Option<Vec<i64>> {
    broker.config.cluster.as_ref()?;
    let replica =
        crate::cluster::replicas::ShardReplicas::of(&broker.shard).get(topic, partition)?;
    if !replica.is_leader() {
        return None;
    }
    let view = broker.cluster_view();
    let replicas = &view.partition(topic, partition)?.replicas;
    Some(
        replicas
            .iter()
            .map(|id| replica.replica_lag(*id).unwrap_or(-1))
            .collect(),
    )
}

fn failed(e: WireError) -> PartitionStats {
    PartitionStats {
        log_start_offset: -1,
        high_watermark: -1,
        size_bytes: 0,
        error: Some(e),
        replica_lag: None,
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

    let view = broker.cluster_view();
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
            let leader = leader_fields(&view, name, p, shard);
            let replicas = leader.replicas.map(|r| fbb.create_vector(&r));
            let isr = leader.isr.map(|r| fbb.create_vector(&r));
            let offline = leader.offline.map(|r| fbb.create_vector(&r));
            let replica_lag = s.replica_lag.as_ref().map(|l| fbb.create_vector(l));
            parts.push(PartitionInfo::create(
                &mut fbb,
                &PartitionInfoArgs {
                    partition: p,
                    leader_broker: leader.broker,
                    leader_shard: leader.shard,
                    log_start_offset: s.log_start_offset,
                    high_watermark: s.high_watermark,
                    size_bytes: s.size_bytes,
                    error,
                    leader_epoch: leader.epoch,
                    replicas,
                    isr,
                    offline,
                    replica_lag,
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
    let brokers = broker_infos(&mut fbb, &view, broker.shard.shard_count() as u32);
    let cluster_id = crate::kafka::cluster_id(broker).map(|id| fbb.create_string(&id));
    let root = MetadataResponse::create(
        &mut fbb,
        &MetadataResponseArgs {
            brokers: Some(brokers),
            topics: Some(topics_vec),
            controller: kafka_id_or_none(view.controller),
            cluster_id,
        },
    );
    fbb.finish(root, None);
    Ok(req.reply(fbb.finished_data(), Vec::new()))
}

/// A partition's leader as the native Metadata tells it.
#[derive(Debug, PartialEq, Eq)]
struct LeaderFields {
    /// The leader's node id; -1 = none now.
    broker: i32,
    /// The leader's shard that owns the partition.
    shard: u32,
    epoch: i32,
    replicas: Option<Vec<i32>>,
    isr: Option<Vec<i32>>,
    offline: Option<Vec<i32>>,
}

/// `partition` of `topic` from `view`; `local_owner` is this broker's owner shard
/// of it. Another broker's owner shard follows the same placement over its shard
/// count (this one's when the view does not know it).
fn leader_fields(
    view: &ClusterView,
    topic: &str,
    partition: u32,
    local_owner: usize,
) -> LeaderFields {
    let ids = |v: &[NodeId]| Some(v.iter().map(|id| kafka_id(*id)).collect::<Vec<i32>>());
    let Some(p) = view.partition(topic, partition) else {
        return LeaderFields {
            broker: NO_NODE_KAFKA_ID,
            shard: 0,
            epoch: -1,
            replicas: None,
            isr: None,
            offline: None,
        };
    };
    let shard = match p.leader.and_then(|id| view.broker(id)) {
        Some(b) if b.id != view.local && b.shards > 0 => {
            Placement::new(b.shards as usize).shard_for(topic, partition) as u32
        }
        _ => local_owner as u32,
    };
    LeaderFields {
        broker: kafka_id_or_none(p.leader),
        shard,
        epoch: p.leader_epoch,
        replicas: ids(&p.replicas),
        isr: ids(&p.isr),
        offline: ids(&p.offline),
    }
}

/// The view's brokers; this broker's shard count is `local_shards`.
fn broker_infos<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    view: &ClusterView,
    local_shards: u32,
) -> flatbuffers::WIPOffset<flatbuffers::Vector<'b, flatbuffers::ForwardsUOffset<BrokerInfo<'b>>>> {
    let infos: Vec<_> = view
        .brokers
        .iter()
        .map(|b| {
            let host = fbb.create_string(&b.native_addr.ip().to_string());
            let rack = b.rack.as_deref().map(|r| fbb.create_string(r));
            BrokerInfo::create(
                fbb,
                &BrokerInfoArgs {
                    id: b.kafka_id(),
                    host: Some(host),
                    port: b.native_addr.port(),
                    shards: if b.id == view.local {
                        local_shards
                    } else {
                        b.shards
                    },
                    rack,
                    fenced: b.fenced,
                },
            )
        })
        .collect();
    fbb.create_vector(&infos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_view::tests::{endpoint, three_brokers};

    #[test]
    fn a_single_node_leads_on_its_owner_shard() {
        let mut me = endpoint(0);
        me.shards = 0;
        let view = ClusterView::single_node(me);
        let f = leader_fields(&view, "t", 3, 1);
        assert_eq!(
            f,
            LeaderFields {
                broker: 0,
                shard: 1,
                epoch: 0,
                replicas: Some(vec![0]),
                isr: Some(vec![0]),
                offline: Some(vec![]),
            }
        );
    }

    #[test]
    fn a_cluster_partition_names_its_leader_and_replicas() {
        let view = three_brokers();
        let f = leader_fields(&view, "t", 0, 0);
        assert_eq!(f.broker, 2);
        assert_eq!(f.epoch, 7);
        assert_eq!(f.shard, Placement::new(2).shard_for("t", 0) as u32);
        assert_eq!(f.replicas, Some(vec![2, 3, 1]));
        assert_eq!(f.isr, Some(vec![2, 1]));
        assert_eq!(f.offline, Some(vec![3]));
        assert_eq!(leader_fields(&view, "t", 1, 0).broker, -1);
        let unknown = leader_fields(&view, "t", 9, 0);
        assert_eq!(
            (unknown.broker, unknown.epoch, unknown.replicas),
            (-1, -1, None)
        );
    }

    #[test]
    fn brokers_carry_their_native_address_and_rack() {
        let view = three_brokers();
        let mut fbb = FlatBufferBuilder::new();
        let brokers = broker_infos(&mut fbb, &view, 4);
        let root = MetadataResponse::create(
            &mut fbb,
            &MetadataResponseArgs {
                brokers: Some(brokers),
                topics: None,
                controller: kafka_id_or_none(view.controller),
                cluster_id: None,
            },
        );
        fbb.finish(root, None);
        let r = flatbuffers::root::<MetadataResponse>(fbb.finished_data()).unwrap();
        assert_eq!(r.controller(), 2);
        let got: Vec<_> = r
            .brokers()
            .unwrap()
            .iter()
            .map(|b| (b.id(), b.port(), b.shards(), b.rack().map(str::to_owned)))
            .collect();
        assert!(r.brokers().unwrap().iter().all(|b| !b.fenced()));
        assert_eq!(
            got,
            [
                (1, 19_191, 4, Some("rack-1".to_owned())),
                (2, 19_192, 2, Some("rack-2".to_owned())),
                (3, 19_193, 2, Some("rack-3".to_owned())),
            ]
        );
    }
}
