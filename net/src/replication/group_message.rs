//! One Raft message tagged with its group, and the batches an append carries.

use bytes::Bytes;
use strata_raft::{Message, MessageBody};

use super::GroupId;

/// A Raft message of `group`. For an [`MessageBody::Append`], the sender fills
/// `message.body.entries` and `batches` with the same length: `batches[i]` is the
/// stored bytes (80-byte header + payload) of `entries[i]`, sent by reference in the
/// frame tail and received as a slice of the receive buffer. A
/// [`MessageBody::Snapshot`] may carry one: the state the snapshot stands for (the
/// controller's metadata image). Every other message has no batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMessage {
    /// The group the message belongs to.
    pub group: GroupId,
    /// The message.
    pub message: Message,
    /// The batches of an append, one per entry (or a snapshot's state).
    pub batches: Vec<Bytes>,
}

impl GroupMessage {
    /// A message that carries no batches.
    pub fn new(group: GroupId, message: Message) -> GroupMessage {
        GroupMessage {
            group,
            message,
            batches: Vec::new(),
        }
    }

    /// Entries the message lists (0 unless it is an append).
    pub fn entries_len(&self) -> usize {
        match &self.message.body {
            MessageBody::Append(a) => a.entries.len(),
            _ => 0,
        }
    }

    /// Bytes of batches it carries.
    pub fn batch_bytes(&self) -> usize {
        self.batches.iter().map(|b| b.len()).sum()
    }
}
