//! [`Consumer`]: reads assigned partitions from a position, one Fetch per `poll`.
//!
//! Positions live here, per partition: set by `seek`, by the reset policy when
//! unknown (or out of range), and advanced past the records each `poll` returns.
//! With a group (`subscribe`), the broker's assignment replaces `assign`, committed
//! offsets come before the reset policy, and `commit_*` write `position()` back
//! (also automatically every `auto_commit_interval`, and before each rebalance).
//! A rebalance happens inside `poll`, when the heartbeat thread saw that the group
//! asks for one (see `group`).
//!
//! Routing: each partition is fetched from its leader, one Fetch per leader, sent
//! together and awaited together. A partition whose leader moved
//! (NOT_LEADER_OR_FOLLOWER, a lost connection, a timeout) is skipped for that fetch
//! and looked up again; `poll` retries within its timeout, from the same position,
//! on the new leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_schema::{ApiKey, ErrorCode};

use crate::admin::OffsetSpec;
use crate::brokers::brokers_from_env;
use crate::call::Call;
use crate::completion::block_on;
use crate::connection::{Connection, Response};
use crate::error::{ClientError, Result};
use crate::group::{GroupSettings, Membership};
use crate::group_protocol::AssignmentStrategy;
use crate::protocol::{self, FetchPartition};
use crate::records::{PartitionBatches, Records};
use crate::router::Router;

/// Where to start when a partition has no valid position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail the poll with `OFFSET_OUT_OF_RANGE` / no position.
    None,
}

/// Consumer settings; `Default` works against a local broker.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub brokers: Vec<String>,
    /// Names this consumer in broker logs and (later) group membership.
    pub client_id: String,
    /// Upper bound on one fetch response's batch bytes.
    pub fetch_max_bytes: u32,
    /// Upper bound per partition in one fetch.
    pub fetch_partition_max_bytes: u32,
    /// The broker answers once this many bytes are ready (or `fetch_max_wait` passed).
    pub fetch_min_bytes: u32,
    /// Longest the broker holds a fetch waiting for `fetch_min_bytes`.
    pub fetch_max_wait: Duration,
    pub auto_offset_reset: OffsetReset,
    /// Time allowed for a response beyond the fetch's own wait.
    pub request_timeout: Duration,
    /// With a group: the broker drops this member when no heartbeat arrives for
    /// this long, and gives its partitions to the others.
    pub session_timeout: Duration,
    /// With a group: how long a rebalance waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// With a group: time between heartbeats (a third of the session timeout or less).
    pub heartbeat_interval: Duration,
    /// With a group: commit positions every `auto_commit_interval` (from `poll`),
    /// before a rebalance and on close.
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            brokers: brokers_from_env(),
            client_id: "strata-client".into(),
            fetch_max_bytes: 50 * 1024 * 1024,
            fetch_partition_max_bytes: 1024 * 1024,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            auto_offset_reset: OffsetReset::Earliest,
            request_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(3),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

/// Pause after a lost connection before the next fetch in the same poll.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest `close` (and drop) waits for the last commit and the leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads records from assigned partitions: `poll` blocks up to its timeout,
/// `poll_async` awaits from any runtime.
pub struct Consumer {
    config: ConsumerConfig,
    router: Router,
    /// Next offset to read per assigned partition; `None` = resolve by reset policy.
    positions: BTreeMap<(Arc<str>, u32), Option<i64>>,
    /// High watermark per partition as of the last fetch.
    high_watermarks: BTreeMap<(Arc<str>, u32), i64>,
    /// The group this consumer subscribed with, if any.
    group: Option<Membership>,
    last_auto_commit: Instant,
}

impl Consumer {
    /// Connects to the first reachable broker.
    pub fn connect(config: ConsumerConfig) -> Result<Consumer> {
        let router = Router::connect(config.brokers.clone())?;
        Ok(Consumer {
            config,
            router,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            group: None,
            last_auto_commit: Instant::now(),
        })
    }

    /// Reads exactly these partitions from now on. Partitions kept from the previous
    /// assignment keep their positions; new ones start by the reset policy.
    pub fn assign(&mut self, partitions: &[(&str, u32)]) {
        let mut next = BTreeMap::new();
        for &(topic, partition) in partitions {
            let key = (Arc::<str>::from(topic), partition);
            let position = self.positions.get(&key).copied().flatten();
            next.insert(key, position);
        }
        self.positions = next;
        let positions = &self.positions;
        self.high_watermarks
            .retain(|k, _| positions.contains_key(k));
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.positions
            .keys()
            .map(|(t, p)| (t.to_string(), *p))
            .collect()
    }

    fn slot(&mut self, topic: &str, partition: u32) -> Result<&mut Option<i64>> {
        self.positions
            .get_mut(&(Arc::from(topic), partition))
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "{topic}/{partition} is not assigned to this consumer; call assign() first"
                ))
            })
    }

    /// The next `poll` reads `topic`/`partition` from `offset`.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: i64) -> Result<()> {
        *self.slot(topic, partition)? = Some(offset);
        Ok(())
    }

    /// Moves to the first offset still in the log.
    pub fn seek_to_beginning(&mut self, topic: &str, partition: u32) -> Result<()> {
        let offset = block_on(self.list_offset(topic, partition, OffsetSpec::Earliest))?;
        self.seek(topic, partition, offset)
    }

    /// Moves past the last record: only records produced from now on are read.
    pub fn seek_to_end(&mut self, topic: &str, partition: u32) -> Result<()> {
        let offset = block_on(self.list_offset(topic, partition, OffsetSpec::Latest))?;
        self.seek(topic, partition, offset)
    }

    /// Moves to the first record at or after `timestamp_ms` (or the end if none is).
    pub fn seek_to_timestamp(
        &mut self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<()> {
        let spec = OffsetSpec::Timestamp(timestamp_ms);
        let mut offset = block_on(self.list_offset(topic, partition, spec))?;
        if offset < 0 {
            offset = block_on(self.list_offset(topic, partition, OffsetSpec::Latest))?;
        }
        self.seek(topic, partition, offset)
    }

    /// The partition's high watermark as of the last `poll` (for lag: `hw - position`).
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<i64> {
        self.high_watermarks
            .get(&(Arc::from(topic), partition))
            .copied()
    }

    /// The offset the next `poll` reads from, resolving it by the reset policy if the
    /// partition has none yet.
    pub fn position(&mut self, topic: &str, partition: u32) -> Result<i64> {
        block_on(self.resolve_position(topic, partition))
    }

    async fn resolve_position(&mut self, topic: &str, partition: u32) -> Result<i64> {
        if let Some(offset) = *self.slot(topic, partition)? {
            return Ok(offset);
        }
        let spec = match self.config.auto_offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::None => {
                return Err(ClientError::Broker {
                    api: ApiKey::Fetch.name(),
                    code: ErrorCode::OffsetOutOfRange,
                    message: format!(
                        "{topic}/{partition} has no valid position and auto_offset_reset is None; seek first"
                    ),
                })
            }
        };
        let offset = self.list_offset(topic, partition, spec).await?;
        *self.slot(topic, partition)? = Some(offset);
        Ok(offset)
    }

    async fn list_offset(&mut self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<i64> {
        let body = protocol::encode_list_offsets(&[(topic, partition, spec.wire())]);
        let timeout = self.config.request_timeout;
        let conn = self.router.leader(topic, partition, timeout)?;
        let result = conn
            .request(ApiKey::ListOffsets, &body, &[], timeout)
            .await
            .and_then(|response| protocol::decode_list_offsets(response.body()));
        let found = match result {
            Ok(found) => found,
            Err(e) => {
                if e.is_retriable() {
                    self.router.forget(&conn);
                    self.router.invalidate(topic);
                }
                return Err(e);
            }
        };
        let offset = found
            .into_iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "ListOffsets response has no result for {topic}/{partition}"
                ))
            })?
            .2
            .map(|(offset, _)| offset);
        if offset.as_ref().is_err_and(|e| e.is_leader_moved()) {
            self.router.invalidate(topic);
        }
        offset
    }

    /// Fetches from every assigned partition and returns what arrived, waiting up to
    /// `timeout` for at least one record (empty `Records` if none came). Positions
    /// advance past the returned records. Blocks the calling thread; a lost connection
    /// is re-established within the timeout.
    pub fn poll(&mut self, timeout: Duration) -> Result<Records> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match block_on(self.poll_async(remaining)) {
                Err(e) if e.is_retriable() && !remaining.is_zero() => {
                    std::thread::sleep(RECONNECT_BACKOFF.min(remaining));
                }
                result => return result,
            }
        }
    }

    /// [`poll`](Self::poll) for async code: awaits the broker instead of blocking
    /// (only reconnecting blocks, briefly). A retriable error (lost connection,
    /// timeout) is returned at once; the next call reconnects.
    pub async fn poll_async(&mut self, timeout: Duration) -> Result<Records> {
        self.group_duties().await?;
        if self.positions.is_empty() && self.group.is_some() {
            // Subscribed but given nothing (more members than partitions): idle. This
            // pauses the calling thread, also under an async runtime (no
            // runtime-independent timer).
            std::thread::sleep(timeout.min(self.config.fetch_max_wait));
            return Ok(Records::new(Default::default(), Vec::new()));
        }
        if self.positions.is_empty() {
            return Err(ClientError::Config(
                "no partitions assigned; call assign() first".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let records = match self
                .fetch_once(remaining.min(self.config.fetch_max_wait))
                .await
            {
                Ok(records) => records,
                Err(e) => return Err(e),
            };
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    async fn fetch_once(&mut self, max_wait: Duration) -> Result<Records> {
        let keys: Vec<(Arc<str>, u32)> = self.positions.keys().cloned().collect();
        let mut offsets = Vec::with_capacity(keys.len());
        for (topic, partition) in &keys {
            offsets.push(self.resolve_position(topic, *partition).await?);
        }
        // A partition whose leader cannot be reached now is left out of this fetch;
        // its error is the poll's when no other partition returns records.
        let mut skipped: Option<ClientError> = None;
        let mut by_leader: Vec<(Arc<Connection>, Vec<usize>)> = Vec::new();
        for (i, (topic, partition)) in keys.iter().enumerate() {
            match self
                .router
                .leader(topic, *partition, self.config.request_timeout)
            {
                Ok(conn) => match by_leader.iter_mut().find(|(c, _)| Arc::ptr_eq(c, &conn)) {
                    Some((_, members)) => members.push(i),
                    None => by_leader.push((conn, vec![i])),
                },
                Err(e) if e.is_retriable() => {
                    self.router.invalidate(topic);
                    skipped.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let max_wait_ms = max_wait.as_millis().min(u128::from(u32::MAX)) as u32;
        let timeout = self.config.request_timeout + max_wait;
        let mut sent = Vec::with_capacity(by_leader.len());
        for (conn, members) in by_leader {
            let parts: Vec<FetchPartition<'_>> = members
                .iter()
                .map(|&i| FetchPartition {
                    topic: &keys[i].0,
                    partition: keys[i].1,
                    fetch_offset: offsets[i],
                    max_bytes: self.config.fetch_partition_max_bytes,
                })
                .collect();
            let body = protocol::encode_fetch(
                max_wait_ms,
                self.config.fetch_min_bytes,
                self.config.fetch_max_bytes,
                &parts,
            );
            let pending = conn.request(ApiKey::Fetch, &body, &[], timeout);
            sent.push((conn, members, pending));
        }
        let mut responses: Vec<Response> = Vec::with_capacity(sent.len());
        for (conn, members, pending) in sent {
            match pending.await {
                Ok(response) => responses.push(response),
                Err(e) if e.is_retriable() => {
                    self.router.forget(&conn);
                    for &i in &members {
                        self.router.invalidate(&keys[i].0);
                    }
                    skipped.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        // Nothing moves until every response checks out: an error in one partition
        // must not advance the others past records that were never handed out.
        let mut fetched = Vec::with_capacity(responses.len());
        let mut resets = Vec::new();
        for response in responses {
            let results = protocol::decode_fetch(response.body())?;
            let tail = response.tail();
            let mut at = 0usize;
            let mut batches = Vec::new();
            for result in results {
                let end = at + result.batch_bytes as usize;
                if end > tail.len() {
                    return Err(ClientError::Protocol(format!(
                        "Fetch result for {}/{} claims {} batch bytes past the end of the response",
                        result.topic, result.partition, result.batch_bytes
                    )));
                }
                let range = at..end;
                at = end;
                let key = (Arc::<str>::from(result.topic.as_str()), result.partition);
                let Some(index) = keys.iter().position(|k| *k == key) else {
                    continue; // not asked for (any more): ignore
                };
                if result.high_watermark >= 0 {
                    self.high_watermarks
                        .insert(key.clone(), result.high_watermark);
                }
                match result.result {
                    Ok(()) => {}
                    Err(e)
                        if e.code() == Some(ErrorCode::OffsetOutOfRange)
                            && self.config.auto_offset_reset != OffsetReset::None =>
                    {
                        resets.push(key); // resolved by the reset policy on the next fetch
                        continue;
                    }
                    Err(e) if e.is_leader_moved() => {
                        self.router.invalidate(&key.0);
                        skipped.get_or_insert(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                let part = PartitionBatches::parse(key.0, key.1, &tail, range, offsets[index])?;
                batches.push(part);
            }
            fetched.push((tail, batches));
        }
        for key in resets {
            self.positions.insert(key, None);
        }
        for (_, parts) in &fetched {
            for part in parts {
                let key = (part.topic.clone(), part.partition);
                if let Some(position) = self.positions.get_mut(&key) {
                    if position.is_none_or(|p| part.next_offset > p) {
                        *position = Some(part.next_offset);
                    }
                }
            }
        }
        let records = Records::from_responses(fetched);
        match skipped {
            Some(e) if records.is_empty() => Err(e),
            _ => Ok(records),
        }
    }
}

/// Consumer groups: subscribe, rebalance, commit, close.
impl Consumer {
    /// Joins `group` to consume `topics`, with partitions assigned by the broker
    /// using `strategy`. Blocks until the first assignment arrives. Each assigned
    /// partition starts at the group's committed offset, else by
    /// `auto_offset_reset`. Replaces any previous `assign` or `subscribe`.
    pub fn subscribe(
        &mut self,
        group: &str,
        topics: &[&str],
        strategy: AssignmentStrategy,
    ) -> Result<()> {
        if let Some(mut old) = self.group.take() {
            old.leave(CLOSE_TIMEOUT);
        }
        let settings = GroupSettings {
            brokers: self.config.brokers.clone(),
            client_id: self.config.client_id.clone(),
            session_timeout: self.config.session_timeout,
            rebalance_timeout: self.config.rebalance_timeout,
            heartbeat_interval: self.config.heartbeat_interval,
            request_timeout: self.config.request_timeout,
        };
        self.group = Some(Membership::new(group, topics, strategy, settings)?);
        self.assign(&[]);
        block_on(self.rebalance())
    }

    /// The group's member id and generation, once subscribed and joined.
    pub fn group_membership(&self) -> Option<(String, i32)> {
        self.group.as_ref().map(Membership::generation)
    }

    /// Rebalances when the group asks for it, and auto-commits when due.
    async fn group_duties(&mut self) -> Result<()> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        if group.needs_rejoin() {
            return self.rebalance().await;
        }
        if self.config.enable_auto_commit
            && self.last_auto_commit.elapsed() >= self.config.auto_commit_interval
        {
            self.last_auto_commit = Instant::now();
            // Fire and forget: a failure is retried at the next interval, and a group
            // error it reports marks the membership for a rejoin.
            drop(self.commit_async());
        }
        Ok(())
    }

    /// Commits (if auto-commit is on), rejoins, and applies the new assignment.
    async fn rebalance(&mut self) -> Result<()> {
        if self.config.enable_auto_commit {
            // Give up partitions with their progress saved; a stale generation fails
            // here harmlessly.
            let _ = self.commit_async().await;
        }
        let group = self.group.as_mut().expect("called with a group");
        let assignment = group.join().await?;
        let parts: Vec<(&str, u32)> = assignment.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        self.assign(&parts);
        let missing: Vec<(Arc<str>, u32)> = self
            .positions
            .iter()
            .filter(|(_, position)| position.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if !missing.is_empty() {
            let wanted: Vec<(&str, u32)> = missing.iter().map(|(t, p)| (&**t, *p)).collect();
            let group = self.group.as_mut().expect("called with a group");
            for c in group.committed(&wanted).await? {
                let key = (Arc::<str>::from(c.topic.as_str()), c.partition);
                if c.offset >= 0 {
                    if let Some(slot) = self.positions.get_mut(&key) {
                        *slot = Some(c.offset);
                    }
                }
            }
        }
        self.last_auto_commit = Instant::now();
        Ok(())
    }

    /// (topic, partition, position) of every assigned partition that has one.
    fn position_offsets(&self) -> Vec<(Arc<str>, u32, i64)> {
        self.positions
            .iter()
            .filter_map(|((t, p), o)| o.map(|o| (t.clone(), *p, o)))
            .collect()
    }

    /// Commits the current positions (the next offset `poll` reads per partition)
    /// to the group. `.await` or `.wait()` the result, or drop it.
    pub fn commit_async(&mut self) -> Call<()> {
        let offsets = self.position_offsets();
        let offsets: Vec<(&str, u32, i64)> =
            offsets.iter().map(|(t, p, o)| (&**t, *p, *o)).collect();
        self.commit_offsets_async(&offsets)
    }

    /// Commits the current positions and waits for the broker to store them.
    pub fn commit_sync(&mut self) -> Result<()> {
        self.commit_async().wait()
    }

    /// Commits explicit (topic, partition, next offset to read) triples.
    pub fn commit_offsets_async(&mut self, offsets: &[(&str, u32, i64)]) -> Call<()> {
        match self.group.as_mut() {
            Some(group) => group.commit(offsets),
            None => Call::new(
                crate::completion::Pending::ready(Err(ClientError::Config(
                    "commit needs a group; call subscribe() first".into(),
                ))),
                |_| Ok(()),
            ),
        }
    }

    /// [`commit_offsets_async`](Self::commit_offsets_async), waiting for the result.
    pub fn commit_offsets_sync(&mut self, offsets: &[(&str, u32, i64)]) -> Result<()> {
        self.commit_offsets_async(offsets).wait()
    }

    /// Leaves the group (after a last commit when auto-commit is on), so its
    /// partitions move to the other members at once rather than after the session
    /// timeout. Dropping the consumer does the same.
    pub fn close(mut self) -> Result<()> {
        self.leave_group()
    }

    fn leave_group(&mut self) -> Result<()> {
        let Some(group) = self.group.as_ref() else {
            return Ok(());
        };
        let mut result = Ok(());
        if self.config.enable_auto_commit && !group.needs_rejoin() {
            result = self.commit_sync();
        }
        if let Some(mut group) = self.group.take() {
            group.leave(CLOSE_TIMEOUT);
        }
        result
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.leave_group();
    }
}
