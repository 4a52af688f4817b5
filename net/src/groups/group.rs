//! One group: its committed offsets and the membership protocol that runs it.
//!
//! Three protocols run groups on the same coordinator and the same
//! `__consumer_offsets`: native (the native protocol's JoinGroup, assigned by the
//! broker), Kafka classic (JoinGroup/SyncGroup, assigned by the group's leader) and
//! KIP-848 (ConsumerGroupHeartbeat, assigned by the broker and reconciled member by
//! member). A group with members belongs to the protocol its members use; a group
//! without members (offsets only, or every member gone) is taken over by the first
//! protocol that joins it. Offsets are the group's, whatever runs it: any protocol
//! reads them.

use std::collections::BTreeMap;

use super::assignor::TopicPartition;
use super::classic::ClassicGroup;
use super::consumer::ConsumerGroup;
use super::native::NativeGroup;
use super::records::OffsetValue;

/// Where a group is in its life (the names are Kafka's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No members; committed offsets may remain.
    Empty,
    /// Native and classic: waiting for every member to (re)join.
    PreparingRebalance,
    /// Classic: every member joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// KIP-848: a new target assignment is being computed.
    Assigning,
    /// KIP-848: some members have not reached the target assignment yet.
    Reconciling,
    /// Every member has its assignment for the current generation (or epoch).
    Stable,
    /// The group does not exist.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Which membership protocol runs a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// Offsets only: no protocol has claimed the group (Kafka's "simple" groups of
    /// consumers that assign partitions themselves).
    Simple,
    /// The native protocol's groups.
    Native,
    /// Kafka's classic protocol (JoinGroup/SyncGroup).
    Classic,
    /// Kafka's KIP-848 protocol (ConsumerGroupHeartbeat).
    Consumer,
}

impl GroupKind {
    /// How a person calls this kind of group.
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Simple => "offsets-only",
            GroupKind::Native => "native",
            GroupKind::Classic => "Kafka classic",
            GroupKind::Consumer => "Kafka consumer (KIP-848)",
        }
    }

    /// The Kafka group type (ListGroups v5): "consumer" for KIP-848 groups,
    /// "classic" for the rest.
    pub fn kafka_type(self) -> &'static str {
        match self {
            GroupKind::Consumer => "consumer",
            _ => "classic",
        }
    }
}

/// The protocol running a group, and its state.
#[derive(Debug)]
pub(super) enum Body {
    Simple,
    Native(NativeGroup),
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// One group.
#[derive(Debug)]
pub(super) struct Group {
    pub name: String,
    pub offsets: BTreeMap<TopicPartition, OffsetValue>,
    pub body: Body,
}

impl Group {
    /// A group with no members and no offsets.
    pub fn new(name: &str) -> Self {
        Group {
            name: name.to_owned(),
            offsets: BTreeMap::new(),
            body: Body::Simple,
        }
    }

    pub fn kind(&self) -> GroupKind {
        match &self.body {
            Body::Simple => GroupKind::Simple,
            Body::Native(_) => GroupKind::Native,
            Body::Classic(_) => GroupKind::Classic,
            Body::Consumer(_) => GroupKind::Consumer,
        }
    }

    pub fn state(&self) -> GroupState {
        match &self.body {
            Body::Simple => GroupState::Empty,
            Body::Native(g) => g.state,
            Body::Classic(g) => g.state,
            Body::Consumer(g) => g.state(),
        }
    }

    pub fn member_count(&self) -> usize {
        match &self.body {
            Body::Simple => 0,
            Body::Native(g) => g.members.len(),
            Body::Classic(g) => g.members.len(),
            Body::Consumer(g) => g.members.len(),
        }
    }
}
