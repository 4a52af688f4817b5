//! Kafka fetch sessions (KIP-227), as a state machine without I/O: a client that
//! fetches the same partitions again and again sends only what changed, and the
//! broker answers only partitions with news.
//!
//! Sessions live per shard (a connection's shard): a client that reconnects to
//! another shard gets FETCH_SESSION_ID_NOT_FOUND and starts a new session, which the
//! protocol allows. At most `SESSIONS_PER_SHARD_MAX` sessions are kept; the least
//! recently used one is evicted first.

use std::collections::{BTreeMap, HashMap};

use super::errors::KafkaCode;

/// Sessions one shard keeps.
pub(crate) const SESSIONS_PER_SHARD_MAX: usize = 1000;
/// Partitions one session may hold.
pub(crate) const SESSION_PARTITIONS_MAX: usize = 10_000;
/// `session_epoch` of a request that starts a session.
const INITIAL_EPOCH: i32 = 0;
/// `session_epoch` of a sessionless request (or one closing its session).
const FINAL_EPOCH: i32 = -1;

/// A partition: topic name and index.
pub(crate) type PartitionKey = (String, i32);

/// What the broker remembers of one partition of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionPartition {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// High watermark and log start last sent (-1 before any): a change is news.
    pub sent_high_watermark: i64,
    pub sent_log_start_offset: i64,
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    partitions: BTreeMap<PartitionKey, SessionPartition>,
    last_used_ms: i64,
}

/// How a request is served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The session id to answer with (0 = none).
    pub session_id: i32,
    /// Only partitions with news go in the response.
    pub incremental: bool,
    /// Every partition to read: (key, fetch offset, max bytes).
    pub partitions: Vec<(PartitionKey, i64, i32)>,
}

/// One shard's fetch sessions.
#[derive(Debug, Default)]
pub(crate) struct FetchSessions {
    sessions: HashMap<i32, Session>,
    /// The last id handed out; ids are positive and never 0.
    last_id: i32,
}

impl FetchSessions {
    /// Starts serving a request: `wanted` are the partitions it names (with fetch
    /// offset and max bytes), `forgotten` those it drops from its session.
    pub fn plan(
        &mut self,
        session_id: i32,
        epoch: i32,
        now_ms: i64,
        wanted: Vec<(PartitionKey, i64, i32)>,
        forgotten: Vec<PartitionKey>,
    ) -> Result<Plan, KafkaCode> {
        if epoch == FINAL_EPOCH {
            // Sessionless; a named session is closed.
            if session_id != 0 {
                self.sessions.remove(&session_id);
            }
            return Ok(Plan {
                session_id: 0,
                incremental: false,
                partitions: wanted,
            });
        }
        if epoch == INITIAL_EPOCH {
            if session_id != 0 {
                self.sessions.remove(&session_id);
            }
            if wanted.len() > SESSION_PARTITIONS_MAX {
                // Too big to cache: serve it without a session.
                return Ok(Plan {
                    session_id: 0,
                    incremental: false,
                    partitions: wanted,
                });
            }
            let id = self.new_id();
            let partitions = wanted
                .iter()
                .map(|(k, offset, max)| (k.clone(), fresh(*offset, *max)))
                .collect();
            self.evict_to_fit();
            self.sessions.insert(
                id,
                Session {
                    next_epoch: 1,
                    partitions,
                    last_used_ms: now_ms,
                },
            );
            return Ok(Plan {
                session_id: id,
                incremental: false,
                partitions: wanted,
            });
        }
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(KafkaCode::FetchSessionIdNotFound)?;
        if epoch != session.next_epoch {
            return Err(KafkaCode::InvalidFetchSessionEpoch);
        }
        for key in forgotten {
            session.partitions.remove(&key);
        }
        for (key, offset, max) in wanted {
            session
                .partitions
                .entry(key)
                .and_modify(|p| {
                    p.fetch_offset = offset;
                    p.max_bytes = max;
                })
                .or_insert_with(|| fresh(offset, max));
        }
        if session.partitions.len() > SESSION_PARTITIONS_MAX {
            self.sessions.remove(&session_id);
            return Err(KafkaCode::InvalidRequest);
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.last_used_ms = now_ms;
        Ok(Plan {
            session_id,
            incremental: true,
            partitions: session
                .partitions
                .iter()
                .map(|(k, p)| (k.clone(), p.fetch_offset, p.max_bytes))
                .collect(),
        })
    }

    /// Records what was sent for `key` and says whether it is news worth sending in
    /// an incremental response: records, an error, or a changed high watermark or
    /// log start offset.
    pub fn sent(
        &mut self,
        session_id: i32,
        key: &PartitionKey,
        has_records_or_error: bool,
        high_watermark: i64,
        log_start_offset: i64,
    ) -> bool {
        let Some(p) = self
            .sessions
            .get_mut(&session_id)
            .and_then(|s| s.partitions.get_mut(key))
        else {
            return true;
        };
        let changed =
            p.sent_high_watermark != high_watermark || p.sent_log_start_offset != log_start_offset;
        p.sent_high_watermark = high_watermark;
        p.sent_log_start_offset = log_start_offset;
        has_records_or_error || changed
    }

    fn new_id(&mut self) -> i32 {
        loop {
            self.last_id = if self.last_id == i32::MAX {
                1
            } else {
                self.last_id + 1
            };
            if !self.sessions.contains_key(&self.last_id) {
                return self.last_id;
            }
        }
    }

    fn evict_to_fit(&mut self) {
        while self.sessions.len() >= SESSIONS_PER_SHARD_MAX {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used_ms)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => {
                    self.sessions.remove(&id);
                }
                None => return,
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sessions.len()
    }
}

fn fresh(fetch_offset: i64, max_bytes: i32) -> SessionPartition {
    SessionPartition {
        fetch_offset,
        max_bytes,
        sent_high_watermark: -1,
        sent_log_start_offset: -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, p: i32) -> PartitionKey {
        (t.to_owned(), p)
    }

    #[test]
    fn sessionless_requests_keep_nothing() {
        let mut s = FetchSessions::default();
        let plan = s
            .plan(0, -1, 0, vec![(key("a", 0), 5, 100)], vec![])
            .unwrap();
        assert_eq!(plan.session_id, 0);
        assert!(!plan.incremental);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_session_remembers_partitions_and_takes_changes() {
        let mut s = FetchSessions::default();
        let first = s
            .plan(
                0,
                0,
                0,
                vec![(key("a", 0), 5, 100), (key("a", 1), 7, 100)],
                vec![],
            )
            .unwrap();
        assert!(first.session_id > 0 && !first.incremental);
        // Epoch 1 changes one offset and names nothing else: both are read.
        let next = s
            .plan(first.session_id, 1, 1, vec![(key("a", 0), 9, 100)], vec![])
            .unwrap();
        assert!(next.incremental);
        assert_eq!(
            next.partitions,
            vec![(key("a", 0), 9, 100), (key("a", 1), 7, 100)]
        );
        // Forgetting drops a partition.
        let after = s
            .plan(first.session_id, 2, 2, vec![], vec![key("a", 1)])
            .unwrap();
        assert_eq!(after.partitions, vec![(key("a", 0), 9, 100)]);
    }

    #[test]
    fn wrong_epochs_and_unknown_ids_are_errors() {
        let mut s = FetchSessions::default();
        let id = s
            .plan(0, 0, 0, vec![(key("a", 0), 0, 1)], vec![])
            .unwrap()
            .session_id;
        assert_eq!(
            s.plan(id, 5, 1, vec![], vec![]),
            Err(KafkaCode::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            s.plan(id + 1000, 1, 1, vec![], vec![]),
            Err(KafkaCode::FetchSessionIdNotFound)
        );
        // Closing with the final epoch forgets the session.
        s.plan(id, -1, 2, vec![], vec![]).unwrap();
        assert_eq!(
            s.plan(id, 1, 3, vec![], vec![]),
            Err(KafkaCode::FetchSessionIdNotFound)
        );
    }

    #[test]
    fn only_news_goes_out_incrementally() {
        let mut s = FetchSessions::default();
        let id = s
            .plan(0, 0, 0, vec![(key("a", 0), 0, 1)], vec![])
            .unwrap()
            .session_id;
        let k = key("a", 0);
        assert!(s.sent(id, &k, false, 10, 0), "first high watermark is news");
        assert!(!s.sent(id, &k, false, 10, 0), "nothing changed");
        assert!(s.sent(id, &k, true, 10, 0), "records are news");
        assert!(s.sent(id, &k, false, 11, 0), "a new high watermark is news");
        assert!(s.sent(id, &k, false, 11, 3), "a new log start is news");
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes_first() {
        let mut s = FetchSessions::default();
        let first = s.plan(0, 0, 0, vec![], vec![]).unwrap().session_id;
        for now in 1..=SESSIONS_PER_SHARD_MAX as i64 {
            s.plan(0, 0, now, vec![], vec![]).unwrap();
        }
        assert_eq!(s.len(), SESSIONS_PER_SHARD_MAX);
        assert_eq!(
            s.plan(first, 1, 0, vec![], vec![]),
            Err(KafkaCode::FetchSessionIdNotFound)
        );
    }
}
