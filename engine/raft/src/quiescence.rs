//! Quiescence: an idle group costs no ticks and no messages.
//!
//! A leader whose followers have all matched its log end, with everything committed
//! and durable, and who has heard from each of them since it sent them that commit
//! offset, stops heartbeating ([`Raft::is_quiescent`]). A follower goes quiescent when
//! its leader's heartbeat says there is nothing more to send and nothing left to
//! commit (`prev_end = send_end = commit =` its own log end). A quiescent replica's
//! [`Raft::tick`] is a no-op, so the application need not call it at all.
//!
//! The lease that the missing heartbeats would have renewed comes from the broker-pair
//! failure detector instead: while the leader's broker is heard from, its quiescent
//! followers keep honouring its lease (they refuse pre-votes and votes as before).
//! Anything wakes a group: any message (so a follower that missed the last heartbeat
//! and campaigns wakes its leader, who resumes heartbeats), a proposal, a transfer,
//! or [`Raft::broker_lapsed`] — the application's word that a broker stopped being
//! heard from (or its connection dropped). A follower of a lapsed leader wakes with its
//! lease over, so it elects on the usual randomised timeout, counted from the lapse.
//!
//! Safety does not depend on any of this: votes, terms and the commit rule are
//! untouched; a stale lease only delays an election, it never allows a second leader
//! in a term.

use crate::raft::Raft;
use crate::types::{NodeId, Role};

impl Raft {
    /// Whether this replica is quiescent: ticking it does nothing until it is woken.
    pub fn is_quiescent(&self) -> bool {
        self.quiescent
    }

    /// The broker-pair failure detector lost `node`: nothing was heard from it for an
    /// election timeout, or its connection dropped (it may have restarted). A follower
    /// led from there wakes with its lease over and elects on its randomised timeout; a
    /// leader with a follower there wakes and lets check-quorum judge it.
    pub fn broker_lapsed(&mut self, node: NodeId) {
        if node == self.cfg.id {
            return;
        }
        if self.role == Role::Leader {
            if self.progress(node).is_some() {
                self.wake();
                if let Some(p) = self.progress_mut(node) {
                    p.recent_active = false;
                }
            }
        } else if self.leader == Some(node) {
            self.wake();
            self.election_elapsed_ticks = self.election_elapsed_ticks.max(self.cfg.election_ticks);
        }
    }

    /// Owner: leaves quiescence, so the group heartbeats again and its followers hear
    /// of something that changed outside the log (the log start). A no-op when awake.
    pub fn wake_up(&mut self) {
        self.wake();
    }

    /// Leaves quiescence (a message, a proposal, a lapse). A leader treats the quiet
    /// time as contact — it lasted only while every follower's broker was heard from —
    /// and starts a fresh check-quorum window.
    pub(crate) fn wake(&mut self) {
        if !self.quiescent {
            return;
        }
        self.quiescent = false;
        self.idle_ticks = 0;
        if self.role == Role::Leader {
            self.election_elapsed_ticks = 0;
            for (_, p) in self.progress.iter_mut() {
                p.recent_active = true;
            }
        }
    }

    /// Leader, at the end of a tick: counts idle ticks and goes quiescent after
    /// [`QUIESCE_IDLE_HEARTBEATS`] heartbeat rounds with nothing to do, once every
    /// follower answered one of them.
    pub(crate) fn maybe_quiesce_leader(&mut self) {
        if !self.cfg.quiesce || self.role != Role::Leader {
            return;
        }
        if !self.leader_idle() {
            self.idle_ticks = 0;
            return;
        }
        self.idle_ticks = self.idle_ticks.saturating_add(1);
        let heartbeat_ticks = self.cfg.heartbeat_ticks.max(1);
        let needed = QUIESCE_IDLE_HEARTBEATS * heartbeat_ticks + 1;
        let answered = self
            .progress
            .iter()
            .all(|(_, p)| p.ticks_since_contact < self.idle_ticks.saturating_sub(heartbeat_ticks));
        if self.idle_ticks >= needed && answered {
            self.quiescent = true;
        }
    }

    /// Follower, after accepting an append: quiescent if it was the leader's idle
    /// heartbeat and this replica holds, durably, everything the leader has committed.
    pub(crate) fn maybe_quiesce_follower(
        &mut self,
        prev_end_offset: u64,
        send_end_offset: u64,
        commit_offset: u64,
    ) {
        if !self.cfg.quiesce || self.role != Role::Follower || self.leader.is_none() {
            return;
        }
        let end = self.log.log_end_offset();
        if prev_end_offset == end
            && send_end_offset == end
            && commit_offset == end
            && self.commit_offset == end
        {
            self.quiescent = true;
        }
    }

    /// Leader: nothing to replicate, commit or persist, no transfer, every follower
    /// matched and answering.
    fn leader_idle(&self) -> bool {
        let end = self.log.log_end_offset();
        self.transfer.is_none()
            && self.commit_offset == end
            && self.durable_end_offset == end
            && !self.has_unpersisted_work()
            && self.progress.iter().all(|(_, p)| {
                p.match_end_offset == end && p.inflight_ticks.is_none() && !p.needs_snapshot
            })
    }
}

/// Heartbeat rounds a leader stays idle before it goes quiescent: the first carries
/// the final commit offset to every follower, the second lets their answers come back.
pub const QUIESCE_IDLE_HEARTBEATS: u32 = 2;
