//! An in-process broker behind strata-bench's `Driver` seam, so the load runner's
//! accounting and latency measurement can be tested without a network or a broker
//! process: partition logs in memory, acknowledgements at once, and two injectable
//! faults — one stall of every send (the broker blocks the producer), and records
//! that are acknowledged but never stored (lost).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strata_bench::driver::{
    Driver, DriverKind, LoadConsumer, LoadProducer, ProducerSettings, Subscription, Target,
};
use strata_bench::load::meter::Meter;
use strata_bench::load::payload::{read_stamp, unix_us};

/// Faults of a fake broker.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// `(after, length)`: the first send at least `after` past the first send blocks
    /// for `length`.
    pub stall: Option<(Duration, Duration)>,
    /// Every n-th stored record (n > 0) is acknowledged but dropped.
    pub drop_every: u64,
}

#[derive(Default)]
struct State {
    /// Partition logs per topic.
    logs: HashMap<String, Vec<Vec<Vec<u8>>>>,
    first_send: Option<Instant>,
    stalled: bool,
    appended: u64,
    /// Members that joined each group so far.
    joined: HashMap<String, u32>,
}

/// The fake broker; [`FakeBroker::driver`] hands out the `Driver` for a run.
pub struct FakeBroker {
    state: Mutex<State>,
    arrived: Condvar,
    faults: Faults,
    /// Group members take partitions `i % members_per_group == member`.
    members_per_group: u32,
}

impl FakeBroker {
    pub fn new(faults: Faults, members_per_group: u32) -> Arc<FakeBroker> {
        Arc::new(FakeBroker {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            faults,
            members_per_group: members_per_group.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A driver of this broker, and the target reports name it by.
    pub fn driver(self: &Arc<Self>) -> (Arc<dyn Driver>, Target) {
        let target = Target {
            driver: DriverKind::Native,
            brokers: "fake".into(),
            kafka_config: Vec::new(),
        };
        (Arc::new(FakeDriver(self.clone())), target)
    }

    /// Topics still present.
    pub fn topics(&self) -> usize {
        self.lock().logs.len()
    }
}

struct FakeDriver(Arc<FakeBroker>);

impl Driver for FakeDriver {
    fn create_topic(&self, topic: &str, partitions: u32, _: u16) -> anyhow::Result<()> {
        self.0
            .lock()
            .logs
            .insert(topic.to_string(), vec![Vec::new(); partitions as usize]);
        Ok(())
    }

    fn delete_topic(&self, topic: &str) -> anyhow::Result<()> {
        self.0.lock().logs.remove(topic);
        Ok(())
    }

    fn producer(
        &self,
        _: &ProducerSettings,
        publish: Arc<Meter>,
    ) -> anyhow::Result<Box<dyn LoadProducer>> {
        Ok(Box::new(FakeProducer {
            broker: self.0.clone(),
            publish,
            next_partition: 0,
        }))
    }

    fn consumer(&self, subscription: &Subscription) -> anyhow::Result<Box<dyn LoadConsumer>> {
        let mut s = self.0.lock();
        let partitions: Vec<(String, usize)> = match subscription {
            Subscription::Assign(list) => {
                list.iter().map(|(t, p)| (t.clone(), *p as usize)).collect()
            }
            Subscription::Group { group, topics } => {
                let joined = s.joined.entry(group.clone()).or_default();
                let member = *joined;
                *joined += 1;
                let mut all = Vec::new();
                for t in topics {
                    let n = s.logs.get(t).map_or(0, Vec::len);
                    all.extend((0..n).map(|p| (t.clone(), p)));
                }
                all.into_iter()
                    .enumerate()
                    .filter(|(i, _)| *i as u32 % self.0.members_per_group == member)
                    .map(|(_, tp)| tp)
                    .collect()
            }
        };
        Ok(Box::new(FakeConsumer {
            broker: self.0.clone(),
            positions: partitions.into_iter().map(|(t, p)| (t, p, 0)).collect(),
        }))
    }
}

struct FakeProducer {
    broker: Arc<FakeBroker>,
    publish: Arc<Meter>,
    next_partition: usize,
}

impl LoadProducer for FakeProducer {
    fn send(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> anyhow::Result<()> {
        let b = &self.broker;
        let stall = {
            let mut s = b.lock();
            let first = *s.first_send.get_or_insert_with(Instant::now);
            match b.faults.stall {
                Some((after, length)) if !s.stalled && first.elapsed() >= after => {
                    s.stalled = true;
                    Some(length)
                }
                _ => None,
            }
        };
        if let Some(length) = stall {
            std::thread::sleep(length);
        }
        {
            let mut s = b.lock();
            let drop_every = b.faults.drop_every;
            s.appended += 1;
            let dropped = s.appended.checked_rem(drop_every) == Some(0);
            let logs = s
                .logs
                .get_mut(topic)
                .ok_or_else(|| anyhow::anyhow!("no topic {topic}"))?;
            let p = match key {
                Some(k) => k.iter().map(|&x| x as usize).sum::<usize>() % logs.len(),
                None => {
                    self.next_partition += 1;
                    self.next_partition % logs.len()
                }
            };
            if !dropped {
                logs[p].push(value.to_vec());
            }
        }
        b.arrived.notify_all();
        let intended_us = read_stamp(value).expect("stamped value");
        self.publish.record(intended_us, unix_us(), value.len());
        Ok(())
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

struct FakeConsumer {
    broker: Arc<FakeBroker>,
    /// (topic, partition, next offset)
    positions: Vec<(String, usize, usize)>,
}

impl LoadConsumer for FakeConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_value: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut s = self.broker.lock();
        loop {
            let mut n = 0;
            for (topic, p, next) in &mut self.positions {
                if let Some(log) = s.logs.get(topic.as_str()).and_then(|l| l.get(*p)) {
                    for v in &log[*next..] {
                        on_value(v);
                        n += 1;
                    }
                    *next = log.len();
                }
            }
            let now = Instant::now();
            if n > 0 || now >= deadline {
                return Ok(n);
            }
            s = self
                .broker
                .arrived
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn assigned(&self) -> usize {
        self.positions.len()
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}
