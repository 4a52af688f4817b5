//! Which cluster a broker belongs to: `ClusterConfig`, from `strata serve --node-id N
//! --cluster-listen HOST:PORT --voters 1@HOST:PORT,… --rack R` or the config file's
//! `node.id`, `cluster.listen`, `controller.quorum.voters` and `broker.rack`.
//!
//! A broker with none of these is today's single-node broker. The config file's
//! `node.id` alone keeps meaning what it meant before clusters (the id Kafka clients
//! see), so an existing single-node config file keeps working; the `--node-id` flag
//! is new and means a cluster member, so it needs `--cluster-listen`.

use std::net::{SocketAddr, ToSocketAddrs};

pub use strata_raft::NodeId;

/// Highest node id: Kafka clients see node ids as `int32`.
pub const NODE_ID_MAX: NodeId = i32::MAX as NodeId;
/// Most controller voters a cluster may name (a quorum is a handful of brokers; this
/// only bounds what a mistyped list can make the broker hold).
pub const VOTERS_MAX: usize = 64;
/// Longest `broker.rack` accepted (Kafka sends racks as strings; this bounds them).
pub const RACK_BYTES_MAX: usize = 255;

/// This broker's place in a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This broker's id: 1..=`NODE_ID_MAX`, also its Kafka broker id.
    pub node_id: NodeId,
    /// The broker-to-broker listener (replication and controller traffic).
    pub cluster_listen: SocketAddr,
    /// The controller quorum: each voter's id and cluster-listen address, as given.
    pub voters: Vec<(NodeId, SocketAddr)>,
    /// `broker.rack`, for rack-aware placement and follower fetching.
    pub rack: Option<String>,
}

impl ClusterConfig {
    /// Whether this broker is one of the controller voters.
    pub fn is_voter(&self) -> bool {
        self.voters.iter().any(|(id, _)| *id == self.node_id)
    }

    /// The Kafka broker id of this node (`node_id` is at most `NODE_ID_MAX`).
    pub fn kafka_broker_id(&self) -> i32 {
        i32::try_from(self.node_id).unwrap_or(i32::MAX)
    }

    /// Checks the invariants `ClusterSettings::resolve` establishes, for a
    /// `ClusterConfig` built another way.
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        check_node_id(self.node_id, &self.node_id.to_string())?;
        check_voters(&self.voters)?;
        if let Some((_, addr)) = self.voters.iter().find(|(id, _)| *id == self.node_id) {
            if *addr != self.cluster_listen {
                return Err(ClusterConfigError::SelfVoterAddress {
                    node_id: self.node_id,
                    voter_addr: *addr,
                    cluster_listen: self.cluster_listen,
                });
            }
        }
        if let Some(rack) = &self.rack {
            check_rack(rack)?;
        }
        Ok(())
    }
}

/// Why the cluster settings cannot be taken. Messages name the flag and the config
/// key, since either may have set the value.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ClusterConfigError {
    #[error("node id `{value}` (--node-id / node.id) is not a number from 1 to {NODE_ID_MAX}")]
    NodeId { value: String },
    #[error("--voters / controller.quorum.voters entry {index} `{entry}` is not ID@HOST:PORT (like 1@127.0.0.1:9093): {reason}")]
    Voter {
        /// 1-based position in the list.
        index: usize,
        entry: String,
        reason: String,
    },
    #[error("--voters / controller.quorum.voters is empty: name the controller quorum as ID@HOST:PORT,…")]
    NoVoters,
    #[error("--voters / controller.quorum.voters names {count} voters; at most {VOTERS_MAX}")]
    TooManyVoters { count: usize },
    #[error("--voters / controller.quorum.voters names node id {node_id} twice")]
    DuplicateVoterId { node_id: NodeId },
    #[error("--voters / controller.quorum.voters names address {addr} twice (voters {first} and {second})")]
    DuplicateVoterAddress {
        addr: SocketAddr,
        first: NodeId,
        second: NodeId,
    },
    #[error("--cluster-listen / cluster.listen `{value}` is not a HOST:PORT: {reason}")]
    ClusterListen { value: String, reason: String },
    #[error("--voters / controller.quorum.voters needs --node-id / node.id (this broker's id)")]
    VotersWithoutNodeId,
    #[error("--node-id needs --cluster-listen / cluster.listen (the broker-to-broker address)")]
    NodeIdWithoutClusterListen,
    #[error("--cluster-listen / cluster.listen needs --node-id / node.id (this broker's id)")]
    ClusterListenWithoutNodeId,
    #[error("--cluster-listen / cluster.listen needs --voters / controller.quorum.voters (the controller quorum, e.g. 1@127.0.0.1:9093)")]
    ClusterListenWithoutVoters,
    #[error(
        "--rack / broker.rack needs a cluster: give --node-id, --cluster-listen and --voters too"
    )]
    RackWithoutCluster,
    #[error("--rack / broker.rack `{value}` must be 1 to {RACK_BYTES_MAX} bytes of letters, digits, `.`, `_` or `-`")]
    Rack { value: String },
    #[error("voter {node_id} is this broker, but its address {voter_addr} is not --cluster-listen / cluster.listen {cluster_listen}")]
    SelfVoterAddress {
        node_id: NodeId,
        voter_addr: SocketAddr,
        cluster_listen: SocketAddr,
    },
}

/// The cluster settings as they arrive (config file lines, then flags over them),
/// before they are checked together by [`ClusterSettings::resolve`].
#[derive(Clone, Debug, Default)]
pub struct ClusterSettings {
    /// `--node-id` (cluster mode only).
    pub node_id_flag: Option<NodeId>,
    /// The config file's `node.id` / `broker.id`, which also sets the Kafka broker id
    /// of a single-node broker.
    pub node_id_file: Option<NodeId>,
    pub cluster_listen: Option<SocketAddr>,
    pub voters: Option<Vec<(NodeId, SocketAddr)>>,
    pub rack: Option<String>,
}

impl ClusterSettings {
    /// Takes a config-file line if it is a cluster key (`Ok(false)`: it is not).
    /// `node.id` / `broker.id` are noted and still answered `false`, because they keep
    /// setting the Kafka broker id (`broker_settings`).
    pub fn apply_file_key(&mut self, key: &str, value: &str) -> Result<bool, ClusterConfigError> {
        let v = value.trim();
        match key {
            "node.id" | "broker.id" => {
                // broker_settings range-checks it for single-node use (0 allowed);
                // cluster ids are checked in `resolve`.
                self.node_id_file = v.parse().ok();
                Ok(false)
            }
            "cluster.listen" => {
                self.cluster_listen = Some(parse_cluster_listen(v)?);
                Ok(true)
            }
            "controller.quorum.voters" => {
                self.voters = Some(parse_voters(v)?);
                Ok(true)
            }
            "broker.rack" => {
                self.rack = Some(parse_rack(v)?);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The cluster this broker belongs to, or `None` for a single-node broker.
    pub fn resolve(self) -> Result<Option<ClusterConfig>, ClusterConfigError> {
        let clustered =
            self.node_id_flag.is_some() || self.cluster_listen.is_some() || self.voters.is_some();
        if !clustered {
            if self.rack.is_some() {
                return Err(ClusterConfigError::RackWithoutCluster);
            }
            return Ok(None);
        }
        let Some(node_id) = self.node_id_flag.or(self.node_id_file) else {
            return Err(match self.cluster_listen {
                Some(_) => ClusterConfigError::ClusterListenWithoutNodeId,
                None => ClusterConfigError::VotersWithoutNodeId,
            });
        };
        check_node_id(node_id, &node_id.to_string())?;
        let Some(cluster_listen) = self.cluster_listen else {
            return Err(ClusterConfigError::NodeIdWithoutClusterListen);
        };
        let Some(voters) = self.voters else {
            return Err(ClusterConfigError::ClusterListenWithoutVoters);
        };
        let config = ClusterConfig {
            node_id,
            cluster_listen,
            voters,
            rack: self.rack,
        };
        config.validate()?;
        Ok(Some(config))
    }
}

/// A node id: 1..=`NODE_ID_MAX`.
pub fn parse_node_id(value: &str) -> Result<NodeId, ClusterConfigError> {
    let id: NodeId = value
        .trim()
        .parse()
        .map_err(|_| ClusterConfigError::NodeId {
            value: value.to_owned(),
        })?;
    check_node_id(id, value)?;
    Ok(id)
}

fn check_node_id(id: NodeId, value: &str) -> Result<(), ClusterConfigError> {
    if id == 0 || id > NODE_ID_MAX {
        return Err(ClusterConfigError::NodeId {
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// `HOST:PORT`, resolved (blocking: settings are read before the broker starts); an
/// IPv4 address is preferred when a name has several.
fn resolve_host_port(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err("expected HOST:PORT".to_owned());
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port `{port}` is not a number from 0 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let all: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host `{host}`: {e}"))?
        .collect();
    all.iter()
        .copied()
        .find(SocketAddr::is_ipv4)
        .or_else(|| all.first().copied())
        .ok_or_else(|| format!("host `{host}` has no address"))
}

/// The broker-to-broker listen address.
pub fn parse_cluster_listen(value: &str) -> Result<SocketAddr, ClusterConfigError> {
    let addr =
        resolve_host_port(value.trim()).map_err(|reason| ClusterConfigError::ClusterListen {
            value: value.to_owned(),
            reason,
        })?;
    if addr.port() == 0 {
        return Err(ClusterConfigError::ClusterListen {
            value: value.to_owned(),
            reason: "port 0 cannot be named by the other brokers".to_owned(),
        });
    }
    Ok(addr)
}

/// `ID@HOST:PORT,ID@HOST:PORT,…`: ids and addresses unique.
pub fn parse_voters(value: &str) -> Result<Vec<(NodeId, SocketAddr)>, ClusterConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ClusterConfigError::NoVoters);
    }
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.len() > VOTERS_MAX {
        return Err(ClusterConfigError::TooManyVoters {
            count: entries.len(),
        });
    }
    let mut voters = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let bad = |reason: String| ClusterConfigError::Voter {
            index: i + 1,
            entry: (*entry).to_owned(),
            reason,
        };
        let Some((id, addr)) = entry.split_once('@') else {
            return Err(bad("no `@` between the id and the address".to_owned()));
        };
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| bad(format!("id `{id}` is not a number")))?;
        if id == 0 || id > NODE_ID_MAX {
            return Err(bad(format!("id {id} is not from 1 to {NODE_ID_MAX}")));
        }
        let addr = resolve_host_port(addr.trim()).map_err(bad)?;
        if addr.port() == 0 {
            return Err(bad("port 0 cannot be dialled".to_owned()));
        }
        voters.push((id, addr));
    }
    check_voters(&voters)?;
    Ok(voters)
}

fn check_voters(voters: &[(NodeId, SocketAddr)]) -> Result<(), ClusterConfigError> {
    if voters.is_empty() {
        return Err(ClusterConfigError::NoVoters);
    }
    if voters.len() > VOTERS_MAX {
        return Err(ClusterConfigError::TooManyVoters {
            count: voters.len(),
        });
    }
    for (i, (id, addr)) in voters.iter().enumerate() {
        if let Some((first, _)) = voters[..i].iter().find(|(other, _)| other == id) {
            return Err(ClusterConfigError::DuplicateVoterId { node_id: *first });
        }
        if let Some((first, _)) = voters[..i].iter().find(|(_, other)| other == addr) {
            return Err(ClusterConfigError::DuplicateVoterAddress {
                addr: *addr,
                first: *first,
                second: *id,
            });
        }
    }
    Ok(())
}

/// A rack name: what Kafka accepts in practice, bounded.
pub fn parse_rack(value: &str) -> Result<String, ClusterConfigError> {
    let rack = value.trim();
    check_rack(rack)?;
    Ok(rack.to_owned())
}

fn check_rack(rack: &str) -> Result<(), ClusterConfigError> {
    let ok = !rack.is_empty()
        && rack.len() <= RACK_BYTES_MAX
        && rack
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(ClusterConfigError::Rack {
            value: rack.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn settings(
        node: Option<NodeId>,
        listen: Option<&str>,
        voters: Option<&str>,
    ) -> ClusterSettings {
        ClusterSettings {
            node_id_flag: node,
            cluster_listen: listen.map(addr),
            voters: voters.map(|v| parse_voters(v).unwrap()),
            ..ClusterSettings::default()
        }
    }

    #[test]
    fn no_settings_is_a_single_node_broker() {
        assert_eq!(ClusterSettings::default().resolve(), Ok(None));
        // The config file's node.id alone keeps its single-node meaning.
        let file_only = ClusterSettings {
            node_id_file: Some(3),
            ..ClusterSettings::default()
        };
        assert_eq!(file_only.resolve(), Ok(None));
    }

    #[test]
    fn a_full_cluster_member_resolves() {
        let s = ClusterSettings {
            rack: Some("r1".into()),
            ..settings(
                Some(2),
                Some("127.0.0.1:9302"),
                Some("1@127.0.0.1:9301, 2@127.0.0.1:9302,3@127.0.0.1:9303"),
            )
        };
        let c = s.resolve().unwrap().unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.cluster_listen, addr("127.0.0.1:9302"));
        assert_eq!(c.voters.len(), 3);
        assert_eq!(c.voters[2], (3, addr("127.0.0.1:9303")));
        assert_eq!(c.rack.as_deref(), Some("r1"));
        assert!(c.is_voter());
        assert_eq!(c.kafka_broker_id(), 2);
    }

    #[test]
    fn a_non_voter_names_the_quorum() {
        let c = settings(Some(4), Some("127.0.0.1:9304"), Some("1@127.0.0.1:9301"))
            .resolve()
            .unwrap()
            .unwrap();
        assert!(!c.is_voter());
    }

    #[test]
    fn the_file_node_id_serves_a_cluster_member() {
        let s = ClusterSettings {
            node_id_file: Some(1),
            ..settings(None, Some("127.0.0.1:9301"), Some("1@127.0.0.1:9301"))
        };
        assert_eq!(s.resolve().unwrap().unwrap().node_id, 1);
        // The flag wins over the file.
        let s = ClusterSettings {
            node_id_file: Some(1),
            ..settings(Some(5), Some("127.0.0.1:9305"), Some("1@127.0.0.1:9301"))
        };
        assert_eq!(s.resolve().unwrap().unwrap().node_id, 5);
    }

    #[test]
    fn voter_entries_that_do_not_parse_are_named() {
        for (list, index) in [
            ("1@127.0.0.1:9301,x@127.0.0.1:9302", 2),
            ("1127.0.0.1:9301", 1),
            ("1@127.0.0.1", 1),
            ("1@127.0.0.1:9301,2@127.0.0.1:99999", 2),
            ("0@127.0.0.1:9301", 1),
            (
                "1@127.0.0.1:9301,2@127.0.0.1:9302,2147483648@127.0.0.1:9303",
                3,
            ),
            ("1@:9301", 1),
            ("1@127.0.0.1:0", 1),
        ] {
            match parse_voters(list) {
                Err(e @ ClusterConfigError::Voter { index: i, .. }) => {
                    assert_eq!(i, index, "{list}: {e}");
                    let text = e.to_string();
                    assert!(text.contains("ID@HOST:PORT"), "{text}");
                    assert!(text.contains(&format!("entry {index}")), "{text}");
                }
                other => panic!("{list}: {other:?}"),
            }
        }
        assert_eq!(parse_voters(" "), Err(ClusterConfigError::NoVoters));
    }

    #[test]
    fn duplicate_voters_are_refused() {
        assert_eq!(
            parse_voters("1@127.0.0.1:9301,1@127.0.0.1:9302"),
            Err(ClusterConfigError::DuplicateVoterId { node_id: 1 })
        );
        assert_eq!(
            parse_voters("1@127.0.0.1:9301,2@127.0.0.1:9301"),
            Err(ClusterConfigError::DuplicateVoterAddress {
                addr: addr("127.0.0.1:9301"),
                first: 1,
                second: 2,
            })
        );
        let many = (1..=VOTERS_MAX + 1)
            .map(|i| format!("{i}@127.0.0.1:{}", 10_000 + i))
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            parse_voters(&many),
            Err(ClusterConfigError::TooManyVoters { .. })
        ));
    }

    #[test]
    fn missing_pieces_are_named() {
        assert_eq!(
            settings(None, None, Some("1@127.0.0.1:9301")).resolve(),
            Err(ClusterConfigError::VotersWithoutNodeId)
        );
        assert_eq!(
            settings(Some(1), None, Some("1@127.0.0.1:9301")).resolve(),
            Err(ClusterConfigError::NodeIdWithoutClusterListen)
        );
        assert_eq!(
            settings(Some(1), None, None).resolve(),
            Err(ClusterConfigError::NodeIdWithoutClusterListen)
        );
        assert_eq!(
            settings(None, Some("127.0.0.1:9301"), None).resolve(),
            Err(ClusterConfigError::ClusterListenWithoutNodeId)
        );
        assert_eq!(
            settings(Some(1), Some("127.0.0.1:9301"), None).resolve(),
            Err(ClusterConfigError::ClusterListenWithoutVoters)
        );
        let rack_only = ClusterSettings {
            rack: Some("r1".into()),
            ..ClusterSettings::default()
        };
        assert_eq!(
            rack_only.resolve(),
            Err(ClusterConfigError::RackWithoutCluster)
        );
    }

    #[test]
    fn a_self_voter_must_use_the_cluster_listen_address() {
        assert_eq!(
            settings(Some(1), Some("127.0.0.1:9309"), Some("1@127.0.0.1:9301")).resolve(),
            Err(ClusterConfigError::SelfVoterAddress {
                node_id: 1,
                voter_addr: addr("127.0.0.1:9301"),
                cluster_listen: addr("127.0.0.1:9309"),
            })
        );
    }

    #[test]
    fn node_ids_are_1_to_i32_max() {
        assert_eq!(parse_node_id("1"), Ok(1));
        assert_eq!(parse_node_id("2147483647"), Ok(NODE_ID_MAX));
        for bad in ["0", "2147483648", "-1", "x", ""] {
            assert!(
                matches!(parse_node_id(bad), Err(ClusterConfigError::NodeId { .. })),
                "{bad}"
            );
        }
        // A file node id of 0 (valid single-node) is refused once it names a cluster member.
        let s = ClusterSettings {
            node_id_file: Some(0),
            ..settings(None, Some("127.0.0.1:9301"), Some("1@127.0.0.1:9301"))
        };
        assert!(matches!(
            s.resolve(),
            Err(ClusterConfigError::NodeId { .. })
        ));
    }

    #[test]
    fn file_keys_are_taken() {
        let mut s = ClusterSettings::default();
        assert_eq!(s.apply_file_key("node.id", "2"), Ok(false));
        assert_eq!(
            s.apply_file_key("cluster.listen", "127.0.0.1:9302"),
            Ok(true)
        );
        assert_eq!(
            s.apply_file_key(
                "controller.quorum.voters",
                "1@127.0.0.1:9301,2@127.0.0.1:9302"
            ),
            Ok(true)
        );
        assert_eq!(s.apply_file_key("broker.rack", "eu-west-1a"), Ok(true));
        assert_eq!(s.apply_file_key("num.partitions", "3"), Ok(false));
        let c = s.resolve().unwrap().unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.rack.as_deref(), Some("eu-west-1a"));
        let mut s = ClusterSettings::default();
        assert!(matches!(
            s.apply_file_key("broker.rack", "a b"),
            Err(ClusterConfigError::Rack { .. })
        ));
        assert!(matches!(
            s.apply_file_key("cluster.listen", "nowhere"),
            Err(ClusterConfigError::ClusterListen { .. })
        ));
    }

    #[test]
    fn host_names_resolve() {
        let v = parse_voters("1@localhost:9301").unwrap();
        assert_eq!(v[0].1.port(), 9301);
        assert!(v[0].1.ip().is_loopback());
    }
}
