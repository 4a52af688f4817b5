//! Where a partition's requests go: each partition's leader and every broker's native
//! address, as the last Metadata answers told them. Pure state without I/O (the
//! [`Router`](crate::router::Router) owns the connections and asks the brokers).
//!
//! Until a Metadata answer lists several brokers, every request goes to the bootstrap
//! connection, exactly as before the client knew about leaders: a single-node broker
//! (or one that does not know its cluster yet) serves everything itself. The table is
//! filled by the look-ups the client makes anyway (partition counts) and by the one a
//! failed request asks for ([`RoutingTable::invalidate`]), so a single broker sees no
//! extra requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use strata_schema::{ApiKey, ErrorCode};

use crate::error::{ClientError, Result};
use crate::protocol::ClusterDescription;

/// Where one partition's requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Any broker: the bootstrap connection (a single broker serves everything).
    Any,
    /// The leader's native listener.
    Leader { broker: i32, addr: String },
}

/// What is known of one topic.
#[derive(Clone, Debug)]
struct TopicRoutes {
    /// The leader's broker id per partition index; -1 = none now.
    leaders: Vec<i32>,
    looked_up: Instant,
    /// A request found the leaders out of date: look them up before the next use.
    stale: bool,
}

/// Leaders and broker addresses from Metadata.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoutingTable {
    /// Native `host:port` by broker id; `None` until a Metadata answer arrived.
    brokers: Option<HashMap<i32, String>>,
    topics: HashMap<String, TopicRoutes>,
    /// A request failed in a way that asks for a look-up before the next one.
    refresh_wanted: bool,
}

/// Whether `host` is a wildcard listen address (0.0.0.0, ::), not a place to connect.
fn is_unspecified(host: &str) -> bool {
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
}

/// The host part of a `host:port` address.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl RoutingTable {
    /// Takes in a Metadata answer received from the broker at `via` (its address
    /// stands in for a broker that advertises a wildcard host).
    pub fn update(&mut self, cluster: &ClusterDescription, via: &str, now: Instant) {
        let brokers = cluster
            .brokers
            .iter()
            .map(|b| {
                let mut b = b.clone();
                if is_unspecified(&b.host) || b.host.is_empty() {
                    b.host = host_of(via).to_owned();
                }
                (b.id, b.addr())
            })
            .collect();
        self.brokers = Some(brokers);
        self.refresh_wanted = false;
        for (name, topic) in &cluster.topics {
            match topic {
                Ok(t) => {
                    let mut leaders = vec![-1; t.partitions.len()];
                    for p in &t.partitions {
                        if let Some(slot) = leaders.get_mut(p.partition as usize) {
                            *slot = p.leader_broker;
                        }
                    }
                    self.topics.insert(
                        name.clone(),
                        TopicRoutes {
                            leaders,
                            looked_up: now,
                            stale: false,
                        },
                    );
                }
                Err(_) => {
                    self.topics.remove(name);
                }
            }
        }
    }

    /// Whether a Metadata answer listed several brokers: requests go to leaders.
    pub fn is_cluster(&self) -> bool {
        self.brokers.as_ref().is_some_and(|b| b.len() > 1)
    }

    /// Whether `topic`'s leaders must be looked up before a request is routed.
    pub fn needs_refresh(&self, topic: &str, now: Instant, max_age: Duration) -> bool {
        if self.refresh_wanted {
            return true;
        }
        if !self.is_cluster() {
            return false;
        }
        self.topics
            .get(topic)
            .is_none_or(|t| t.stale || now.duration_since(t.looked_up) >= max_age)
    }

    /// A request for `topic` found its leader moved (or the broker gone, or the
    /// partition unknown): look it up before the next request.
    pub fn invalidate(&mut self, topic: &str) {
        match self.topics.get_mut(topic) {
            Some(t) => t.stale = true,
            None => self.refresh_wanted = true,
        }
        if !self.is_cluster() {
            self.refresh_wanted = true;
        }
    }

    /// Native addresses of every known broker, by id.
    pub fn broker_addrs(&self) -> Vec<String> {
        let mut brokers: Vec<(&i32, &String)> =
            self.brokers.iter().flat_map(|b| b.iter()).collect();
        brokers.sort();
        brokers.into_iter().map(|(_, a)| a.clone()).collect()
    }

    /// Where requests for `topic`/`partition` go now.
    pub fn route(&self, topic: &str, partition: u32) -> Result<Route> {
        let brokers = match &self.brokers {
            Some(b) if b.len() > 1 => b,
            _ => return Ok(Route::Any),
        };
        let Some(t) = self.topics.get(topic) else {
            return Err(ClientError::Broker {
                api: ApiKey::Metadata.name(),
                code: ErrorCode::UnknownTopic,
                message: format!("topic `{topic}` is not in the cluster's metadata"),
            });
        };
        let Some(&leader) = t.leaders.get(partition as usize) else {
            return Err(ClientError::Broker {
                api: ApiKey::Metadata.name(),
                code: ErrorCode::UnknownPartition,
                message: format!(
                    "topic `{topic}` has {} partitions, not partition {partition}",
                    t.leaders.len()
                ),
            });
        };
        match brokers.get(&leader) {
            Some(addr) => Ok(Route::Leader {
                broker: leader,
                addr: addr.clone(),
            }),
            None => Err(ClientError::Broker {
                api: ApiKey::Metadata.name(),
                code: ErrorCode::NotLeaderOrFollower,
                message: if leader < 0 {
                    format!("{topic}-{partition} has no leader now (an election is under way)")
                } else {
                    format!("{topic}-{partition} is led by broker {leader}, whose address is not known yet")
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BrokerDescription, PartitionDescription, TopicDescription};

    fn broker(id: i32, host: &str, port: u16) -> BrokerDescription {
        BrokerDescription {
            id,
            host: host.into(),
            port,
            rack: None,
            shards: 1,
            fenced: false,
        }
    }

    fn partition(partition: u32, leader_broker: i32) -> PartitionDescription {
        PartitionDescription {
            partition,
            leader_broker,
            leader_shard: 0,
            log_start_offset: 0,
            high_watermark: 0,
            size_bytes: 0,
            error: None,
            leader_epoch: 1,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            offline: vec![],
            replica_lag: vec![],
        }
    }

    fn cluster(brokers: Vec<BrokerDescription>, leaders: &[i32]) -> ClusterDescription {
        ClusterDescription {
            cluster_id: None,
            controller: 1,
            brokers,
            topics: vec![(
                "t".into(),
                Ok(TopicDescription {
                    name: "t".into(),
                    internal: false,
                    partitions: leaders
                        .iter()
                        .enumerate()
                        .map(|(i, l)| partition(i as u32, *l))
                        .collect(),
                    configs: vec![],
                }),
            )],
        }
    }

    #[test]
    fn a_single_broker_serves_everything_without_per_topic_lookups() {
        let mut table = RoutingTable::default();
        let now = Instant::now();
        // Nothing known: the bootstrap connection, and no look-up of its own.
        assert!(!table.needs_refresh("t", now, Duration::ZERO));
        assert_eq!(table.route("t", 0).unwrap(), Route::Any);
        table.update(&cluster(vec![broker(0, "0.0.0.0", 9250)], &[0]), "h:1", now);
        assert_eq!(table.route("t", 0).unwrap(), Route::Any);
        assert_eq!(table.route("other", 7).unwrap(), Route::Any);
        assert!(!table.needs_refresh("other", now, Duration::ZERO));
        // A failed request asks for one look-up (it may have been a leader move).
        table.invalidate("t");
        assert!(table.needs_refresh("other", now, Duration::ZERO));
        table.update(&cluster(vec![broker(0, "h", 9250)], &[0]), "h:1", now);
        assert!(!table.needs_refresh("t", now, Duration::ZERO));
    }

    #[test]
    fn a_cluster_routes_each_partition_to_its_leader_and_refreshes_when_told() {
        let mut table = RoutingTable::default();
        let now = Instant::now();
        let brokers = vec![
            broker(1, "10.0.0.1", 9001),
            broker(2, "0.0.0.0", 9002),
            broker(3, "::1", 9003),
        ];
        table.update(&cluster(brokers.clone(), &[1, 2, 3, -1]), "boot:9", now);
        let addr = |table: &RoutingTable, p| match table.route("t", p).unwrap() {
            Route::Leader { addr, .. } => addr,
            Route::Any => panic!("a cluster routes to leaders"),
        };
        assert_eq!(addr(&table, 0), "10.0.0.1:9001");
        assert_eq!(
            addr(&table, 1),
            "boot:9002",
            "a wildcard host is the bootstrap host"
        );
        assert_eq!(addr(&table, 2), "[::1]:9003");
        let e = table.route("t", 3).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NotLeaderOrFollower));
        assert!(e.is_retriable() && e.is_leader_moved(), "{e}");
        let e = table.route("t", 4).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownPartition));
        assert_eq!(
            table.route("nope", 0).unwrap_err().code(),
            Some(ErrorCode::UnknownTopic)
        );

        let max_age = Duration::from_secs(60);
        assert!(!table.needs_refresh("t", now, max_age));
        assert!(table.needs_refresh("t", now + max_age, max_age));
        assert!(table.needs_refresh("nope", now, max_age));
        table.invalidate("t");
        assert!(table.needs_refresh("t", now, max_age));
        // The new leader of partition 0 after a failover.
        table.update(&cluster(brokers, &[2, 2, 3, 1]), "boot:9", now);
        assert!(!table.needs_refresh("t", now, max_age));
        assert_eq!(addr(&table, 0), "boot:9002");
        assert_eq!(addr(&table, 3), "10.0.0.1:9001");
        assert_eq!(
            table.broker_addrs(),
            vec!["10.0.0.1:9001", "boot:9002", "[::1]:9003"]
        );
    }
}
