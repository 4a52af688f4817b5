//! DescribeLogDirs and AlterReplicaLogDirs: a broker keeps every partition replica it
//! hosts in its one data dir, so it describes that one dir — each hosted partition's
//! size on disk and offset lag, and (v4) the filesystem's total and usable bytes —
//! and a move between dirs is a no-op to the data dir itself and LOG_DIR_NOT_FOUND to
//! any other path, as a Kafka broker with a single `log.dirs` entry answers.
//!
//! "Hosted" is every partition on a single node, and in a cluster the partitions
//! whose replicas name this broker. The offset lag is Kafka's: how far the log end
//! trails the high watermark this replica knows (0 once it has everything committed).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, ApiKey, DescribeLogDirsRequest,
    DescribeLogDirsResponse,
};

use super::admin::{str_bytes, topic_name};
use super::dispatch::call;
use super::errors::KafkaCode;
use super::{Ctx, ServedApi};
use crate::broker::{scatter, Broker};
use crate::errors::WireError;
use crate::metadata::Topics;
use crate::response::Response;

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[
    ServedApi::new(ApiKey::AlterReplicaLogDirs, 1, 2),
    ServedApi::new(ApiKey::DescribeLogDirs, 1, 4),
];

/// Most partitions one DescribeLogDirs answer lists (a broker hosts at most this many
/// worth describing in one response; the rest are left out).
const DESCRIBED_PARTITIONS_MAX: usize = 100_000;

/// Answers a request of one of [`APIS`].
pub(crate) async fn serve(ctx: &Ctx, body: Bytes) -> Response {
    match ctx.api {
        ApiKey::DescribeLogDirs => call!(ctx, body, describe_log_dirs),
        ApiKey::AlterReplicaLogDirs => call!(ctx, body, alter_replica_log_dirs),
        _ => super::dispatch::unsupported(ctx.correlation_id, KafkaCode::UnsupportedVersion),
    }
}

/// The data dir as clients are told of it: absolute when it can be made so.
fn data_dir_name(dir: &Path) -> String {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// Whether this broker hosts a replica of `topic`-`partition`.
fn hosts(broker: &Broker, topics: &Topics, topic: &str, partition: u32) -> bool {
    let Some(meta) = topics.get(topic) else {
        return false;
    };
    if partition >= meta.partitions {
        return false;
    }
    match &broker.config.cluster {
        None => true,
        Some(c) => meta
            .replicas
            .get(partition as usize)
            .is_some_and(|r| r.contains(&c.node_id)),
    }
}

/// (size on disk, offset lag) of a hosted partition, on its owner shard.
async fn describe_partition(
    broker: Rc<Broker>,
    (topic, partition): (String, u32),
) -> Result<(i64, i64), WireError> {
    let log = broker.log(&topic, partition).await?;
    let size = i64::try_from(log.size_bytes()).unwrap_or(i64::MAX);
    let lag = (log.high_watermark() - log.log_end_offset()).max(0);
    Ok((size, lag))
}

/// (total, usable) bytes of the filesystem holding `dir`, or -1 each when unknown.
async fn filesystem_bytes(dir: &Path) -> (i64, i64) {
    let dir: PathBuf = dir.to_path_buf();
    let stat = glommio::executor()
        .spawn_blocking(move || crate::disk_space::statvfs_bytes(&dir))
        .await;
    match stat {
        Ok((free, total)) => (
            i64::try_from(total).unwrap_or(i64::MAX),
            i64::try_from(free).unwrap_or(i64::MAX),
        ),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the data dir's filesystem size");
            (-1, -1)
        }
    }
}

pub(crate) async fn describe_log_dirs(
    ctx: &Ctx,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let broker = &ctx.broker;
    let topics = broker.topics();
    // Null asks for every hosted partition; a named one not hosted here is left out.
    let wanted: Vec<(String, u32)> = match &req.topics {
        None => topics
            .topics
            .values()
            .flat_map(|m| (0..m.partitions).map(move |p| (m.name.clone(), p)))
            .filter(|(t, p)| hosts(broker, &topics, t, *p))
            .take(DESCRIBED_PARTITIONS_MAX)
            .collect(),
        Some(asked) => asked
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter_map(|p| u32::try_from(*p).ok())
                    .map(|p| (t.topic.0.as_str().to_owned(), p))
            })
            .filter(|(t, p)| hosts(broker, &topics, t, *p))
            .take(DESCRIBED_PARTITIONS_MAX)
            .collect(),
    };
    let items = wanted
        .iter()
        .map(|(t, p)| (broker.owner(t, *p), (t.clone(), *p)))
        .collect();
    let found = scatter(broker, items, describe_partition, Err).await;
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(data_dir_name(&broker.config.data_dir)));
    for ((topic, partition), f) in wanted.into_iter().zip(found) {
        // A partition closed or deleted meanwhile is left out, as Kafka leaves out
        // logs it no longer has.
        let Ok((size, lag)) = f else { continue };
        if result
            .topics
            .last()
            .is_none_or(|t| t.name.0.as_str() != topic)
        {
            result
                .topics
                .push(DescribeLogDirsTopic::default().with_name(topic_name(topic)));
        }
        if let Some(t) = result.topics.last_mut() {
            t.partitions.push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(partition as i32)
                    .with_partition_size(size)
                    .with_offset_lag(lag),
            );
        }
    }
    if ctx.version >= 4 {
        let (total, usable) = filesystem_bytes(&broker.config.data_dir).await;
        result.total_bytes = total;
        result.usable_bytes = usable;
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// Kafka's LOG_DIR_NOT_FOUND and REPLICA_NOT_AVAILABLE (only these apis use them).
const LOG_DIR_NOT_FOUND: i16 = 57;
const REPLICA_NOT_AVAILABLE: i16 = 9;

/// The answer for moving `topic`-`partition` to `path` on this broker.
fn move_outcome(broker: &Broker, topics: &Topics, path: &str, topic: &str, partition: i32) -> i16 {
    let exists = topics
        .get(topic)
        .is_some_and(|m| u32::try_from(partition).is_ok_and(|p| p < m.partitions));
    if !exists {
        return KafkaCode::UnknownTopicOrPartition.code();
    }
    if !hosts(broker, topics, topic, partition as u32) {
        return REPLICA_NOT_AVAILABLE;
    }
    if is_data_dir(broker, path) {
        KafkaCode::None.code()
    } else {
        LOG_DIR_NOT_FOUND
    }
}

/// Whether `path` names this broker's data dir (as configured or as described).
fn is_data_dir(broker: &Broker, path: &str) -> bool {
    let path = Path::new(path);
    path == broker.config.data_dir || path == Path::new(&data_dir_name(&broker.config.data_dir))
}

pub(crate) async fn alter_replica_log_dirs(
    ctx: &Ctx,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let topics = ctx.broker.topics();
    let mut out = AlterReplicaLogDirsResponse::default();
    for dir in &req.dirs {
        let path = dir.path.as_str();
        for t in &dir.topics {
            let name = t.name.0.as_str();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(move_outcome(&ctx.broker, &topics, path, name, *p))
                })
                .collect();
            out.results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;

    #[test]
    fn responses_encode_at_every_served_version() {
        let partition = DescribeLogDirsPartition::default()
            .with_partition_index(0)
            .with_partition_size(4096)
            .with_offset_lag(0);
        let result = DescribeLogDirsResult::default()
            .with_log_dir(str_bytes("/data"))
            .with_topics(vec![DescribeLogDirsTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![partition])]);
        for version in 1..=4 {
            let mut result = result.clone();
            if version >= 4 {
                result.total_bytes = 1 << 30;
                result.usable_bytes = 1 << 29;
            }
            assert_encodes(
                &DescribeLogDirsResponse::default().with_results(vec![result]),
                version,
            );
        }
        let moved = AlterReplicaLogDirsResponse::default().with_results(vec![
            AlterReplicaLogDirTopicResult::default()
                .with_topic_name(topic_name("t"))
                .with_partitions(vec![
                    AlterReplicaLogDirPartitionResult::default().with_error_code(LOG_DIR_NOT_FOUND)
                ]),
        ]);
        for version in 1..=2 {
            assert_encodes(&moved, version);
        }
    }
}
