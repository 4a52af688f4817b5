//! [`Admin`]: topic administration — create, list, describe, delete, add partitions,
//! alter configs — offset look-ups, and consumer groups — list, describe (with lag),
//! delete, committed offsets, reset offsets.

use std::sync::Arc;
use std::time::Duration;

use strata_schema::{ApiKey, ErrorCode};

use crate::brokers::brokers_from_env;
use crate::call::Call;
use crate::completion::Pending;
use crate::error::{ClientError, Result};
use crate::group_protocol::{self as gp, CommittedOffset, GroupDescription, GroupListing};
use crate::protocol::{self, ClusterDescription, TopicDescription};
use crate::router::Router;

/// How to reach the brokers for administration.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Broker addresses (`host:port`); the first that accepts is used.
    pub brokers: Vec<String>,
    /// Time allowed for each request's response.
    pub request_timeout: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            brokers: brokers_from_env(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Which offset [`Admin::list_offsets`] looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The first offset still in the log (the log start).
    Earliest,
    /// The offset the next record will get (the high watermark).
    Latest,
    /// The first offset whose timestamp is at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    pub(crate) fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => protocol::LIST_OFFSETS_EARLIEST,
            OffsetSpec::Latest => protocol::LIST_OFFSETS_LATEST,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// Where [`Admin::reset_offsets`] moves a group's committed offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    /// The first offset still in each partition.
    Earliest,
    /// The end of each partition: only new records are consumed.
    Latest,
    /// This offset in every partition (clamped to what the partition holds).
    Offset(i64),
    /// The first record at or after this time (ms since the epoch), else the end.
    Timestamp(i64),
}

impl std::str::FromStr for ResetTo {
    type Err = String;

    /// `earliest`, `latest`, an offset, or `@UNIX_MS`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "earliest" | "beginning" => Ok(ResetTo::Earliest),
            "latest" | "end" => Ok(ResetTo::Latest),
            _ => {
                if let Some(ms) = s.strip_prefix('@') {
                    ms.parse().map(ResetTo::Timestamp).map_err(|_| {
                        format!("{s:?}: expected @ followed by milliseconds since the epoch")
                    })
                } else {
                    s.parse().map(ResetTo::Offset).map_err(|_| {
                        format!("{s:?}: expected earliest, latest, an offset or @UNIX_MS")
                    })
                }
            }
        }
    }
}

/// The answer to a [`list_offsets`](Admin::list_offsets) look-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    /// `-1` when no record is at or after a requested timestamp.
    pub offset: i64,
    /// The timestamp of the record at `offset`, or `-1`.
    pub timestamp_ms: i64,
}

/// Administrative client over one connection. Every method returns a [`Call`]:
/// `.await` it, or `.wait()` for it in synchronous code.
pub struct Admin {
    router: Arc<Router>,
    request_timeout: Duration,
}

impl Admin {
    /// Connects to the first reachable broker of `config.brokers`.
    pub fn connect(config: AdminConfig) -> Result<Admin> {
        Ok(Admin {
            router: Arc::new(Router::connect(config.brokers)?),
            request_timeout: config.request_timeout,
        })
    }

    fn call<T>(
        &self,
        api: ApiKey,
        body: Vec<u8>,
        decode: impl FnOnce(&[u8]) -> Result<T> + Send + 'static,
    ) -> Call<T> {
        let pending = match self.router.any() {
            Ok(conn) => conn.request(api, &body, &[], self.request_timeout),
            Err(e) => Pending::ready(Err(e)),
        };
        Call::new(pending, move |response| decode(response.body()))
    }

    /// Creates `name` with `partitions` partitions and topic configs (`key`, `value`).
    pub fn create_topic(&self, name: &str, partitions: u32, configs: &[(&str, &str)]) -> Call<()> {
        self.create_replicated_topic(name, partitions, None, configs)
    }

    /// Creates a topic with `replication_factor` replicas per partition (`None`: the
    /// cluster's `default.replication.factor`; a single node has 1).
    pub fn create_replicated_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: Option<u16>,
        configs: &[(&str, &str)],
    ) -> Call<()> {
        let configs: Vec<(&str, Option<&str>)> =
            configs.iter().map(|(k, v)| (*k, Some(*v))).collect();
        let body = protocol::encode_create_topics(name, partitions, replication_factor, &configs);
        self.call(ApiKey::CreateTopics, body, protocol::decode_create_topics)
    }

    /// Every topic (internal ones too with `include_internal`), sorted by name.
    pub fn list_topics(&self, include_internal: bool) -> Call<Vec<TopicDescription>> {
        let body = protocol::encode_metadata(None, include_internal);
        self.call(ApiKey::Metadata, body, |body| {
            let mut topics = protocol::decode_metadata(body)?
                .into_iter()
                .filter_map(|(_, t)| t.ok())
                .collect::<Vec<_>>();
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(topics)
        })
    }

    /// One topic: partitions (high watermark, log start, size) and effective configs.
    /// An unknown topic is [`ErrorCode::UnknownTopic`].
    pub fn describe_topic(&self, name: &str) -> Call<TopicDescription> {
        let wanted = name.to_owned();
        let body = protocol::encode_metadata(Some(&[name]), true);
        self.call(ApiKey::Metadata, body, move |body| {
            protocol::decode_metadata(body)?
                .into_iter()
                .find(|(n, _)| *n == wanted)
                .map(|(_, t)| t)
                .unwrap_or_else(|| {
                    Err(ClientError::Broker {
                        api: ApiKey::Metadata.name(),
                        code: ErrorCode::UnknownTopic,
                        message: format!("topic `{wanted}` does not exist"),
                    })
                })
        })
    }

    /// Several topics, each with its own result, in the order asked.
    pub fn describe_topics(&self, names: &[&str]) -> Call<Vec<Result<TopicDescription>>> {
        let wanted: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let body = protocol::encode_metadata(Some(names), true);
        self.call(ApiKey::Metadata, body, move |body| {
            let mut found = protocol::decode_metadata(body)?;
            Ok(wanted
                .iter()
                .map(|name| match found.iter().position(|(n, _)| n == name) {
                    Some(i) => found.swap_remove(i).1,
                    None => Err(ClientError::Broker {
                        api: ApiKey::Metadata.name(),
                        code: ErrorCode::UnknownTopic,
                        message: format!("topic `{name}` does not exist"),
                    }),
                })
                .collect())
        })
    }

    /// Reopens the fenced or offline partitions of `name` (one, or all with `None`),
    /// running recovery on each, as `strata topic repair` does; healthy partitions
    /// are left alone.
    pub fn repair_partitions(&self, name: &str, partition: Option<u32>) -> Call<()> {
        let which = partition.map_or_else(|| "all".to_owned(), |p| p.to_string());
        self.alter_config(
            name,
            &[(strata_schema::REPAIR_PARTITIONS_KEY, Some(which.as_str()))],
        )
    }

    /// Deletes `name` and its data.
    pub fn delete_topic(&self, name: &str) -> Call<()> {
        let wanted = name.to_owned();
        let body = protocol::encode_delete_topics(&[name]);
        self.call(ApiKey::DeleteTopics, body, move |body| {
            protocol::decode_delete_topics(body)?
                .into_iter()
                .find(|(n, _)| *n == wanted || n.is_empty())
                .map(|(_, r)| r)
                .unwrap_or_else(|| {
                    Err(ClientError::Protocol(format!(
                        "DeleteTopics response has no result for `{wanted}`"
                    )))
                })
        })
    }

    /// Grows `name` to `total_partitions` partitions (never shrinks).
    pub fn add_partitions(&self, name: &str, total_partitions: u32) -> Call<()> {
        let body = protocol::encode_create_partitions(name, total_partitions);
        self.call(
            ApiKey::CreatePartitions,
            body,
            protocol::decode_create_partitions,
        )
    }

    /// Sets topic configs; a `None` value resets the key to its default.
    pub fn alter_config(&self, name: &str, configs: &[(&str, Option<&str>)]) -> Call<()> {
        let body = protocol::encode_alter_configs(name, configs);
        self.call(ApiKey::AlterConfigs, body, protocol::decode_alter_configs)
    }

    /// The offset of one partition that `spec` names.
    pub fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Call<ListedOffset> {
        let body = protocol::encode_list_offsets(&[(topic, partition, spec.wire())]);
        let wanted = (topic.to_owned(), partition);
        // The partition's leader answers; one that moved is looked up on the next call.
        let pending = match self.router.leader(topic, partition, self.request_timeout) {
            Ok(conn) => conn.request(ApiKey::ListOffsets, &body, &[], self.request_timeout),
            Err(e) => Pending::ready(Err(e)),
        };
        let router = self.router.clone();
        Call::new(pending, move |response| {
            let result = decode_listed_offset(response.body(), &wanted);
            if result.as_ref().is_err_and(ClientError::is_leader_moved) {
                router.invalidate(&wanted.0);
            }
            result
        })
    }

    /// The cluster: its id, controller and brokers, and every topic (internal ones
    /// with `include_internal`) with each partition's leader, epoch, replicas and
    /// in-sync replicas.
    pub fn describe_cluster(&self, include_internal: bool) -> Call<ClusterDescription> {
        let body = protocol::encode_metadata(None, include_internal);
        self.call(ApiKey::Metadata, body, protocol::decode_cluster)
    }

    /// [`describe_cluster`](Self::describe_cluster) for `topics` (all when `None`),
    /// with each partition's replica lag as its leader knows it: one Metadata request
    /// to any broker, then one to every broker that leads some of the partitions.
    /// Blocks; a leader that does not answer leaves its partitions' lag unknown
    /// (empty).
    pub fn describe_replication(&self, topics: Option<&[&str]>) -> Result<ClusterDescription> {
        let body = protocol::encode_metadata(topics, false);
        let mut cluster = self
            .call(ApiKey::Metadata, body, protocol::decode_cluster)
            .wait()?;
        if cluster.brokers.len() <= 1 {
            return Ok(cluster);
        }
        let mut leaders: Vec<i32> = cluster
            .topics
            .iter()
            .filter_map(|(_, t)| t.as_ref().ok())
            .flat_map(|t| t.partitions.iter().map(|p| p.leader_broker))
            .filter(|l| *l >= 0)
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        for leader in leaders {
            let Some(addr) = cluster
                .brokers
                .iter()
                .find(|b| b.id == leader)
                .map(|b| b.addr())
            else {
                continue;
            };
            let led: Vec<String> = cluster
                .topics
                .iter()
                .filter_map(|(_, t)| t.as_ref().ok())
                .filter(|t| t.partitions.iter().any(|p| p.leader_broker == leader))
                .map(|t| t.name.clone())
                .collect();
            let led: Vec<&str> = led.iter().map(String::as_str).collect();
            let body = protocol::encode_metadata(Some(&led), true);
            let answer = self.router.connection_to(&addr).and_then(|conn| {
                conn.request(ApiKey::Metadata, &body, &[], self.request_timeout)
                    .wait()
            });
            let Ok(from_leader) = answer.and_then(|r| protocol::decode_cluster(r.body())) else {
                continue;
            };
            for (name, topic) in &mut cluster.topics {
                let Ok(topic) = topic else { continue };
                let Some(Ok(theirs)) = from_leader
                    .topics
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, t)| t)
                else {
                    continue;
                };
                for p in topic
                    .partitions
                    .iter_mut()
                    .filter(|p| p.leader_broker == leader)
                {
                    if let Some(q) = theirs
                        .partitions
                        .iter()
                        .find(|q| q.partition == p.partition)
                    {
                        if q.replicas == p.replicas {
                            p.replica_lag = q.replica_lag.clone();
                        }
                    }
                }
            }
        }
        Ok(cluster)
    }

    // ---- consumer groups -------------------------------------------------------

    /// Every consumer group, sorted by name.
    pub fn list_groups(&self) -> Call<Vec<GroupListing>> {
        self.call(ApiKey::ListGroups, gp::encode_list_groups(), |body| {
            let mut groups = gp::decode_list_groups(body)?;
            groups.sort_by(|a, b| a.group.cmp(&b.group));
            Ok(groups)
        })
    }

    /// A group's state, members with their assignments, and per-partition committed
    /// offsets and lag. A group that does not exist has state `Dead`.
    pub fn describe_group(&self, group: &str) -> Call<GroupDescription> {
        let body = gp::encode_describe_group(group);
        self.call(ApiKey::DescribeGroup, body, gp::decode_describe_group)
    }

    /// Deletes a group without active members, with its committed offsets.
    pub fn delete_group(&self, group: &str) -> Call<()> {
        let body = gp::encode_delete_group(group);
        self.call(ApiKey::DeleteGroup, body, gp::decode_delete_group)
    }

    /// Every offset `group` has committed.
    pub fn committed_offsets(&self, group: &str) -> Call<Vec<CommittedOffset>> {
        let body = gp::encode_offset_fetch(group, None);
        self.call(ApiKey::OffsetFetch, body, gp::decode_offset_fetch)
    }

    /// Sets `group`'s committed offsets (topic, partition, offset) as an
    /// administrator; the broker refuses while the group has active members.
    pub fn commit_group_offsets(&self, group: &str, offsets: &[(&str, u32, i64)]) -> Call<()> {
        let body = gp::encode_commit(group, "", -1, offsets);
        self.call(ApiKey::OffsetCommit, body, gp::decode_commit)
    }

    /// Moves `group`'s committed offsets of every partition of `topic` to `to`, and
    /// returns (partition, new offset). The group must have no active members.
    /// Blocks the calling thread (several requests in turn).
    pub fn reset_offsets(&self, group: &str, topic: &str, to: ResetTo) -> Result<Vec<(u32, i64)>> {
        let description = self.describe_topic(topic).wait()?;
        let mut offsets = Vec::with_capacity(description.partitions.len());
        for p in &description.partitions {
            let (start, end) = (p.log_start_offset.max(0), p.high_watermark.max(0));
            let offset = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                ResetTo::Offset(o) => o.clamp(start, end.max(start)),
                ResetTo::Timestamp(ms) => {
                    let found = self
                        .list_offsets(topic, p.partition, OffsetSpec::Timestamp(ms))
                        .wait()?;
                    if found.offset < 0 {
                        end
                    } else {
                        found.offset
                    }
                }
            };
            offsets.push((p.partition, offset));
        }
        let triples: Vec<(&str, u32, i64)> = offsets.iter().map(|&(p, o)| (topic, p, o)).collect();
        self.commit_group_offsets(group, &triples).wait()?;
        Ok(offsets)
    }
}

/// One partition's offset from a ListOffsets response.
fn decode_listed_offset(body: &[u8], wanted: &(String, u32)) -> Result<ListedOffset> {
    let (_, _, result) = protocol::decode_list_offsets(body)?
        .into_iter()
        .find(|(t, p, _)| (t.as_str(), *p) == (wanted.0.as_str(), wanted.1))
        .ok_or_else(|| {
            ClientError::Protocol(format!(
                "ListOffsets response has no result for {}/{}",
                wanted.0, wanted.1
            ))
        })?;
    result.map(|(offset, timestamp_ms)| ListedOffset {
        offset,
        timestamp_ms,
    })
}
