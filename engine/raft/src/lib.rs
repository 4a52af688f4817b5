//! strata-raft: the Raft state machine of one replica of one group, as pure functions
//! of messages, ticks and storage completions — and the deterministic simulation that
//! drives many of them through faults.
//!
//! It owns elections (randomised timeouts from a seed, pre-vote, check-quorum),
//! log replication and the commit rule, divergent-suffix truncation at epoch
//! boundaries, one-at-a-time membership changes with learners, leadership transfer and
//! snapshots. It never touches a socket, a clock, a file or glommio: the shard owns
//! storage and transport, feeds [`Raft::step`], [`Raft::tick`] and [`Raft::persisted`],
//! and carries out one [`Ready`] at a time. The same machine runs partition groups and
//! the controller group.
//!
//! The partition's log *is* the Raft log. The state machine knows the log only as
//! offsets and terms: its [`EpochCache`] holds one (term, start offset) run per
//! leadership change, like Kafka's leader-epoch checkpoint, and entries are batches
//! identified by `(start offset, term)` ([`Entry`]); the bytes never pass through here.
//! Offsets are exclusive ends throughout: `commit_offset` is Kafka's high watermark.
//!
//! # Integration contract (how a shard drives a group)
//!
//! - **Start.** Build a [`RestoredState`] from what the partition keeps: the hard-state
//!   file (term, vote), the log start and the term just below it, the epoch runs (the
//!   batch headers' leader epochs, or an epoch checkpoint), the membership control
//!   batches in the log and the membership at the log start, and the log end.
//!   [`RestoredState::bootstrap`] for a new replica.
//! - **Inputs.** Every received message: [`Raft::step`] (tag messages with the group id
//!   in the frame; the state machine does not know it). Every tick of the shard's
//!   timer wheel: [`Raft::tick`] — one call per group per tick, O(1) for a follower, so
//!   idle groups need no timers of their own. Client batches on the leader:
//!   [`Raft::propose`], which returns the base offset and leader epoch to stamp.
//! - **Ready order** (see [`Ready`]): (1) apply `log_ops` to the log — truncate at a
//!   batch boundary, append batches (on a follower the ones received since the last
//!   Ready, found by `(start_offset, term)`), or replace the log by a snapshot — and
//!   write `hard_state`, without syncing; (2) send `messages`; (3) fsync (group commit
//!   may merge syncs) and call [`Raft::persisted`] with the token, in order; (4) apply
//!   `[apply_from_offset, apply_end_offset)` and publish `commit_offset`.
//! - **When it may send.** Everything in `Ready::messages` may go at once. Replies that
//!   promise durable state (vote grants, append acknowledgements) are held inside the
//!   state machine until the persist covering them is acknowledged, and only then
//!   appear in a later Ready — so sending early is impossible by construction. A leader
//!   may send appends of batches it has written but not yet synced (it counts itself
//!   towards commit only once synced), so replication overlaps its own fsync.
//! - **Appends on the wire.** An emitted [`Append`] has no entries: the transport
//!   attaches whole batches from `prev_end_offset` up to `send_end_offset` (a shorter
//!   batch-aligned prefix if its frame is full), by reference in the frame tail, and
//!   lists each batch's offsets, epoch and kind in `entries`. Messages are plain
//!   values: coalesce every group's messages to one broker into one frame, so idle
//!   groups' heartbeats share one packet per broker pair. Dropping, reordering or
//!   duplicating any message is safe.
//! - **Idle groups.** A follower's tick is a counter increment; a leader sends each
//!   follower one empty append per `heartbeat_ticks`, which the transport coalesces
//!   per broker pair. With [`Config::quiesce`] an idle group goes quiescent
//!   ([`Raft::is_quiescent`]): once every follower has matched the leader's log and
//!   commit offset the leader stops heartbeating, and ticks are no-ops, so the
//!   application skips quiescent groups in its tick loop. Their leases then rest on a
//!   broker-pair failure detector that the application runs (one heartbeat per broker
//!   pair): report every lapse — a broker not heard from for an election timeout, or
//!   whose connection dropped — with [`Raft::broker_lapsed`] to every replica. Any
//!   message, proposal or transfer wakes a group; a follower of a lapsed leader wakes
//!   with its lease over and elects on its usual randomised timeout.
//! - **Leader epoch.** The term *is* the leader epoch: stamp [`Entry::term`] into the
//!   batch header's `leader_epoch` (terms stay at or below [`TERM_MAX`] = `i32::MAX`).
//!   A new leader's first entry is a one-offset leader-change control batch
//!   ([`EntryKind::LeaderChange`]); membership changes are one-offset control batches
//!   too ([`EntryKind::Membership`]), in force as soon as appended.
//! - **acks.** `Ready::durable_end_offset` is the leader's own durable log end — where
//!   `acks=1` completes; `Ready::commit_offset` is the high watermark — where `acks=all`
//!   completes and what consumers may read up to. [`Raft::progress`] gives each
//!   follower's matched offset and ticks since contact, for in-sync replica sets and
//!   `min.insync.replicas`.
//! - **Retention and snapshots.** When segments below some applied offset are deleted,
//!   call [`Raft::compact`]; a follower whose log ends below the leader's log start is
//!   sent a [`MessageBody::Snapshot`], to which the application attaches its state
//!   (the controller's metadata image; a partition's carries none: the follower
//!   restarts its log empty at the snapshot's end). Every [`Append`] names the
//!   leader's log start, so a follower's application can move its own start after it.
//!
//! # Simulation
//!
//! [`sim`] runs brokers hosting several groups over a network that drops, delays,
//! duplicates, reorders and partitions, with disks that lose unsynced writes (torn
//! tails included), crashes, restarts, proposals, reassignments, transfers and
//! compaction, and checks the history: one leader per term, no acknowledged entry
//! missing from any later leader, identical application order on every replica, every
//! acknowledged entry applied by every voter once the faults stop. The brokers run the
//! failure detector too (heartbeats per broker pair over the same faulty network,
//! restarts seen by incarnation, crashes sometimes seen at once as a connection
//! reset), and seeds with quiescence pause their clients so groups go quiet while
//! crashes go on. `cargo test -p
//! strata-raft` runs 300 seeds for 3 and 5 brokers plus every seed that ever failed;
//! `STRATA_SIM_SEED=N` replays one seed, `STRATA_SIM_SEED_START=N` starts the range
//! elsewhere, and the long run is
//!
//! ```text
//! STRATA_SIM_SEEDS=20000 cargo test --release -p strata-raft --test sim
//! ```

mod config;
mod election;
mod epoch_cache;
mod error;
mod membership;
mod message;
mod prng;
mod progress;
mod proposal;
mod quiescence;
mod raft;
mod ready;
mod replication;
mod storage;
mod types;

pub mod sim;

#[cfg(test)]
mod tests;

pub use config::Config;
pub use epoch_cache::{EpochCache, EpochRun};
pub use error::{CompactError, MembershipError, ProposeError, RestoreError, StepError};
pub use membership::{Membership, MembershipChange, MEMBERS_MAX};
pub use message::{
    Append, AppendResult, Message, MessageBody, SnapshotMeta, VoteRequest, APPEND_ENTRIES_MAX,
};
pub use prng::SplitMix64;
pub use progress::Progress;
pub use quiescence::QUIESCE_IDLE_HEARTBEATS;
pub use raft::{Raft, OBSERVERS_MAX, OUTBOX_MESSAGES_MAX, PERSISTS_IN_FLIGHT_MAX};
pub use ready::{LogOp, PersistToken, Ready};
pub use storage::RestoredState;
pub use types::{Entry, EntryKind, HardState, NodeId, Role, Term, TERM_MAX};
