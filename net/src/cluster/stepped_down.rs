//! Leaderships this broker lost that the metadata image does not know about yet.
//!
//! The image learns a partition's leader from the leader's own report to the
//! controller. A leader cut off from the other brokers steps down (check-quorum) but
//! cannot reach the controller either, so its image keeps naming it the leader, and
//! every client that asks it for metadata is sent back to it, to be refused with
//! NOT_LEADER_OR_FOLLOWER, again and again. So an owner shard whose replica stops
//! leading tells shard 0, which republishes the view with that partition's leader as
//! the replica now knows it (usually none yet): clients then ask another broker.
//!
//! An entry lives until the image has caught up: a newer epoch for the partition, the
//! topic gone, or this broker leading again.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use strata_engine::shard::Shard;
use strata_raft::{NodeId, Term};

use crate::broker::Broker;
use crate::broker::METADATA_SHARD;
use crate::cluster::node::ClusterNode;
use crate::cluster_view::PartitionView;
use crate::controller::MetadataImage;

/// Step-downs noted within this long are published with one view.
const REPUBLISH_DELAY_MS: u64 = 50;

/// (topic id, partition) → (the term this broker stopped leading in, the leader its
/// replica knows now).
pub type SteppedDownMap = HashMap<([u8; 16], u32), (Term, Option<NodeId>)>;

/// Shard 0's record of lost leaderships.
#[derive(Default)]
pub struct SteppedDown {
    entries: RefCell<SteppedDownMap>,
    republish_scheduled: Cell<bool>,
}

impl SteppedDown {
    /// Shard 0's record (made on first use).
    pub fn of(shard: &Shard) -> Rc<SteppedDown> {
        if let Some(s) = shard.local::<SteppedDown>() {
            return s;
        }
        let s = Rc::new(SteppedDown::default());
        shard.insert_local(Rc::clone(&s));
        s
    }

    /// The entries still ahead of `image` (the others are dropped).
    pub fn pruned(&self, image: &MetadataImage, me: NodeId) -> SteppedDownMap {
        let mut entries = self.entries.borrow_mut();
        entries.retain(|(topic_id, partition), (term, _)| {
            image
                .topic_by_id(topic_id)
                .and_then(|t| t.partitions.get(*partition as usize))
                .is_some_and(|p| p.leader == Some(me) && i64::from(p.leader_epoch) <= *term as i64)
        });
        entries.clone()
    }
}

/// From the owner shard of a partition whose replica stopped leading in `term`:
/// shard 0 notes it and republishes the view shortly.
pub fn note(shard: &Shard, topic_id: [u8; 16], partition: u32, term: Term, leader: Option<NodeId>) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let noted = shard
            .invoke_on(METADATA_SHARD, move |s| async move {
                let record = SteppedDown::of(&s);
                record
                    .entries
                    .borrow_mut()
                    .insert((topic_id, partition), (term, leader));
                if !record.republish_scheduled.replace(true) {
                    glommio::spawn_local(republish(s)).detach();
                }
            })
            .await;
        if let Err(e) = noted {
            tracing::debug!(error = %e, "a lost leadership did not reach shard 0");
        }
    })
    .detach();
}

async fn republish(shard: Shard) {
    glommio::timer::sleep(Duration::from_millis(REPUBLISH_DELAY_MS)).await;
    SteppedDown::of(&shard).republish_scheduled.set(false);
    let Some(node) = ClusterNode::of(&shard) else {
        return;
    };
    let broker = Broker::of(&shard);
    let image = node.controller.image();
    crate::cluster::view::publish_view(
        &broker,
        &image,
        node.config.node_id,
        node.controller.leader(),
    )
    .await;
}

/// `view` of a partition the image says `me` leads, corrected by a step-down noted
/// in `entry`: the leader the replica knows (never `me`), at the step-down's term.
pub fn corrected(
    view: PartitionView,
    me: NodeId,
    entry: Option<&(Term, Option<NodeId>)>,
) -> PartitionView {
    let Some((term, leader)) = entry else {
        return view;
    };
    if view.leader != Some(me) || (*term as i64) < i64::from(view.leader_epoch) {
        return view;
    }
    PartitionView {
        leader: leader.filter(|l| *l != me),
        ..view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led_by_1() -> PartitionView {
        PartitionView {
            leader: Some(1),
            leader_epoch: 4,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            offline: Vec::new(),
        }
    }

    #[test]
    fn a_lost_leadership_hides_this_broker_as_leader() {
        let v = corrected(led_by_1(), 1, Some(&(4, None)));
        assert_eq!(v.leader, None);
        assert_eq!(v.leader_epoch, 4);
        let v = corrected(led_by_1(), 1, Some(&(5, Some(2))));
        assert_eq!(v.leader, Some(2));
    }

    #[test]
    fn an_image_ahead_of_the_step_down_wins() {
        // The image names this broker leader at a newer epoch than the step-down.
        assert_eq!(corrected(led_by_1(), 1, Some(&(3, None))), led_by_1());
        // Another broker's view, or no entry: untouched.
        assert_eq!(corrected(led_by_1(), 2, Some(&(4, None))), led_by_1());
        assert_eq!(corrected(led_by_1(), 1, None), led_by_1());
        // The replica never names itself.
        assert_eq!(corrected(led_by_1(), 1, Some(&(4, Some(1)))).leader, None);
    }
}
