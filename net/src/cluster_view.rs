//! What clients are told about the cluster: the brokers and their endpoints, the
//! controller, and each partition's leader, leader epoch, replicas and in-sync set.
//!
//! A `ClusterView` is an immutable snapshot every shard holds as an `Arc` (through a
//! `SnapshotCell`, as topic metadata reaches shards) and replaces whole when the
//! cluster changes. Kafka Metadata, DescribeCluster, FindCoordinator and the native
//! Metadata answer from it, so they agree with each other. A single-node broker's
//! view is built from its own endpoints once: it leads every partition at leader
//! epoch `SINGLE_NODE_LEADER_EPOCH`, so that view needs no per-partition entries and
//! does not change when topics do.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::cluster_config::NodeId;
use crate::config::BrokerConfig;

/// The leader epoch of every partition of a single-node broker: one leader, which
/// never changes.
pub const SINGLE_NODE_LEADER_EPOCH: i32 = 0;
/// The Kafka node id that means "none" (no leader, no controller).
pub const NO_NODE_KAFKA_ID: i32 = -1;

/// One broker as clients reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub id: NodeId,
    /// The host Kafka clients are told to connect to (advertised).
    pub kafka_host: String,
    pub kafka_port: u16,
    /// The native protocol listener.
    pub native_addr: SocketAddr,
    pub rack: Option<String>,
    /// Shards (cores) of that broker; 0 = not known.
    pub shards: u32,
    /// Fenced by the controller (silent too long): still listed, not a leader.
    pub fenced: bool,
}

impl BrokerEndpoint {
    /// The id as Kafka clients see it (node ids fit `int32`: see `cluster_config`).
    pub fn kafka_id(&self) -> i32 {
        kafka_id(self.id)
    }
}

/// One partition as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    /// `None` while no replica leads (an election is under way, or none is alive).
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub replicas: Vec<NodeId>,
    /// The in-sync replicas (the leader included).
    pub isr: Vec<NodeId>,
    /// Replicas whose broker is down or whose log is offline.
    pub offline: Vec<NodeId>,
}

impl PartitionView {
    /// A partition led by `node` alone.
    pub fn led_by(node: NodeId, leader_epoch: i32) -> PartitionView {
        PartitionView {
            leader: Some(node),
            leader_epoch,
            replicas: vec![node],
            isr: vec![node],
            offline: Vec::new(),
        }
    }

    /// A partition nobody leads and nobody is known to hold: what a view answers for
    /// an index it has no entry for.
    pub fn unknown() -> PartitionView {
        PartitionView {
            leader: None,
            leader_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            offline: Vec::new(),
        }
    }
}

/// The cluster as this broker knows it now.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// This broker's node id (a single-node broker: its `broker_id`).
    pub local: NodeId,
    /// The active controller; `None` while the quorum has no leader.
    pub controller: Option<NodeId>,
    /// Every registered broker, by ascending id.
    pub brokers: Vec<BrokerEndpoint>,
    /// Each topic's partitions, by index.
    partitions: HashMap<String, Vec<PartitionView>>,
    /// Single-node: the answer for every partition (this broker leads them all).
    every_partition: Option<PartitionView>,
}

impl ClusterView {
    /// A view with these brokers and no partitions yet (add them with `set_topic` /
    /// `set_partition`).
    pub fn new(
        local: NodeId,
        controller: Option<NodeId>,
        mut brokers: Vec<BrokerEndpoint>,
    ) -> Self {
        brokers.sort_by_key(|b| b.id);
        ClusterView {
            local,
            controller,
            brokers,
            partitions: HashMap::new(),
            every_partition: None,
        }
    }

    /// The view of a single-node broker: itself, its own controller, leading every
    /// partition.
    pub fn single_node(local: BrokerEndpoint) -> Self {
        let id = local.id;
        ClusterView {
            every_partition: Some(PartitionView::led_by(id, SINGLE_NODE_LEADER_EPOCH)),
            ..ClusterView::new(id, Some(id), vec![local])
        }
    }

    /// The single-node view of a broker started with `config`, with `shards` shards
    /// (a cluster member's view until the cluster's metadata reaches it).
    pub fn of_single_node(config: &BrokerConfig, shards: u32) -> Self {
        let (kafka_host, kafka_port) = kafka_endpoint(config);
        ClusterView::single_node(BrokerEndpoint {
            // `broker_id` is range-checked to 0..=i32::MAX (`broker_settings`).
            id: NodeId::try_from(config.broker_id).unwrap_or(0),
            kafka_host,
            kafka_port,
            native_addr: config.listen,
            rack: config.cluster.as_ref().and_then(|c| c.rack.clone()),
            shards,
            fenced: false,
        })
    }

    /// Replaces a topic's partitions (index = partition).
    pub fn set_topic(&mut self, topic: &str, partitions: Vec<PartitionView>) {
        self.partitions.insert(topic.to_owned(), partitions);
    }

    /// Sets one partition; indexes below it that have no entry yet are `unknown`.
    pub fn set_partition(&mut self, topic: &str, partition: u32, view: PartitionView) {
        let parts = self.partitions.entry(topic.to_owned()).or_default();
        let i = partition as usize;
        if parts.len() <= i {
            parts.resize(i + 1, PartitionView::unknown());
        }
        parts[i] = view;
    }

    /// A partition's view; `None` when the view does not know it (a topic the
    /// cluster has not placed yet).
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionView> {
        self.partitions
            .get(topic)
            .and_then(|parts| parts.get(partition as usize))
            .or(self.every_partition.as_ref())
    }

    /// Who leads a partition now.
    pub fn leader_of(&self, topic: &str, partition: u32) -> Option<NodeId> {
        self.partition(topic, partition).and_then(|p| p.leader)
    }

    /// A broker by id.
    pub fn broker(&self, id: NodeId) -> Option<&BrokerEndpoint> {
        self.brokers
            .binary_search_by_key(&id, |b| b.id)
            .ok()
            .map(|i| &self.brokers[i])
    }

    /// This broker's own entry.
    pub fn local_broker(&self) -> Option<&BrokerEndpoint> {
        self.broker(self.local)
    }

    /// The endpoint of a partition's leader, when it has one the view knows.
    pub fn leader_endpoint(&self, topic: &str, partition: u32) -> Option<&BrokerEndpoint> {
        self.leader_of(topic, partition)
            .and_then(|id| self.broker(id))
    }

    /// Whether this broker leads a partition.
    pub fn is_local_leader(&self, topic: &str, partition: u32) -> bool {
        self.leader_of(topic, partition) == Some(self.local)
    }
}

/// A node id as Kafka clients see it: node ids are at most `i32::MAX`
/// (`cluster_config::NODE_ID_MAX`); anything else would be a bug, shown as "none".
pub fn kafka_id(id: NodeId) -> i32 {
    i32::try_from(id).unwrap_or(NO_NODE_KAFKA_ID)
}

/// An optional node as Kafka clients see it: -1 for none.
pub fn kafka_id_or_none(id: Option<NodeId>) -> i32 {
    id.map_or(NO_NODE_KAFKA_ID, kafka_id)
}

/// The `host:port` Kafka clients are told to connect to: the advertised address,
/// else the Kafka listener, else the native one.
pub fn kafka_endpoint(config: &BrokerConfig) -> (String, u16) {
    if let Some((host, port)) = config
        .kafka_advertised
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
    {
        return (host.to_owned(), port);
    }
    match config.kafka_listen {
        Some(addr) => (addr.ip().to_string(), addr.port()),
        None => (config.listen.ip().to_string(), config.listen.port()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Broker `id` of a hand-built test cluster: Kafka on 127.0.0.1:19090+id.
    pub(crate) fn endpoint(id: NodeId) -> BrokerEndpoint {
        BrokerEndpoint {
            id,
            kafka_host: "127.0.0.1".to_owned(),
            kafka_port: 19_090 + id as u16,
            native_addr: SocketAddr::from(([127, 0, 0, 1], 19_190 + id as u16)),
            rack: Some(format!("rack-{id}")),
            shards: 2,
            fenced: false,
        }
    }

    /// Three brokers seen from broker 1, controller 2; topic `t` partition 0 led by
    /// 2 at epoch 7 on replicas [2, 3, 1] with broker 3 out of sync and offline,
    /// partition 1 with no leader.
    pub(crate) fn three_brokers() -> ClusterView {
        let mut view = ClusterView::new(1, Some(2), vec![endpoint(3), endpoint(1), endpoint(2)]);
        view.set_partition(
            "t",
            0,
            PartitionView {
                leader: Some(2),
                leader_epoch: 7,
                replicas: vec![2, 3, 1],
                isr: vec![2, 1],
                offline: vec![3],
            },
        );
        view.set_partition(
            "t",
            1,
            PartitionView {
                leader: None,
                leader_epoch: 8,
                replicas: vec![3, 1, 2],
                isr: vec![],
                offline: vec![3],
            },
        );
        view
    }

    #[test]
    fn a_single_node_leads_everything() {
        let config = BrokerConfig {
            broker_id: 4,
            kafka_listen: Some("127.0.0.1:9092".parse().unwrap()),
            ..BrokerConfig::default()
        };
        let view = ClusterView::of_single_node(&config, 2);
        assert_eq!(view.local, 4);
        assert_eq!(view.controller, Some(4));
        assert_eq!(view.leader_of("any", 17), Some(4));
        let p = view.partition("any", 0).unwrap();
        assert_eq!(p.leader_epoch, SINGLE_NODE_LEADER_EPOCH);
        assert_eq!(
            (p.replicas.as_slice(), p.isr.as_slice()),
            (&[4][..], &[4][..])
        );
        let me = view.local_broker().unwrap();
        assert_eq!((me.kafka_host.as_str(), me.kafka_port), ("127.0.0.1", 9092));
        assert_eq!(me.native_addr, config.listen);
        assert!(view.is_local_leader("x", 0));
    }

    #[test]
    fn a_cluster_view_answers_per_partition() {
        let view = three_brokers();
        assert_eq!(
            view.brokers.iter().map(|b| b.id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(view.leader_of("t", 0), Some(2));
        assert_eq!(view.leader_endpoint("t", 0).unwrap().kafka_port, 19_092);
        assert_eq!(view.leader_of("t", 1), None);
        assert!(view.partition("t", 2).is_none());
        assert!(view.partition("other", 0).is_none());
        assert!(view.broker(9).is_none());
        assert!(!view.is_local_leader("t", 0));
        let mut view = view;
        view.set_partition("u", 2, PartitionView::led_by(1, 3));
        assert_eq!(view.partition("u", 0), Some(&PartitionView::unknown()));
        assert!(view.is_local_leader("u", 2));
    }

    #[test]
    fn kafka_ids() {
        assert_eq!(kafka_id(5), 5);
        assert_eq!(kafka_id(u64::MAX), NO_NODE_KAFKA_ID);
        assert_eq!(kafka_id_or_none(None), -1);
    }
}
