//! Group membership of a [`Consumer`](crate::Consumer): join (the broker computes the
//! assignment), heartbeats from a background thread, commits, leave.
//!
//! Two connections of its own besides the consumer's fetch connection, because the
//! broker answers a connection's requests in order: one for joins and commits (a
//! join is held until the rebalance completes), one for the heartbeat thread (so a
//! long fetch or join never delays a heartbeat past the session timeout).
//!
//! The heartbeat thread only observes: a RebalanceInProgress, IllegalGeneration or
//! UnknownMemberId answer marks the membership for a rejoin, which the consumer
//! carries out on its next `poll`.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strata_schema::{ApiKey, ErrorCode};

use crate::call::Call;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::group_protocol::{self as gp, AssignmentStrategy, CommittedOffset, JoinArgs};

/// Pause between join attempts that failed with a retriable error.
const JOIN_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Most join attempts in one rejoin before giving up with the last error.
const JOIN_ATTEMPTS_MAX: u32 = 50;

/// Group settings, from [`ConsumerConfig`](crate::ConsumerConfig).
#[derive(Clone, Debug)]
pub(crate) struct GroupSettings {
    pub brokers: Vec<String>,
    pub client_id: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub request_timeout: Duration,
}

/// What the consumer and the heartbeat thread share.
#[derive(Debug, Default)]
struct State {
    member_id: String,
    generation: i32,
    /// The broker asked this member to join again.
    rejoin: bool,
    /// A join is in flight: no heartbeats meanwhile.
    joining: bool,
}

#[derive(Clone, Debug, Default)]
struct SharedState(Arc<Mutex<State>>);

impl SharedState {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reacts to a group error: rejoin (and forget the member id if it is unknown),
    /// unless `generation` is already stale.
    fn on_error(&self, e: &ClientError, generation: i32) {
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        match e.code() {
            Some(ErrorCode::UnknownMemberId) => {
                s.member_id.clear();
                s.rejoin = true;
            }
            Some(ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration) => s.rejoin = true,
            _ => {}
        }
    }
}

/// A consumer's membership in one group.
pub(crate) struct Membership {
    pub group: String,
    topics: Vec<String>,
    strategy: AssignmentStrategy,
    settings: GroupSettings,
    conn: Option<Connection>,
    state: SharedState,
    heartbeat: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Membership {
    /// A membership that has not joined yet; starts the heartbeat thread.
    pub fn new(
        group: &str,
        topics: &[&str],
        strategy: AssignmentStrategy,
        settings: GroupSettings,
    ) -> Result<Membership> {
        if group.is_empty() {
            return Err(ClientError::Config("the group id is empty".into()));
        }
        if topics.is_empty() {
            return Err(ClientError::Config(
                "subscribe to at least one topic".into(),
            ));
        }
        let state = SharedState::default();
        state.lock().rejoin = true;
        let (stop, stopped) = mpsc::channel();
        let thread = {
            let (state, settings, group) = (state.clone(), settings.clone(), group.to_owned());
            std::thread::Builder::new()
                .name(format!("strata-heartbeat-{group}"))
                .spawn(move || heartbeat_loop(&group, &settings, &state, &stopped))
                .map_err(|e| {
                    ClientError::Config(format!("cannot start the heartbeat thread: {e}"))
                })?
        };
        Ok(Membership {
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            strategy,
            settings,
            conn: None,
            state,
            heartbeat: Some((stop, thread)),
        })
    }

    fn conn(&mut self) -> Result<&Connection> {
        if self.conn.as_ref().is_none_or(Connection::is_closed) {
            self.conn = Some(Connection::connect(&self.settings.brokers)?);
        }
        Ok(self.conn.as_ref().expect("just connected"))
    }

    /// Whether the next poll must (re)join.
    pub fn needs_rejoin(&self) -> bool {
        self.state.lock().rejoin
    }

    /// (member id, generation) of the current membership.
    pub fn generation(&self) -> (String, i32) {
        let s = self.state.lock();
        (s.member_id.clone(), s.generation)
    }

    /// Joins (or rejoins) and returns this member's assignment. Waits for the
    /// rebalance to complete; retries retriable failures (pausing the calling
    /// thread `JOIN_RETRY_BACKOFF` between attempts, also under an async runtime:
    /// there is no runtime-independent timer).
    pub async fn join(&mut self) -> Result<Vec<(String, u32)>> {
        self.state.lock().joining = true;
        let result = self.join_attempts().await;
        self.state.lock().joining = false;
        result
    }

    async fn join_attempts(&mut self) -> Result<Vec<(String, u32)>> {
        let timeout = self.settings.rebalance_timeout + self.settings.request_timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let member_id = self.state.lock().member_id.clone();
            let body = gp::encode_join(&JoinArgs {
                group: &self.group,
                member_id: &member_id,
                client_id: &self.settings.client_id,
                topics: &self.topics,
                strategy: self.strategy,
                session_timeout_ms: duration_ms(self.settings.session_timeout),
                rebalance_timeout_ms: duration_ms(self.settings.rebalance_timeout),
            });
            let result = match self.conn() {
                Ok(conn) => conn.request(ApiKey::JoinGroup, &body, &[], timeout).await,
                Err(e) => Err(e),
            }
            .and_then(|response| gp::decode_join(response.body()));
            match result {
                Ok(joined) => {
                    let mut s = self.state.lock();
                    s.member_id = joined.member_id;
                    s.generation = joined.generation;
                    s.rejoin = false;
                    return Ok(joined.assignment);
                }
                Err(e) if attempt < JOIN_ATTEMPTS_MAX && rejoinable(&e) => {
                    if e.code() == Some(ErrorCode::UnknownMemberId) {
                        self.state.lock().member_id.clear();
                    }
                    if !e.is_retriable() || e.code().is_none() {
                        self.conn = None;
                    }
                    std::thread::sleep(JOIN_RETRY_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits `offsets` (topic, partition, next offset to read) for this
    /// generation. A group error marks the membership for a rejoin.
    pub fn commit(&mut self, offsets: &[(&str, u32, i64)]) -> Call<()> {
        let (member_id, generation) = self.generation();
        let body = gp::encode_commit(&self.group, &member_id, generation, offsets);
        let timeout = self.settings.request_timeout;
        let state = self.state.clone();
        let pending = match self.conn() {
            Ok(conn) => conn.request(ApiKey::OffsetCommit, &body, &[], timeout),
            Err(e) => crate::completion::Pending::ready(Err(e)),
        };
        Call::new(pending, move |response| {
            let result = gp::decode_commit(response.body());
            if let Err(e) = &result {
                state.on_error(e, generation);
            }
            result
        })
    }

    /// The group's committed offsets of `partitions`.
    pub async fn committed(&mut self, partitions: &[(&str, u32)]) -> Result<Vec<CommittedOffset>> {
        let body = gp::encode_offset_fetch(&self.group, Some(partitions));
        let timeout = self.settings.request_timeout;
        let response = self
            .conn()?
            .request(ApiKey::OffsetFetch, &body, &[], timeout)
            .await?;
        gp::decode_offset_fetch(response.body())
    }

    /// Leaves the group (best effort, waiting at most `timeout`) and stops the
    /// heartbeat thread.
    pub fn leave(&mut self, timeout: Duration) {
        self.stop_heartbeats();
        let (member_id, _) = self.generation();
        if member_id.is_empty() {
            return;
        }
        let body = gp::encode_leave(&self.group, &member_id);
        if let Ok(conn) = self.conn() {
            let pending = conn.request(ApiKey::LeaveGroup, &body, &[], timeout);
            let _ = Call::new(pending, |r| gp::decode_leave(r.body())).wait();
        }
        self.state.lock().member_id.clear();
    }

    fn stop_heartbeats(&mut self) {
        if let Some((stop, thread)) = self.heartbeat.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop_heartbeats();
    }
}

/// Whether a failed join is worth another attempt.
fn rejoinable(e: &ClientError) -> bool {
    e.is_retriable()
        || matches!(
            e.code(),
            Some(ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration)
        )
}

fn duration_ms(d: Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

/// Sends a heartbeat every `heartbeat_interval` while the member has joined and no
/// join is in flight, until `stopped` fires (or its sender is dropped).
fn heartbeat_loop(
    group: &str,
    settings: &GroupSettings,
    state: &SharedState,
    stopped: &mpsc::Receiver<()>,
) {
    let mut conn: Option<Connection> = None;
    let mut next = Instant::now() + settings.heartbeat_interval;
    loop {
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        next = Instant::now() + settings.heartbeat_interval;
        let (member_id, generation) = {
            let s = state.lock();
            if s.joining || s.member_id.is_empty() {
                continue;
            }
            (s.member_id.clone(), s.generation)
        };
        if conn.as_ref().is_none_or(Connection::is_closed) {
            conn = Connection::connect(&settings.brokers).ok();
        }
        let Some(c) = conn.as_ref() else { continue };
        let body = gp::encode_heartbeat(group, &member_id, generation);
        let pending = c.request(ApiKey::Heartbeat, &body, &[], settings.request_timeout);
        let result = Call::new(pending, |r| gp::decode_heartbeat(r.body())).wait();
        if let Err(e) = result {
            if e.code().is_none() {
                conn = None; // transport trouble: reconnect next time
            }
            state.on_error(&e, generation);
        }
    }
}
