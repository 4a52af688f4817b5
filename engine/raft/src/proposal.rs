//! What the application asks of a leader: append a batch, change membership, hand
//! leadership over; and what any replica is told: the log start moved (retention).

use crate::error::{CompactError, ProposeError};
use crate::membership::MembershipChange;
use crate::message::MessageBody;
use crate::raft::Raft;
use crate::types::{Entry, EntryKind, NodeId, Role};

impl Raft {
    fn check_leader(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some((target, _)) = self.transfer {
            return Err(ProposeError::TransferInProgress(target));
        }
        Ok(())
    }

    /// Leader: appends a data batch spanning `offsets` offsets. The returned entry's
    /// start offset and term are the base offset and leader epoch to stamp into the
    /// batch; it comes back in a Ready's [`crate::LogOp::Append`] to be written.
    pub fn propose(&mut self, offsets: u64) -> Result<Entry, ProposeError> {
        self.propose_entry(offsets, EntryKind::Data)
    }

    fn propose_entry(&mut self, offsets: u64, kind: EntryKind) -> Result<Entry, ProposeError> {
        self.check_leader()?;
        self.wake();
        if offsets == 0 || offsets > self.cfg.entry_offsets_max {
            return Err(ProposeError::BadEntrySize {
                offsets,
                offsets_max: self.cfg.entry_offsets_max,
            });
        }
        let start = self.log.log_end_offset();
        let uncommitted_offsets = start - self.commit_offset;
        if uncommitted_offsets >= self.cfg.uncommitted_offsets_max {
            return Err(ProposeError::Backpressure {
                uncommitted_offsets,
                uncommitted_offsets_max: self.cfg.uncommitted_offsets_max,
            });
        }
        let e = Entry {
            start_offset: start,
            end_offset: start + offsets,
            term: self.hard.term,
            kind,
        };
        self.append_entry(e.clone());
        self.broadcast_append();
        self.maybe_commit();
        Ok(e)
    }

    /// Leader: proposes one membership step as a one-offset control batch. It takes
    /// effect on each replica when appended; see [`MembershipChange`] for why the
    /// preconditions checked here make one-at-a-time changes safe.
    pub fn propose_membership(&mut self, change: MembershipChange) -> Result<Entry, ProposeError> {
        self.check_leader()?;
        if self
            .membership_offset()
            .is_some_and(|o| o >= self.commit_offset)
        {
            return Err(ProposeError::MembershipChangePending);
        }
        if self.log.term_before(self.commit_offset) != Some(self.hard.term) {
            return Err(ProposeError::TermNotCommitted(self.hard.term));
        }
        match change {
            MembershipChange::Remove(id) if id == self.cfg.id => {
                return Err(ProposeError::RemoveLeader)
            }
            MembershipChange::Promote(id) => {
                let caught_up = self
                    .progress(id)
                    .is_some_and(|p| p.match_end_offset >= self.commit_offset);
                if !caught_up {
                    return Err(ProposeError::NotCaughtUp(id));
                }
            }
            _ => {}
        }
        let next = self.membership().apply(change)?;
        self.propose_entry(1, EntryKind::Membership(next))
    }

    /// Leader: hands leadership to voter `to` — proposals stop, `to` is caught up, then
    /// told to campaign at once (TimeoutNow). Abandoned after an election timeout.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ProposeError> {
        self.check_leader()?;
        if to == self.cfg.id {
            return Ok(());
        }
        if !self.membership().is_voter(to) {
            return Err(ProposeError::NotVoter(to));
        }
        self.wake();
        self.transfer = Some((to, 0));
        let caught_up = self
            .progress(to)
            .is_some_and(|p| p.match_end_offset == self.log.log_end_offset());
        if caught_up {
            let m = self.message(to, MessageBody::TimeoutNow);
            self.send(m);
        } else {
            // Resend now rather than wait out a lost append's retry: the transfer is on a clock.
            self.send_append(to);
        }
        Ok(())
    }

    /// Any replica: offsets below `log_start_offset` left the log (retention, or a
    /// snapshot taken by the application). Only applied offsets may go; a follower
    /// whose log ends below the new start will be sent a snapshot.
    pub fn compact(&mut self, log_start_offset: u64) -> Result<(), CompactError> {
        if log_start_offset > self.applied_offset {
            return Err(CompactError::BeyondApplied {
                log_start_offset,
                applied_offset: self.applied_offset,
            });
        }
        if log_start_offset <= self.log.log_start_offset() {
            return Ok(());
        }
        self.log.compact(log_start_offset);
        // Fold membership entries below the new start into the base membership.
        let below = self
            .memberships
            .partition_point(|(o, _)| *o < log_start_offset);
        if below > 0 {
            if let Some((_, m)) = self.memberships.drain(..below).next_back() {
                self.base_membership = m;
            }
        }
        Ok(())
    }
}
