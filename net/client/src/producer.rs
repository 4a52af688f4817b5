//! [`Producer`]: batches records per partition and sends them from one background
//! sender thread.
//!
//! `send` picks the partition (explicit, keyed murmur2, or sticky), appends the record
//! to its partition's open batch and returns a [`SendFuture`] of its offset. The sender
//! thread seals batches by size (`batch_bytes`) or time (`linger`), sends one Produce
//! request per topic with one batch per partition, keeps at most `max_in_flight`
//! requests outstanding, retries retriable failures with exponential backoff and
//! completes each record with `base_offset + index`.
//!
//! Ordering: with `retries > 0` a partition has at most one batch in flight, so a
//! retried batch can never be overtaken by a later one (per-partition order holds
//! even across retries). With `retries == 0` up to `max_in_flight` batches of a
//! partition may be pipelined: nothing is resent, so nothing reorders, but a failed
//! batch leaves a gap before later ones.
//!
//! Routing: each partition's batches go to its leader (a request carries one topic's
//! batches for one leader). NOT_LEADER_OR_FOLLOWER, a lost connection, a connect
//! error or a timeout make the sender look the leaders up again and resend to the new
//! leader after the backoff; such leader moves are retried beyond `retries` until the
//! batch is `request_timeout` old.
//!
//! Idempotence (`enable_idempotence`): the producer gets an id and epoch from the
//! broker, and every batch carries them with the partition's next sequence number,
//! fixed when the batch is sealed. A resent batch keeps its sequence, so a batch that
//! the old leader committed but whose answer was lost is answered by the new leader
//! with its first offsets instead of being written twice: acknowledged records are
//! never duplicated or reordered across a failover. A batch that fails for good
//! leaves a gap in its partition's sequence: later batches of that partition then
//! fail with OUT_OF_ORDER_SEQUENCE (make a new producer).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_schema::{ApiKey, BATCH_BYTES_MAX};

use crate::accumulator::{record_bytes, Accumulator, ReadyBatch};
use crate::brokers::brokers_from_env;
use crate::completion::{completion, Pending};
use crate::connection::{Connection, Response, IN_FLIGHT_MAX};
use crate::error::{ClientError, Result};
use crate::protocol;
use crate::router::Router;

/// How many brokers must have a batch before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: no response is awaited; offsets are reported as `-1`.
    None,
    /// The leader appended it.
    Leader,
    /// Every in-sync replica has it durably (on one node: on disk).
    All,
}

impl Acks {
    fn wire(self) -> i8 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Acks> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            _ => Err(ClientError::Config(format!(
                "acks must be 0, 1 or all, not `{s}`"
            ))),
        }
    }
}

/// Producer settings; `Default` works against a local broker.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// Broker addresses (`host:port`); the first that accepts is used.
    pub brokers: Vec<String>,
    pub acks: Acks,
    /// A partition's batch is sealed once its records reach this many bytes.
    pub batch_bytes: usize,
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// Produce requests outstanding at once (at most [`IN_FLIGHT_MAX`]).
    pub max_in_flight: usize,
    /// Resends of a batch after retriable errors (timeouts, lost connections, ...).
    pub retries: u32,
    /// Wait before the first resend; doubles each time up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// Bytes of records buffered and not yet acknowledged; `send` blocks beyond it.
    pub buffer_bytes: usize,
    /// How long `send` blocks for buffer space (or first metadata) before failing.
    pub max_block: Duration,
    /// Time allowed for each request's response.
    pub request_timeout: Duration,
    /// Partition counts older than this are looked up again (added partitions).
    pub metadata_max_age: Duration,
    /// Stamp batches with a producer id and sequence numbers so that resends are
    /// deduplicated by the broker (needs `acks = All` and `retries > 0`).
    pub enable_idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            brokers: brokers_from_env(),
            acks: Acks::All,
            batch_bytes: 64 * 1024,
            linger: Duration::from_millis(5),
            max_in_flight: 5,
            retries: 5,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            buffer_bytes: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            metadata_max_age: Duration::from_secs(300),
            enable_idempotence: false,
        }
    }
}

impl ProducerConfig {
    fn check(&self) -> Result<()> {
        let bad = |what: String| Err(ClientError::Config(what));
        if self.brokers.is_empty() {
            return bad("no broker address given".into());
        }
        if self.batch_bytes == 0 || self.batch_bytes > BATCH_BYTES_MAX {
            return bad(format!(
                "batch_bytes must be in 1..={BATCH_BYTES_MAX}, not {}",
                self.batch_bytes
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight > IN_FLIGHT_MAX {
            return bad(format!(
                "max_in_flight must be in 1..={IN_FLIGHT_MAX}, not {}",
                self.max_in_flight
            ));
        }
        if self.enable_idempotence && (self.acks != Acks::All || self.retries == 0) {
            return bad(format!(
                "enable_idempotence needs acks = all and retries > 0, not acks = {:?} and retries = {}",
                self.acks, self.retries
            ));
        }
        if self.buffer_bytes < self.batch_bytes {
            return bad(format!(
                "buffer_bytes ({}) must be at least batch_bytes ({})",
                self.buffer_bytes, self.batch_bytes
            ));
        }
        Ok(())
    }

    /// Batches of one partition in flight at once (see the module doc on ordering).
    fn partition_in_flight_max(&self) -> usize {
        if self.retries > 0 {
            1
        } else {
            self.max_in_flight
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.min(16);
        (self.retry_backoff * factor).min(self.retry_backoff_max)
    }

    /// Whether a batch that failed with `error` after `attempts` sends, sealed at
    /// `created`, is sent again. In a `cluster`, a leader move is retried beyond
    /// `retries` until the batch is `request_timeout` old.
    fn should_retry(
        &self,
        error: &ClientError,
        attempts: u32,
        created: Instant,
        cluster: bool,
    ) -> bool {
        if !error.is_retriable() || self.retries == 0 {
            return false;
        }
        attempts < self.retries
            || (cluster && error.is_leader_moved() && created.elapsed() < self.request_timeout)
    }
}

/// One record to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// `None`: chosen by key (murmur2), or sticky for unkeyed records.
    pub partition: Option<u32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Create time in ms since the epoch; `None`: now.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value: impl Into<Vec<u8>>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..ProducerRecord::default()
        }
    }

    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }
}

/// Where a record was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    pub partition: u32,
    /// `-1` with [`Acks::None`].
    pub offset: i64,
    /// The create time, or the broker's append time on log-append-time topics.
    pub timestamp_ms: i64,
}

/// The pending result of one `send`: `.await` it, or [`wait`](Pending::wait).
pub type SendFuture = Pending<Result<RecordMetadata>>;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct State {
    acc: Accumulator,
    partitioner: crate::partitioner::Partitioner,
    /// Partition counts by topic, from Metadata, and when they were looked up.
    partition_counts: HashMap<String, (u32, Instant)>,
    /// Callers waiting in `flush`: while non-zero every open batch is sent at once.
    flushing: usize,
    closed: bool,
    /// Set by a response (or anything else) that the sender should look at.
    wakeup: bool,
}

struct Inner {
    config: ProducerConfig,
    state: Mutex<State>,
    /// The sender waits here for work.
    work: Condvar,
    /// `send` (buffer space) and `flush` (idle) wait here.
    progress: Condvar,
    router: Router,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_sender(&self) {
        self.lock().wakeup = true;
        self.work.notify_one();
    }

    /// Partition count of `topic`, from the cache or a Metadata request.
    fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(&(n, at)) = self.lock().partition_counts.get(topic) {
            if at.elapsed() < self.config.metadata_max_age {
                return Ok(n);
            }
        }
        let timeout = self.config.request_timeout.min(self.config.max_block);
        let description = self
            .router
            .refresh(&[topic], timeout)?
            .topics
            .into_iter()
            .find(|(name, _)| name == topic)
            .map(|(_, t)| t)
            .unwrap_or_else(|| {
                Err(ClientError::Protocol(format!(
                    "Metadata response does not mention topic `{topic}`"
                )))
            })?;
        let n = description.partitions.len() as u32;
        if n == 0 {
            return Err(ClientError::Protocol(format!(
                "topic `{topic}` has no partitions"
            )));
        }
        self.lock()
            .partition_counts
            .insert(topic.to_owned(), (n, Instant::now()));
        Ok(n)
    }
}

/// An idempotent producer's id and epoch, from any broker; retried on other brokers
/// while they are unreachable, within `timeout`.
fn init_producer_id(router: &Router, timeout: Duration) -> Result<(i64, i16)> {
    let deadline = Instant::now() + timeout;
    let body = protocol::encode_init_producer_id();
    let mut attempts = 0u32;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let answer = router.any().and_then(|conn| {
            conn.request(ApiKey::InitProducerId, &body, &[], remaining)
                .wait()
        });
        match answer.and_then(|r| protocol::decode_init_producer_id(r.body())) {
            Ok(id) => return Ok(id),
            Err(e) if e.code() == Some(strata_schema::ErrorCode::UnknownApi) => {
                return Err(ClientError::Config(format!(
                    "enable_idempotence: the broker does not hand out producer ids ({e}); upgrade it or turn idempotence off"
                )))
            }
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                attempts += 1;
                std::thread::sleep(INIT_RETRY_BACKOFF.saturating_mul(attempts).min(remaining));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Wait before asking for a producer id again, times the attempts so far.
const INIT_RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Sends records to strata. Cheap to share behind an `Arc`; `send` takes `&self`.
/// Dropping it sends what is buffered (like [`close`](Producer::close)).
pub struct Producer {
    inner: Arc<Inner>,
    sender: Option<JoinHandle<()>>,
}

impl Producer {
    /// Checks the config, connects, and starts the sender thread.
    pub fn connect(config: ProducerConfig) -> Result<Producer> {
        config.check()?;
        let router = Router::connect(config.brokers.clone())?;
        let mut acc = Accumulator::new(config.batch_bytes, config.linger);
        if config.enable_idempotence {
            let (id, epoch) = init_producer_id(&router, config.max_block)?;
            acc = acc.with_producer(id, epoch);
        }
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                acc,
                partitioner: crate::partitioner::Partitioner::new(),
                partition_counts: HashMap::new(),
                flushing: 0,
                closed: false,
                wakeup: false,
            }),
            config,
            work: Condvar::new(),
            progress: Condvar::new(),
            router,
        });
        let sender_inner = inner.clone();
        let sender = std::thread::Builder::new()
            .name("strata-producer".into())
            .spawn(move || Sender::new(sender_inner).run())
            .map_err(|e| ClientError::Config(format!("cannot start the sender thread: {e}")))?;
        Ok(Producer {
            inner,
            sender: Some(sender),
        })
    }

    /// Queues `record`; the future resolves once the broker acknowledged its batch.
    ///
    /// Blocks the calling thread (up to `max_block`) only while the buffer is full or
    /// the topic's partition count is first looked up; errors in that phase come back
    /// through the future.
    pub fn send(&self, record: ProducerRecord) -> SendFuture {
        match self.enqueue(record) {
            Ok(pending) => pending,
            Err(e) => Pending::ready(Err(e)),
        }
    }

    /// [`send`](Self::send) and wait for the acknowledgement.
    pub fn send_blocking(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.send(record).wait()
    }

    fn enqueue(&self, record: ProducerRecord) -> Result<SendFuture> {
        let inner = &*self.inner;
        let charged = record_bytes(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
        if charged > inner.config.buffer_bytes || charged > BATCH_BYTES_MAX / 2 {
            return Err(ClientError::Config(format!(
                "record of about {charged} bytes is larger than the producer buffer ({} bytes) or half the batch limit ({BATCH_BYTES_MAX} bytes)",
                inner.config.buffer_bytes
            )));
        }
        // Keyed: fixed now; unkeyed: chosen under the lock below (sticky).
        let (partition, count) = match record.partition {
            Some(p) => (Some(p), None),
            None => {
                let n = inner.partition_count(&record.topic)?;
                let keyed = record
                    .key
                    .as_deref()
                    .map(|key| crate::partitioner::partition_for_key(key, n));
                (keyed, Some(n))
            }
        };
        let topic: Arc<str> = Arc::from(record.topic.as_str());
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let deadline = Instant::now() + inner.config.max_block;
        let mut state = inner.lock();
        while state.acc.buffered_bytes() > 0
            && state.acc.buffered_bytes() + charged > inner.config.buffer_bytes
        {
            if state.closed {
                return Err(ClientError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::BufferFull {
                    buffer_bytes: inner.config.buffer_bytes,
                    waited: inner.config.max_block,
                });
            }
            state = inner
                .progress
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if state.closed {
            return Err(ClientError::Closed);
        }
        let partition = match partition {
            Some(p) => p,
            None => {
                let n = count.unwrap_or(1);
                state.partitioner.partition(&record.topic, None, n)
            }
        };
        let (completer, pending) = completion();
        let appended = state.acc.append(
            &topic,
            partition,
            timestamp_ms,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
            completer,
            Instant::now(),
        );
        if appended.sealed {
            if let Some(n) = count {
                state.partitioner.batch_sealed(&record.topic, partition, n);
            }
        }
        // A new batch starts a linger clock and a sealed one is ready: the sender must
        // look either way; a record joining an open batch changes no deadline.
        if appended.sealed || appended.opened {
            state.wakeup = true;
            drop(state);
            inner.work.notify_one();
        }
        Ok(pending)
    }

    /// Sends every buffered record now and waits until each has been acknowledged or
    /// has failed. Records sent concurrently with `flush` are waited for too.
    pub fn flush(&self) {
        let inner = &*self.inner;
        let mut state = inner.lock();
        state.flushing += 1;
        state.wakeup = true;
        inner.work.notify_one();
        while !state.acc.is_idle() && !state.closed {
            state = inner
                .progress
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.flushing -= 1;
    }

    /// Sends what is buffered, waits for it, and stops the sender thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        {
            let mut state = self.inner.lock();
            state.closed = true;
            state.wakeup = true;
        }
        self.inner.work.notify_all();
        self.inner.progress.notify_all();
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Longest the sender sleeps with nothing due (a safety net: every event wakes it).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How much longer than the produce's `timeout_ms` the client waits for its answer.
const PRODUCE_RESPONSE_GRACE: Duration = Duration::from_secs(2);

/// Wakes the sender thread when a response completes.
struct SenderWaker(Weak<Inner>);

impl Wake for SenderWaker {
    fn wake(self: Arc<Self>) {
        if let Some(inner) = self.0.upgrade() {
            inner.wake_sender();
        }
    }
}

/// One Produce request on the wire and the batches it carries.
struct InFlight {
    pending: Pending<Result<Response>>,
    batches: Vec<ReadyBatch>,
}

/// The sender thread's loop and what only it touches.
struct Sender {
    inner: Arc<Inner>,
    in_flight: Vec<InFlight>,
    waker: Waker,
}

impl Sender {
    fn new(inner: Arc<Inner>) -> Sender {
        let waker = Waker::from(Arc::new(SenderWaker(Arc::downgrade(&inner))));
        Sender {
            inner,
            in_flight: Vec::new(),
            waker,
        }
    }

    fn run(mut self) {
        loop {
            self.collect_responses();
            let inner = self.inner.clone();
            let mut state = inner.lock();
            if state.closed && state.acc.is_idle() && self.in_flight.is_empty() {
                break;
            }
            let now = Instant::now();
            let flush = state.flushing > 0 || state.closed;
            let slots = inner
                .config
                .max_in_flight
                .saturating_sub(self.in_flight.len());
            let (ready, sealed) =
                state
                    .acc
                    .drain(now, flush, slots, inner.config.partition_in_flight_max());
            for (topic, partition) in &sealed {
                let n = state.partition_counts.get(&**topic).map_or(0, |e| e.0);
                state.partitioner.batch_sealed(topic, *partition, n);
            }
            if ready.is_empty() {
                if !state.wakeup {
                    // Anything already due was not drained because the in-flight limits
                    // hold it back: a response (which wakes us) frees it, so only
                    // future deadlines bound the wait.
                    let wait = state
                        .acc
                        .next_deadline()
                        .map(|t| t.saturating_duration_since(now))
                        .filter(|d| !d.is_zero())
                        .unwrap_or(IDLE_WAIT);
                    state = inner
                        .work
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                state.wakeup = false;
                continue;
            }
            drop(state);
            self.send(ready);
        }
        // Wake `flush` callers that raced with close.
        self.inner.progress.notify_all();
    }

    /// Groups batches by leader and topic, one batch per partition per request, and
    /// sends them.
    fn send(&mut self, ready: Vec<ReadyBatch>) {
        let mut requests: Vec<(Arc<Connection>, Vec<ReadyBatch>)> = Vec::new();
        let timeout = self.inner.config.request_timeout;
        for batch in ready {
            if let Err(e) = &batch.bytes {
                let e = e.clone();
                self.finish(batch, Err(e));
                continue;
            }
            let conn = match self
                .inner
                .router
                .leader(&batch.topic, batch.partition, timeout)
            {
                Ok(c) => c,
                Err(e) => {
                    self.retry_or_fail(batch, e);
                    continue;
                }
            };
            let slot = requests.iter_mut().find(|(c, r)| {
                Arc::ptr_eq(c, &conn)
                    && r[0].topic == batch.topic
                    && r.iter().all(|b| b.partition != batch.partition)
            });
            match slot {
                Some((_, r)) => r.push(batch),
                None => requests.push((conn, vec![batch])),
            }
        }
        for (conn, batches) in requests {
            self.send_request(&conn, batches);
        }
    }

    fn send_request(&mut self, conn: &Connection, batches: Vec<ReadyBatch>) {
        let config = &self.inner.config;
        let parts: Vec<(u32, u32)> = batches
            .iter()
            .map(|b| (b.partition, b.bytes.as_ref().map_or(0, |v| v.len() as u32)))
            .collect();
        let tail: Vec<&[u8]> = batches
            .iter()
            .map(|b| b.bytes.as_deref().unwrap_or(&[]))
            .collect();
        let timeout_ms = config.request_timeout.as_millis().min(u128::from(u32::MAX)) as u32;
        let body =
            protocol::encode_produce(&batches[0].topic, config.acks.wire(), timeout_ms, &parts);
        if config.acks == Acks::None {
            let result = conn.send_oneway(ApiKey::Produce, &body, &tail);
            for b in batches {
                match &result {
                    Ok(()) => self.finish(b, Ok((-1, -1))),
                    Err(e) => self.retry_or_fail(b, e.clone()),
                }
            }
            return;
        }
        // The broker answers REQUEST_TIMED_OUT at `timeout_ms`; wait a little longer
        // so that answer, not a client-side timeout, is what the caller sees.
        let wait = config.request_timeout + PRODUCE_RESPONSE_GRACE;
        let pending = conn.request(ApiKey::Produce, &body, &tail, wait);
        self.in_flight.push(InFlight { pending, batches });
    }

    /// Handles every response that has arrived.
    fn collect_responses(&mut self) {
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        let mut i = 0;
        while i < self.in_flight.len() {
            let response = match Pin::new(&mut self.in_flight[i].pending).poll(&mut cx) {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    i += 1;
                    continue;
                }
            };
            let InFlight { batches, .. } = self.in_flight.swap_remove(i);
            self.handle_response(batches, response);
        }
    }

    fn handle_response(&mut self, batches: Vec<ReadyBatch>, response: Result<Response>) {
        let results = response.and_then(|r| protocol::decode_produce(r.body()));
        let mut results = match results {
            Ok(results) => results,
            Err(e) => {
                for b in batches {
                    self.retry_or_fail(b, e.clone());
                }
                return;
            }
        };
        for batch in batches {
            let result = match results.iter().position(|(p, _)| *p == batch.partition) {
                Some(i) => results.swap_remove(i).1,
                None => Err(ClientError::Protocol(format!(
                    "Produce response has no result for partition {}",
                    batch.partition
                ))),
            };
            match result {
                Ok(appended) => self.finish(
                    batch,
                    Ok((appended.base_offset, appended.log_append_time_ms)),
                ),
                Err(e) => self.retry_or_fail(batch, e),
            }
        }
    }

    fn retry_or_fail(&mut self, batch: ReadyBatch, error: ClientError) {
        if error.is_stale_metadata() {
            self.inner.lock().partition_counts.remove(&*batch.topic);
        }
        if error.is_stale_metadata() || error.is_leader_moved() {
            self.inner.router.invalidate(&batch.topic);
        }
        let config = &self.inner.config;
        let cluster = self.inner.router.is_cluster();
        if config.should_retry(&error, batch.attempts, batch.created, cluster) {
            let backoff = self.inner.config.backoff(batch.attempts);
            self.inner.lock().acc.retry(batch, Instant::now(), backoff);
            return;
        }
        self.finish(batch, Err(error));
    }

    /// Completes a batch's records and frees its buffer space.
    fn finish(&mut self, batch: ReadyBatch, result: Result<(i64, i64)>) {
        self.inner.lock().acc.finished(&batch);
        match result {
            Ok((base_offset, log_append_time_ms)) => batch.succeed(base_offset, log_append_time_ms),
            Err(e) => batch.fail(&e),
        }
        self.inner.progress.notify_all();
    }
}
