//! strata-raft: the Raft state machine of one replica of one group, as pure functions
//! of messages, ticks and storage completions — and the deterministic simulation that
//! drives many of them through faults.
//!
//! TODO crate doc (integration contract) — written below once the API settles.

mod config;
mod election;
mod epoch_cache;
mod error;
mod membership;
mod message;
mod prng;
mod progress;
mod proposal;
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
pub use message::{Append, AppendResult, Message, MessageBody, SnapshotMeta, VoteRequest, APPEND_ENTRIES_MAX};
pub use prng::SplitMix64;
pub use progress::Progress;
pub use raft::{Raft, OUTBOX_MESSAGES_MAX, PERSISTS_IN_FLIGHT_MAX};
pub use ready::{LogOp, PersistToken, Ready};
pub use storage::RestoredState;
pub use types::{Entry, EntryKind, HardState, NodeId, Role, Term, TERM_MAX};
