//! Broker liveness on the controller leader: when each broker was last heard from,
//! and which ones have been silent for longer than the session timeout.
//!
//! Nothing here reads a clock: the driver passes `now_ms` (a monotonic clock of its
//! choice). The state is not replicated: a new controller leader starts with every
//! registered broker heard "now" (see [`BrokerLiveness::fence_records`]), so a
//! leader change never fences a healthy broker before a full session has passed.

use std::collections::BTreeMap;

use strata_raft::NodeId;

use super::image::MetadataImage;
use super::records::MetadataRecord;

/// Last heartbeat time per broker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerLiveness {
    /// Bounded by the registered brokers: entries of brokers the image no longer
    /// has are dropped by [`BrokerLiveness::fence_records`].
    last_heard_ms: BTreeMap<NodeId, i64>,
}

impl BrokerLiveness {
    pub fn new() -> BrokerLiveness {
        BrokerLiveness::default()
    }

    /// Broker `id` was heard from at `now_ms` (a heartbeat or a registration). A
    /// fenced broker's heartbeat is unfenced by `plan(BrokerHeartbeat)`.
    pub fn heartbeat(&mut self, id: NodeId, now_ms: i64) {
        let t = self.last_heard_ms.entry(id).or_insert(now_ms);
        // Never backwards, whatever order the calls come in.
        *t = (*t).max(now_ms);
    }

    /// When broker `id` was last heard from.
    pub fn last_heard_ms(&self, id: NodeId) -> Option<i64> {
        self.last_heard_ms.get(&id).copied()
    }

    /// Brokers silent for more than `session_timeout_ms` at `now_ms`, by id.
    pub fn expired(&self, now_ms: i64, session_timeout_ms: i64) -> Vec<NodeId> {
        self.last_heard_ms
            .iter()
            .filter(|(_, &t)| now_ms.saturating_sub(t) > session_timeout_ms)
            .map(|(&id, _)| id)
            .collect()
    }

    /// `FenceBroker` records for the unfenced brokers of `image` that are silent for
    /// more than `session_timeout_ms`. Brokers of the image not heard from yet (this
    /// controller just became leader) count as heard at `now_ms`; brokers the image
    /// does not have are forgotten.
    pub fn fence_records(
        &mut self,
        image: &MetadataImage,
        now_ms: i64,
        session_timeout_ms: i64,
    ) -> Vec<MetadataRecord> {
        self.last_heard_ms
            .retain(|id, _| image.broker(*id).is_some());
        for id in image.brokers().keys() {
            self.last_heard_ms.entry(*id).or_insert(now_ms);
        }
        self.expired(now_ms, session_timeout_ms)
            .into_iter()
            .filter(|id| image.broker(*id).is_some_and(|b| !b.fenced))
            .map(|id| MetadataRecord::FenceBroker { id })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::BrokerRegistration;

    fn reg(id: NodeId) -> MetadataRecord {
        MetadataRecord::RegisterBroker(BrokerRegistration {
            id,
            incarnation: 1,
            kafka_host: "127.0.0.1".into(),
            kafka_port: 9092,
            native_addr: "127.0.0.1:9000".into(),
            cluster_addr: "127.0.0.1:9100".into(),
            rack: None,
        })
    }

    #[test]
    fn silent_brokers_expire_and_heartbeats_keep_them_alive() {
        let mut l = BrokerLiveness::new();
        l.heartbeat(1, 1_000);
        l.heartbeat(2, 1_000);
        l.heartbeat(2, 500); // late, out of order: does not go back
        assert_eq!(l.last_heard_ms(2), Some(1_000));
        assert!(l.expired(10_000, 9_000).is_empty());
        l.heartbeat(1, 9_000);
        assert_eq!(l.expired(10_001, 9_000), vec![2]);
        assert_eq!(l.expired(18_001, 9_000), vec![1, 2]);
    }

    #[test]
    fn fences_only_unfenced_registered_brokers_after_a_full_session() {
        let mut image = MetadataImage::new();
        image.apply_all(&[reg(1), reg(2), reg(3)]).unwrap();
        let mut l = BrokerLiveness::new();
        l.heartbeat(9, 0); // not registered: forgotten
                           // A new controller leader: everyone counts as heard now.
        assert!(l.fence_records(&image, 100_000, 9_000).is_empty());
        assert_eq!(l.last_heard_ms(9), None);
        l.heartbeat(1, 105_000);
        let fence = l.fence_records(&image, 109_001, 9_000);
        assert_eq!(
            fence,
            vec![
                MetadataRecord::FenceBroker { id: 2 },
                MetadataRecord::FenceBroker { id: 3 }
            ]
        );
        image.apply_all(&fence).unwrap();
        // Broker 1 is within its session; 2 and 3 are fenced already.
        assert!(l.fence_records(&image, 114_000, 9_000).is_empty());
        assert_eq!(
            l.fence_records(&image, 114_001, 9_000),
            vec![MetadataRecord::FenceBroker { id: 1 }]
        );
    }
}
