//! The harness's own correctness, with no broker: its percentiles are hdrhistogram's,
//! a fixed-rate run with a stall shows the stall in its tail (coordinated omission
//! corrected), and sent, acknowledged and received counts match unless records drop —
//! first on simulations, then through the real load runner (every workload) driving
//! an in-process fake broker with injected stalls and losses.

mod fake_broker;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use fake_broker::{FakeBroker, Faults};
use hdrhistogram::Histogram;
use strata_bench::counts::Counts;
use strata_bench::load::payload::KeyDistribution;
use strata_bench::load::result::LoadResult;
use strata_bench::load::run::run_on;
use strata_bench::load::spec::{LoadSpec, WorkloadKind};
use strata_bench::report::{latency_histogram, record_us, Latency};
use strata_bench::schedule::{Rate, Schedule};

fn assert_matches_hdr(h: &Histogram<u64>) {
    let l = Latency::of(h);
    assert_eq!(l.count, h.len());
    assert_eq!(l.p50_us, h.value_at_quantile(0.50) as f64);
    assert_eq!(l.p90_us, h.value_at_quantile(0.90) as f64);
    assert_eq!(l.p99_us, h.value_at_quantile(0.99) as f64);
    assert_eq!(l.p999_us, h.value_at_quantile(0.999) as f64);
    assert_eq!(l.p9999_us, h.value_at_quantile(0.9999) as f64);
    assert_eq!(l.max_us, h.max() as f64);
}

#[test]
fn percentiles_match_hdrhistogram_on_uniform_input() {
    let mut h = latency_histogram();
    for us in 1..=10_000u64 {
        record_us(&mut h, us);
    }
    assert_matches_hdr(&h);
    let l = Latency::of(&h);
    // 3 significant digits: within 0.1 % of the exact rank.
    assert!((l.p50_us - 5_000.0).abs() <= 5.0, "p50 {}", l.p50_us);
    assert!((l.p99_us - 9_900.0).abs() <= 10.0, "p99 {}", l.p99_us);
    assert!((l.p999_us - 9_990.0).abs() <= 10.0, "p99.9 {}", l.p999_us);
    assert!((l.max_us - 10_000.0).abs() <= 10.0, "max {}", l.max_us);
}

#[test]
fn percentiles_match_hdrhistogram_on_bimodal_input() {
    let mut h = latency_histogram();
    for _ in 0..9_800 {
        record_us(&mut h, 100);
    }
    for _ in 0..200 {
        record_us(&mut h, 50_000);
    }
    assert_matches_hdr(&h);
    let l = Latency::of(&h);
    assert_eq!(l.p50_us, 100.0);
    assert!((l.p99_us - 50_000.0).abs() <= 50.0, "p99 {}", l.p99_us);
}

#[test]
fn median_of_is_the_per_field_median() {
    let l = |p50, p99, p999, max| Latency {
        count: 10,
        p50_us: p50,
        p99_us: p99,
        p999_us: p999,
        max_us: max,
        ..Latency::default()
    };
    let m = Latency::median_of(&[
        l(1.0, 30.0, 200.0, 9.0),
        l(3.0, 10.0, 100.0, 7.0),
        l(2.0, 20.0, 300.0, 8.0),
    ]);
    assert_eq!(
        m,
        Latency {
            count: 30,
            ..l(2.0, 20.0, 200.0, 8.0)
        }
    );
}

/// Latency histograms (from intended and from actual send time) of a closed-loop
/// sender at `rate` for `run`, against a service that answers in `service` except
/// once, at the first send at or after `stall_at`, when it takes `stall`. Virtual
/// time: nothing sleeps.
fn simulate_stall(
    rate: Rate,
    run: Duration,
    service: Duration,
    stall_at: Duration,
    stall: Duration,
) -> (Histogram<u64>, Histogram<u64>) {
    let start = Instant::now();
    let schedule = rate.schedule(1, start).expect("a fixed rate");
    let (mut from_intended, mut from_sent) = (latency_histogram(), latency_histogram());
    let mut free_at = start; // when the sender may send again (virtual clock)
    let mut stalled = false;
    let mut n = 0u64;
    while schedule.offset(n) < run {
        let intended = schedule.intended(n);
        let sent = intended.max(free_at);
        let took = if !stalled && sent >= start + stall_at {
            stalled = true;
            stall
        } else {
            service
        };
        let done = sent + took;
        record_us(&mut from_intended, (done - intended).as_micros() as u64);
        record_us(&mut from_sent, (done - sent).as_micros() as u64);
        free_at = done;
        n += 1;
    }
    assert!(stalled, "the stall was injected");
    (from_intended, from_sent)
}

#[test]
fn fixed_rate_run_reports_a_stall_in_its_tail() {
    let (intended, sent) = simulate_stall(
        Rate::MsgsPerS(1000.0),
        Duration::from_secs(2),
        Duration::from_micros(100),
        Duration::from_millis(500),
        Duration::from_millis(200),
    );
    assert_eq!(intended.len(), 2000);
    let (i, s) = (Latency::of(&intended), Latency::of(&sent));
    // ~200 of 2000 messages were scheduled during the 200 ms stall: 10 % of the run
    // waited behind it, so the corrected p99 is well into the stall.
    assert!(i.p99_us >= 100_000.0, "corrected p99 {} us", i.p99_us);
    assert!(i.max_us >= 200_000.0, "corrected max {} us", i.max_us);
    // Measured from the actual send, only one message saw the stall: it hides.
    assert!(s.p99_us < 1_000.0, "uncorrected p99 {} us", s.p99_us);
    assert!(s.p999_us < 1_000.0, "uncorrected p99.9 {} us", s.p999_us);
    assert!(s.max_us >= 200_000.0, "uncorrected max {} us", s.max_us);
}

#[test]
fn schedule_spaces_a_mb_per_s_rate_by_message_size() {
    let start = Instant::now();
    let s = Rate::MbPerS(1.0).schedule(1000, start).expect("fixed");
    assert_eq!(s.offset(1000), Duration::from_secs(1));
    assert!(Rate::Max.schedule(1000, start).is_none());
    let direct = Schedule::new(1000.0, start);
    assert_eq!(direct.intended(7), s.intended(7));
}

/// A producer sends `n` records through a bounded broker log and a consumer reads
/// them back; `drop_every` > 0 makes the broker lose every such acknowledged record
/// before the consumer reads it.
fn simulate_counts(n: u64, drop_every: u64) -> Counts {
    const LOG_RECORDS_MAX: usize = 64;
    let mut log: VecDeque<u64> = VecDeque::with_capacity(LOG_RECORDS_MAX);
    let mut counts = Counts::default();
    let mut next = 0u64;
    while next < n || !log.is_empty() {
        while next < n && log.len() < LOG_RECORDS_MAX {
            counts.sent += 1;
            log.push_back(next); // appended, then acknowledged
            counts.acked += 1;
            next += 1;
        }
        while let Some(r) = log.pop_front() {
            if drop_every > 0 && r % drop_every == drop_every - 1 {
                continue; // lost after the acknowledgement
            }
            counts.received += 1;
        }
    }
    counts
}

#[test]
fn counts_match_when_nothing_is_lost() {
    let c = simulate_counts(10_000, 0);
    assert_eq!((c.sent, c.acked, c.received), (10_000, 10_000, 10_000));
    assert!(c.complete());
    assert_eq!(c.shortfall(), None);
}

#[test]
fn counts_report_a_shortfall_when_records_drop() {
    let c = simulate_counts(10_000, 100);
    assert_eq!((c.sent, c.acked, c.received), (10_000, 10_000, 9_900));
    assert!(!c.complete());
    assert_eq!(c.lost(), 100);
    assert_eq!(
        c.shortfall().as_deref(),
        Some("100 acknowledged records were not received")
    );
    let unacked = Counts {
        sent: 10,
        acked: 8,
        received: 8,
    };
    assert_eq!(
        unacked.shortfall().as_deref(),
        Some("2 sent records were not acknowledged")
    );
}

/// Runs `spec` through the load runner against a fake broker with `faults`.
fn run_fake(spec: &LoadSpec, faults: Faults) -> LoadResult {
    let broker = FakeBroker::new(faults, spec.consumers);
    let (driver, target) = broker.driver();
    let r = run_on(driver, &target, spec, true).expect("run against the fake broker");
    assert_eq!(broker.topics(), 0, "the run deleted its topics");
    r
}

fn counted(workload: WorkloadKind, messages: u64) -> LoadSpec {
    LoadSpec {
        workload,
        partitions: 4,
        producers: 2,
        consumers: 2,
        messages: Some(messages),
        warmup_seconds: 0.0,
        drain_timeout_seconds: 1.0,
        ..LoadSpec::default()
    }
}

#[test]
fn runner_counts_match_end_to_end() {
    let spec = LoadSpec {
        topics: 2,
        keys: KeyDistribution::RoundRobin,
        record_bytes: "16..2048".parse().expect("size range"),
        ..counted(WorkloadKind::E2e, 20_000)
    };
    let r = run_fake(&spec, Faults::default());
    assert_eq!(
        (r.counts.sent, r.counts.acked, r.counts.received),
        (20_000, 20_000, 20_000)
    );
    assert!(r.shortfalls().is_empty(), "{:?}", r.shortfalls());
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.publish.count, 20_000, "every acknowledgement measured");
    assert_eq!(r.e2e.count, 20_000, "every receipt measured");
    assert!(r.publish_mb_per_s > 0.0 && r.receive_mb_per_s > 0.0);
    assert_matches_hdr(&r.publish_hist);
    assert_eq!(Latency::of(&r.e2e_hist), r.e2e);
}

#[test]
fn runner_counts_every_group_of_a_fanout() {
    let spec = LoadSpec {
        groups: Some(3),
        ..counted(WorkloadKind::Fanout, 5_000)
    };
    let r = run_fake(&spec, Faults::default());
    assert_eq!(r.groups.len(), 3);
    for g in &r.groups {
        assert_eq!(
            (g.counts.sent, g.counts.acked, g.counts.received),
            (5_000, 5_000, 5_000),
            "group {}",
            g.name
        );
        assert_eq!(g.e2e.count, 5_000, "group {}", g.name);
    }
    assert_eq!(
        r.e2e.count, 15_000,
        "the merged histogram holds every group"
    );
    assert!(r.shortfalls().is_empty(), "{:?}", r.shortfalls());
}

#[test]
fn runner_drains_a_backlog_of_the_given_size() {
    let spec = LoadSpec {
        record_bytes: "1000".parse().expect("size"),
        backlog_bytes: 1_000_000,
        messages: None,
        ..counted(WorkloadKind::Consume, 1)
    };
    let r = run_fake(&spec, Faults::default());
    assert_eq!(
        (r.counts.sent, r.counts.acked, r.counts.received),
        (1_000, 1_000, 1_000)
    );
    let g = &r.groups[0];
    assert!(g.drain_secs.is_some() && g.first_record_secs.is_some());
    assert_eq!(g.e2e.count, 0, "a drain reports no end-to-end latency");
    assert!(r.shortfalls().is_empty(), "{:?}", r.shortfalls());
}

#[test]
fn runner_produce_only_counts_acknowledgements() {
    let r = run_fake(&counted(WorkloadKind::Produce, 3_000), Faults::default());
    assert_eq!((r.counts.sent, r.counts.acked), (3_000, 3_000));
    assert!(r.groups.is_empty());
    assert!(r.shortfalls().is_empty(), "{:?}", r.shortfalls());
}

#[test]
fn runner_reports_lost_records() {
    let spec = counted(WorkloadKind::E2e, 10_000);
    let r = run_fake(
        &spec,
        Faults {
            drop_every: 100,
            ..Faults::default()
        },
    );
    assert_eq!(
        (r.counts.sent, r.counts.acked, r.counts.received),
        (10_000, 10_000, 9_900)
    );
    assert_eq!(
        r.shortfalls(),
        ["group assigned: 100 acknowledged records were not received"]
    );
}

#[test]
fn runner_at_a_fixed_rate_reports_a_stall_in_its_tail() {
    // 2000 records/s for 2 s; the broker blocks every send for 300 ms once, 0.5 s in.
    let spec = LoadSpec {
        rate: "2000msg/s".into(),
        seconds: 2.0,
        warmup_seconds: 0.0,
        partitions: 1,
        drain_timeout_seconds: 1.0,
        ..LoadSpec::default()
    };
    let stall = Duration::from_millis(300);
    let r = run_fake(
        &spec,
        Faults {
            stall: Some((Duration::from_millis(500), stall)),
            ..Faults::default()
        },
    );
    assert_eq!(r.counts.sent, 4_000, "every scheduled record was sent");
    assert_eq!(r.counts.received, 4_000);
    // ~600 of 4000 records (15 %) were due during the stall: measured from their
    // intended send times the p99 lies deep in it, though each waited in no queue.
    for (what, l) in [("publish", r.publish), ("end-to-end", r.e2e)] {
        assert!(l.p90_us >= 50_000.0, "{what} corrected p90 {} us", l.p90_us);
        assert!(
            l.p99_us >= 200_000.0,
            "{what} corrected p99 {} us",
            l.p99_us
        );
        assert!(
            l.max_us >= 280_000.0,
            "{what} corrected max {} us",
            l.max_us
        );
    }
    // Outside the stall the fake answers at once: the median stays small.
    assert!(r.publish.p50_us < 50_000.0, "p50 {} us", r.publish.p50_us);
}
