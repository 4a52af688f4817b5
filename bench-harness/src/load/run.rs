//! The runner: one [`LoadSpec`] against one [`Target`], through its driver.
//!
//! - produce / e2e / fanout: consumers (if any) join first and every group must hold
//!   all partitions before producers start; producers then send on a shared start —
//!   on a fixed [`Schedule`] with `--rate N` (each record stamped with its intended
//!   send time, so latency includes any time it waited behind a stall), or as fast as
//!   the client takes records with `--rate max` — until the warm-up plus `--seconds`
//!   (by intended time) or `--messages` are sent. Once every acknowledgement is in,
//!   consumers read until each group holds as many records as were acknowledged.
//! - consume: producers build the backlog (`--backlog-bytes` or `--messages`) with
//!   nobody reading; then the consumers start and the drain is timed per group from
//!   its first record to its last.
//!
//! Each run creates fresh topics (`<prefix>-<run id>[-<i>]`) and deletes them at the
//! end, so counts never mix with earlier runs.
//!
//! [`Schedule`]: crate::schedule::Schedule

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::counts::Counts;
use crate::driver::{
    self, Driver, LoadConsumer, LoadProducer, ProducerSettings, Subscription, Target,
};
use crate::load::meter::Meter;
use crate::load::payload::{read_stamp, unix_us, KeyGen, ValueGen};
use crate::load::progress::{Progress, Watched};
use crate::load::result::{GroupResult, LoadResult};
use crate::load::spec::{LoadSpec, WorkloadKind};
use crate::pin::Pinner;
use crate::report::{latency_histogram, Latency};
use crate::schedule::Schedule;

/// Longest consumer groups may take to have every partition assigned.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// A fixed-rate producer gives up on overdue records this long after the end.
pub const LATE_SEND_MAX: Duration = Duration::from_secs(30);
/// One consumer poll waits at most this long.
const CONSUMER_POLL: Duration = Duration::from_millis(100);
/// Producers start together this long after the last one connected.
const START_DELAY: Duration = Duration::from_millis(20);
/// A due record is sent at most this late; the sleep before it is at most this long.
const SCHEDULE_SLEEP_MAX: Duration = Duration::from_millis(1);

/// A run's id: names its topics and groups.
fn run_id() -> String {
    format!("{:x}-{}", unix_us(), std::process::id())
}

/// The run's topic names.
pub fn topic_names(spec: &LoadSpec, run_id: &str) -> Vec<String> {
    if spec.topics == 1 {
        return vec![format!("{}-{run_id}", spec.topic)];
    }
    (0..spec.topics)
        .map(|i| format!("{}-{run_id}-{i}", spec.topic))
        .collect()
}

/// One consumer group of a run and what each of its members reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    /// Short name for reports: `g0`, `g1`, … or `assigned` without groups.
    pub name: String,
    /// The group id on the broker; `None` without groups.
    pub group_id: Option<String>,
    pub members: Vec<Subscription>,
}

/// The consumers of a run: with groups, `consumers` members per group, each group
/// subscribed to every topic; without, one set of `consumers` members with every
/// partition dealt to them in turn (members left without a partition are dropped).
pub fn group_plans(spec: &LoadSpec, topics: &[String], run_id: &str) -> Vec<GroupPlan> {
    if !spec.consumes() {
        return Vec::new();
    }
    match spec.groups() {
        0 => {
            let mut members: Vec<Vec<(String, u32)>> = vec![Vec::new(); spec.consumers as usize];
            let all = topics
                .iter()
                .flat_map(|t| (0..spec.partitions).map(move |p| (t.clone(), p)));
            for (i, tp) in all.enumerate() {
                members[i % spec.consumers as usize].push(tp);
            }
            vec![GroupPlan {
                name: "assigned".into(),
                group_id: None,
                members: members
                    .into_iter()
                    .filter(|m| !m.is_empty())
                    .map(Subscription::Assign)
                    .collect(),
            }]
        }
        g => (0..g)
            .map(|i| {
                let group_id = format!("{}-{run_id}-g{i}", spec.topic);
                let member = Subscription::Group {
                    group: group_id.clone(),
                    topics: topics.to_vec(),
                };
                GroupPlan {
                    name: format!("g{i}"),
                    group_id: Some(group_id),
                    members: vec![member; spec.consumers as usize],
                }
            })
            .collect(),
    }
}

/// Runs `spec` once against `target` (topics created and deleted) and returns what it
/// measured. Prints the progress line to stderr unless `quiet`.
pub fn run_load(target: &Target, spec: &LoadSpec, quiet: bool) -> anyhow::Result<LoadResult> {
    spec.validate()?;
    // Refuse unknown cores before connecting.
    Pinner::new(&spec.pin_cores)?;
    let driver: Arc<dyn Driver> = Arc::from(driver::connect(target)?);
    run_on(driver, target, spec, quiet)
}

/// [`run_load`] through an already connected `driver` (which `target` describes in
/// the report) — also the seam tests use to run the runner against a fake broker.
pub fn run_on(
    driver: Arc<dyn Driver>,
    target: &Target,
    spec: &LoadSpec,
    quiet: bool,
) -> anyhow::Result<LoadResult> {
    spec.validate()?;
    let pinner = Arc::new(Pinner::new(&spec.pin_cores)?);
    let run_id = run_id();
    let topics = topic_names(spec, &run_id);
    let mut created = Vec::new();
    let outcome = (|| {
        for t in &topics {
            driver.create_topic(t, spec.partitions, spec.replication_factor)?;
            created.push(t.clone());
        }
        let run = Run {
            spec,
            driver: driver.clone(),
            pinner,
            topics: &topics,
            run_id: &run_id,
            quiet,
        };
        run.execute()
    })();
    if !spec.keep_topics {
        for t in &created {
            if let Err(e) = driver.delete_topic(t) {
                eprintln!("warning: {e:#}");
            }
        }
    }
    let mut result = outcome?;
    result.target = target.clone();
    Ok(result)
}

/// A consumer group while the run goes on.
struct LiveGroup {
    name: String,
    group_id: Option<String>,
    meter: Arc<Meter>,
    /// Partitions each member holds now.
    assigned: Vec<Arc<AtomicUsize>>,
    /// Records the group must hold before its consumers stop (`u64::MAX`: not known).
    expected: Arc<AtomicU64>,
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
}

/// How much one producer sends.
#[derive(Clone, Copy, Debug)]
enum Budget {
    /// Until this long after the start (by intended send time on a schedule).
    Time(Duration),
    /// This many records.
    Records(u64),
    /// Records until their values reach this many bytes.
    Bytes(u64),
}

/// What one producer thread did.
#[derive(Clone, Copy, Debug, Default)]
struct ProducerOutcome {
    sent: u64,
    unsent: u64,
}

struct Run<'a> {
    spec: &'a LoadSpec,
    driver: Arc<dyn Driver>,
    pinner: Arc<Pinner>,
    topics: &'a [String],
    run_id: &'a str,
    quiet: bool,
}

impl Run<'_> {
    fn execute(&self) -> anyhow::Result<LoadResult> {
        let spec = self.spec;
        let plans = group_plans(spec, self.topics, self.run_id);
        let publish = Arc::new(Meter::new());
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let group_meters: Vec<Arc<Meter>> = plans.iter().map(|_| Arc::new(Meter::new())).collect();
        let watched = Watched {
            sent: sent.clone(),
            publish: publish.clone(),
            groups: group_meters.clone(),
        };
        let drain = spec.workload == WorkloadKind::Consume;

        let mut groups = Vec::new();
        if !drain {
            groups = self.start_consumers(&plans, &group_meters, &stop)?;
            if let Err(e) = self.wait_assigned(&mut groups) {
                stop.store(true, Ordering::Relaxed);
                let _ = join_consumers_named(&mut groups);
                return Err(e);
            }
        }

        let progress = Progress::start(watched, self.quiet);
        let produced = self.produce(&publish, &group_meters, &sent, drain);
        let (outcome, window_start_us) = match produced {
            Ok(p) => p,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                let _ = join_consumers_named(&mut groups);
                progress.finish();
                return Err(e);
            }
        };
        let publish_totals = publish.totals();
        let acked = publish_totals.count;

        let drain_start_us = unix_us();
        if drain {
            for m in &group_meters {
                m.start_window(0);
            }
            groups = self.start_consumers(&plans, &group_meters, &stop)?;
        }
        for g in &groups {
            g.expected.store(acked, Ordering::Relaxed);
        }
        let consumer_errors = join_consumers_named(&mut groups);
        let timeline = progress.finish();
        if let Some(e) = consumer_errors {
            return Err(e);
        }

        let counts_of = |received: u64| Counts {
            sent: outcome.sent,
            acked,
            received,
        };
        let mut e2e_hist = latency_histogram();
        let mut group_results = Vec::new();
        for g in &groups {
            let t = g.meter.totals();
            let (secs, first_record_secs, drain_secs) = if drain {
                let first = t
                    .first_done_us
                    .map(|f| f.saturating_sub(drain_start_us) as f64 / 1e6);
                (t.span_secs(), first, Some(t.span_secs()))
            } else {
                (t.secs_since(window_start_us), None, None)
            };
            if !drain {
                e2e_hist
                    .add(&t.latency)
                    .context("merge the groups' latency histograms")?;
            }
            group_results.push(GroupResult {
                name: g.name.clone(),
                group_id: g.group_id.clone(),
                counts: counts_of(t.count),
                mb_per_s: per_s(t.counted_bytes as f64 / 1e6, secs),
                msgs_per_s: per_s(t.counted as f64, secs),
                e2e: if drain {
                    Latency::default()
                } else {
                    Latency::of(&t.latency)
                },
                first_record_secs,
                drain_secs,
            });
        }
        let measured_secs = publish_totals.secs_since(window_start_us);
        let received_min = group_results
            .iter()
            .map(|g| g.counts.received)
            .min()
            .unwrap_or(0);
        Ok(LoadResult {
            spec: spec.clone(),
            run_id: self.run_id.to_string(),
            topics: self.topics.to_vec(),
            counts: counts_of(received_min),
            unsent: outcome.unsent,
            publish_errors: publish_totals.errors,
            first_publish_error: publish_totals.first_error.clone(),
            publish_mb_per_s: per_s(publish_totals.counted_bytes as f64 / 1e6, measured_secs),
            publish_msgs_per_s: per_s(publish_totals.counted as f64, measured_secs),
            publish: Latency::of(&publish_totals.latency),
            receive_mb_per_s: group_results.iter().map(|g| g.mb_per_s).sum(),
            receive_msgs_per_s: group_results.iter().map(|g| g.msgs_per_s).sum(),
            groups: group_results,
            e2e: Latency::of(&e2e_hist),
            measured_secs,
            timeline,
            publish_hist: publish_totals.latency,
            e2e_hist,
            ..LoadResult::default()
        })
    }

    /// Starts one thread per consumer of every group.
    fn start_consumers(
        &self,
        plans: &[GroupPlan],
        meters: &[Arc<Meter>],
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<Vec<LiveGroup>> {
        let mut groups = Vec::new();
        for (plan, meter) in plans.iter().zip(meters) {
            let expected = Arc::new(AtomicU64::new(u64::MAX));
            let mut assigned = Vec::new();
            let mut threads = Vec::new();
            for (i, sub) in plan.members.iter().enumerate() {
                let a = Arc::new(AtomicUsize::new(0));
                assigned.push(a.clone());
                let member = Member {
                    driver: self.driver.clone(),
                    subscription: sub.clone(),
                    meter: meter.clone(),
                    assigned: a,
                    expected: expected.clone(),
                    stop: stop.clone(),
                    pinner: self.pinner.clone(),
                    idle_timeout: Duration::from_secs_f64(self.spec.drain_timeout_seconds),
                };
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("bench-consumer-{i}"))
                        .spawn(move || member.run())
                        .context("start a consumer thread")?,
                );
            }
            groups.push(LiveGroup {
                name: plan.name.clone(),
                group_id: plan.group_id.clone(),
                meter: meter.clone(),
                assigned,
                expected,
                threads,
            });
        }
        Ok(groups)
    }

    /// Waits until every group holds all partitions (each member at least one, when
    /// there are enough), so no rebalance falls into the measurement.
    fn wait_assigned(&self, groups: &mut [LiveGroup]) -> anyhow::Result<()> {
        let total = (self.spec.topics * self.spec.partitions) as usize;
        let deadline = Instant::now() + JOIN_TIMEOUT;
        loop {
            let mut ready = true;
            for g in groups.iter_mut() {
                if let Some(i) = g.threads.iter().position(JoinHandle::is_finished) {
                    let t = g.threads.remove(i);
                    let r = t
                        .join()
                        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?;
                    r.with_context(|| format!("consumer of group {}", g.name))?;
                    bail!(
                        "a consumer of group {} stopped before the run started",
                        g.name
                    );
                }
                let held: Vec<usize> = g
                    .assigned
                    .iter()
                    .map(|a| a.load(Ordering::Relaxed))
                    .collect();
                let each = held.len() > total || held.iter().all(|&n| n > 0);
                ready &= held.iter().sum::<usize>() == total && each;
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let state: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        let held: Vec<usize> = g
                            .assigned
                            .iter()
                            .map(|a| a.load(Ordering::Relaxed))
                            .collect();
                        format!("{} holds {held:?}", g.name)
                    })
                    .collect();
                bail!(
                    "consumers did not get all {total} partitions within {} s: {}",
                    JOIN_TIMEOUT.as_secs(),
                    state.join("; ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the producers to the end of their budget and waits for every
    /// acknowledgement; returns their outcome and the measured window's start (µs).
    fn produce(
        &self,
        publish: &Arc<Meter>,
        group_meters: &[Arc<Meter>],
        sent: &Arc<AtomicU64>,
        drain: bool,
    ) -> anyhow::Result<(ProducerOutcome, u64)> {
        let spec = self.spec;
        let n = spec.producer_threads() as u64;
        let share = |total: u64, i: u64| total / n + u64::from(i < total % n);
        let warmup = if drain {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(spec.warmup_seconds)
        };
        // MB/s becomes records/s with the mean record size; each producer takes a share.
        let rate_each = spec
            .parsed_rate()?
            .msgs_per_s(spec.record_bytes.mean_bytes().round() as usize)
            .map(|total| total / n as f64);
        let settings = ProducerSettings {
            acks: spec.acks.clone(),
            batch_bytes: spec.batch_bytes,
            linger: Duration::from_millis(spec.linger_ms),
        };
        let start: Arc<OnceLock<(Instant, u64)>> = Arc::new(OnceLock::new());
        let barrier = Arc::new(Barrier::new(n as usize + 1));
        let mut threads = Vec::new();
        for i in 0..n {
            let budget = match (drain, spec.messages) {
                (_, Some(m)) => Budget::Records(share(m, i)),
                (true, None) => Budget::Bytes(share(spec.backlog_bytes, i)),
                (false, None) => Budget::Time(warmup + Duration::from_secs_f64(spec.seconds)),
            };
            let topic = self.topics[(i / spec.producers as u64) as usize].clone();
            let p = ProducerThread {
                driver: self.driver.clone(),
                settings: settings.clone(),
                publish: publish.clone(),
                sent: sent.clone(),
                pinner: self.pinner.clone(),
                start: start.clone(),
                barrier: barrier.clone(),
                topic,
                budget,
                msgs_per_s: rate_each,
                values: ValueGen::new(spec.record_bytes, spec.seed.wrapping_add(i)),
                keys: KeyGen::new(
                    spec.keys,
                    spec.seed.wrapping_mul(31).wrapping_add(i),
                    i * 7919,
                ),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("bench-producer-{i}"))
                    .spawn(move || p.run())
                    .context("start a producer thread")?,
            );
        }
        let start_at = Instant::now() + START_DELAY;
        let start_us = unix_us() + START_DELAY.as_micros() as u64;
        let window_start_us = start_us + warmup.as_micros() as u64;
        if drain {
            publish.start_window(0);
        } else {
            publish.start_window(window_start_us);
            for m in group_meters {
                m.start_window(window_start_us);
            }
        }
        start.get_or_init(|| (start_at, start_us));
        barrier.wait();
        let mut outcome = ProducerOutcome::default();
        let mut first_error = None;
        for t in threads {
            match t
                .join()
                .map_err(|_| anyhow::anyhow!("producer thread panicked"))?
            {
                Ok(o) => {
                    outcome.sent += o.sent;
                    outcome.unsent += o.unsent;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok((outcome, if drain { start_us } else { window_start_us }))
    }
}

fn per_s(amount: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Waits for every consumer thread; the first error, with its group.
fn join_consumers_named(groups: &mut [LiveGroup]) -> Option<anyhow::Error> {
    let mut first = None;
    for g in groups.iter_mut() {
        for t in g.threads.drain(..) {
            let r = match t.join() {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("consumer thread panicked")),
            };
            if let Err(e) = r {
                first.get_or_insert(e.context(format!("consumer of group {}", g.name)));
            }
        }
    }
    first
}

/// One producer thread's work.
struct ProducerThread {
    driver: Arc<dyn Driver>,
    settings: ProducerSettings,
    publish: Arc<Meter>,
    sent: Arc<AtomicU64>,
    pinner: Arc<Pinner>,
    start: Arc<OnceLock<(Instant, u64)>>,
    barrier: Arc<Barrier>,
    topic: String,
    budget: Budget,
    /// This producer's share of a fixed rate; `None` for max.
    msgs_per_s: Option<f64>,
    values: ValueGen,
    keys: KeyGen,
}

impl ProducerThread {
    fn run(mut self) -> anyhow::Result<ProducerOutcome> {
        self.pinner.pin_current();
        let producer = self.driver.producer(&self.settings, self.publish.clone());
        // Everyone meets here, connected or not, so the main thread never waits alone.
        self.barrier.wait();
        let mut producer = producer?;
        let &(start, start_us) = self
            .start
            .get()
            .context("start time set before the barrier")?;
        if let Some(wait) = start.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let outcome = self.send_all(producer.as_mut(), start, start_us);
        let closed = producer.close();
        let outcome = outcome?;
        closed?;
        Ok(outcome)
    }

    fn send_all(
        &mut self,
        producer: &mut dyn LoadProducer,
        start: Instant,
        start_us: u64,
    ) -> anyhow::Result<ProducerOutcome> {
        let schedule = self.msgs_per_s.map(|r| Schedule::new(r, start));
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut unsent = 0;
        loop {
            match self.budget {
                Budget::Records(m) if n >= m => break,
                Budget::Bytes(b) if bytes >= b => break,
                _ => {}
            }
            let intended_us = match &schedule {
                Some(s) => {
                    let offset = s.offset(n);
                    if let Budget::Time(d) = self.budget {
                        if offset >= d {
                            break;
                        }
                        if start.elapsed() > d + LATE_SEND_MAX {
                            let due = (d.as_secs_f64() * self.msgs_per_s.unwrap_or(0.0)).ceil();
                            unsent = (due as u64).saturating_sub(n);
                            break;
                        }
                    }
                    if let Some(wait) = s.wait_before(n, Instant::now()) {
                        std::thread::sleep(wait.min(SCHEDULE_SLEEP_MAX));
                        continue;
                    }
                    start_us + offset.as_micros() as u64
                }
                None => {
                    if let Budget::Time(d) = self.budget {
                        if start.elapsed() >= d {
                            break;
                        }
                    }
                    unix_us()
                }
            };
            let key = self.keys.next_key();
            let value = self.values.next_value(intended_us);
            bytes += value.len() as u64;
            producer.send(&self.topic, key, value)?;
            n += 1;
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ProducerOutcome { sent: n, unsent })
    }
}

/// One consumer thread's work.
struct Member {
    driver: Arc<dyn Driver>,
    subscription: Subscription,
    meter: Arc<Meter>,
    assigned: Arc<AtomicUsize>,
    expected: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    pinner: Arc<Pinner>,
    /// Once the expected count is known, give up after this long without a record.
    idle_timeout: Duration,
}

impl Member {
    fn run(self) -> anyhow::Result<()> {
        self.pinner.pin_current();
        let mut consumer = self.driver.consumer(&self.subscription)?;
        let result = self.consume(consumer.as_mut());
        let closed = consumer.close();
        result?;
        closed
    }

    fn consume(&self, consumer: &mut dyn LoadConsumer) -> anyhow::Result<()> {
        let meter = &self.meter;
        let mut on_value = |v: &[u8]| match read_stamp(v) {
            Some(intended_us) => meter.record(intended_us, unix_us(), v.len()),
            None => meter.error(|| "received a record without a send-time stamp".into()),
        };
        let mut last_record = Instant::now();
        let mut expected_since: Option<Instant> = None;
        loop {
            self.assigned.store(consumer.assigned(), Ordering::Relaxed);
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let expected = self.expected.load(Ordering::Relaxed);
            if expected != u64::MAX {
                if meter.count() >= expected {
                    return Ok(());
                }
                let since = *expected_since.get_or_insert_with(Instant::now);
                if since.max(last_record).elapsed() > self.idle_timeout {
                    return Ok(());
                }
            }
            if consumer.poll(CONSUMER_POLL, &mut on_value)? > 0 {
                last_record = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_groups_are_named_by_run() {
        let spec = LoadSpec {
            topics: 2,
            partitions: 3,
            consumers: 4,
            ..LoadSpec::default()
        };
        let topics = topic_names(&spec, "r1");
        assert_eq!(topics, ["strata-bench-r1-0", "strata-bench-r1-1"]);
        assert_eq!(topic_names(&LoadSpec::default(), "r1"), ["strata-bench-r1"]);

        // No group: 6 partitions dealt to 4 members in turn.
        let plans = group_plans(&spec, &topics, "r1");
        assert_eq!(plans.len(), 1);
        let sizes: Vec<usize> = plans[0]
            .members
            .iter()
            .map(|m| match m {
                Subscription::Assign(p) => p.len(),
                Subscription::Group { .. } => 0,
            })
            .collect();
        assert_eq!(sizes, [2, 2, 1, 1]);

        // More members than partitions: the idle ones are not started.
        let wide = LoadSpec {
            consumers: 5,
            ..LoadSpec::default()
        };
        let t = topic_names(&wide, "r1");
        assert_eq!(group_plans(&wide, &t, "r1")[0].members.len(), 1);

        // Fan-out: every group subscribes to every topic with `consumers` members.
        let fan = LoadSpec {
            workload: WorkloadKind::Fanout,
            groups: Some(2),
            consumers: 2,
            ..spec.clone()
        };
        let plans = group_plans(&fan, &topics, "r1");
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[1].name, "g1");
        assert_eq!(plans[1].group_id.as_deref(), Some("strata-bench-r1-g1"));
        assert_eq!(plans[1].members.len(), 2);
        assert_eq!(
            plans[1].members[0],
            Subscription::Group {
                group: "strata-bench-r1-g1".into(),
                topics: topics.clone()
            }
        );

        let produce = LoadSpec {
            workload: WorkloadKind::Produce,
            ..LoadSpec::default()
        };
        assert!(group_plans(&produce, &topics, "r1").is_empty());
    }
}
