//! Log replication: the leader's appends, snapshots and commit rule; the follower's
//! log matching, divergent-suffix truncation and acknowledgements.

use crate::error::StepError;
use crate::membership::MEMBERS_MAX;
use crate::message::{Append, AppendResult, MessageBody, SnapshotMeta};
use crate::raft::Raft;
use crate::types::{NodeId, Role};

impl Raft {
    /// Leader: sends `to` the next append from its progress (a heartbeat when it is
    /// caught up), or a snapshot if its log ends below the leader's log start.
    pub(crate) fn send_append(&mut self, to: NodeId) {
        let log_start = self.log.log_start_offset();
        let log_end = self.log.log_end_offset();
        let commit_offset = self.commit_offset;
        let Some(p) = self.progress_mut(to) else {
            return;
        };
        if p.needs_snapshot || p.next_offset < log_start {
            p.needs_snapshot = true;
            p.inflight_ticks = Some(0);
            let meta = SnapshotMeta {
                end_offset: log_start,
                term: self.log.log_start_term(),
                membership: self.base_membership.clone(),
            };
            let m = self.message(to, MessageBody::Snapshot(meta));
            self.send(m);
            return;
        }
        let prev_end_offset = p.next_offset.min(log_end);
        p.inflight_ticks = (prev_end_offset < log_end).then_some(0);
        let prev_term = self.log.term_before(prev_end_offset).unwrap_or(0);
        let body = MessageBody::Append(Append {
            prev_end_offset,
            prev_term,
            commit_offset,
            send_end_offset: log_end,
            entries: Vec::new(),
            log_start_offset: log_start,
        });
        let m = self.message(to, body);
        self.send(m);
    }

    /// Leader: a heartbeat to a follower with an append in flight: an empty append at
    /// the offset it is known to match, so it neither carries data nor disturbs the
    /// in-flight one, yet keeps the follower's lease and commit offset fresh.
    pub(crate) fn send_heartbeat(&mut self, to: NodeId) {
        let Some(p) = self.progress(to) else {
            return;
        };
        let prev_end_offset = p.match_end_offset;
        let Some(prev_term) = self.log.term_before(prev_end_offset) else {
            // Its match is compacted away: a snapshot is (or will be) on its way.
            return;
        };
        let body = MessageBody::Append(Append {
            prev_end_offset,
            prev_term,
            commit_offset: self.commit_offset,
            send_end_offset: prev_end_offset,
            entries: Vec::new(),
            log_start_offset: self.log.log_start_offset(),
        });
        let m = self.message(to, body);
        self.send(m);
    }

    /// Leader: sends `to` new entries unless an append to it is still in flight.
    pub(crate) fn maybe_send_append(&mut self, to: NodeId) {
        let log_end = self.log.log_end_offset();
        let Some(p) = self.progress(to) else {
            return;
        };
        if p.inflight_ticks.is_none() && (p.next_offset < log_end || p.needs_snapshot) {
            self.send_append(to);
        }
    }

    pub(crate) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.iter().map(|(id, _)| *id).collect();
        for id in peers {
            self.maybe_send_append(id);
        }
    }

    pub(crate) fn progress_mut(&mut self, id: NodeId) -> Option<&mut crate::progress::Progress> {
        self.progress
            .iter_mut()
            .find(|(p, _)| *p == id)
            .map(|(_, p)| p)
    }

    /// Leader: handles a follower's answer.
    pub(crate) fn handle_append_response(&mut self, from: NodeId, r: AppendResult) {
        let log_end = self.log.log_end_offset();
        let log_start = self.log.log_start_offset();
        let hint_next = match r {
            AppendResult::Rejected {
                hint_term,
                hint_end_offset,
                ..
            } => {
                let next = self.log.end_for_term(hint_term).1.min(hint_end_offset);
                Some((next, self.log.run_start_before(next)))
            }
            AppendResult::Accepted { .. } => None,
        };
        let Some(p) = self.progress_mut(from) else {
            return;
        };
        p.recent_active = true;
        p.ticks_since_contact = 0;
        match r {
            AppendResult::Accepted { match_end_offset } => {
                if match_end_offset > log_end {
                    return;
                }
                if match_end_offset >= p.next_offset {
                    p.inflight_ticks = None;
                }
                if match_end_offset >= log_start {
                    p.needs_snapshot = false;
                }
                p.match_end_offset = p.match_end_offset.max(match_end_offset);
                p.next_offset = p.next_offset.max(match_end_offset);
                let caught_up = p.match_end_offset == log_end;
                self.maybe_commit();
                if caught_up && self.transfer.is_some_and(|(t, _)| t == from) {
                    let m = self.message(from, MessageBody::TimeoutNow);
                    self.send(m);
                }
                self.maybe_send_append(from);
            }
            AppendResult::Rejected {
                rejected_prev_end_offset,
                ..
            } => {
                if rejected_prev_end_offset != p.next_offset || p.needs_snapshot {
                    // An answer to an older append: the current one is still in flight.
                    return;
                }
                p.inflight_ticks = None;
                let Some((mut next, run_start)) = hint_next else {
                    return;
                };
                if next == rejected_prev_end_offset {
                    // Never probe the same place twice: step back a whole term run.
                    next = if next > log_start {
                        run_start.min(next - 1).max(log_start)
                    } else {
                        next
                    };
                    if rejected_prev_end_offset <= log_start {
                        p.needs_snapshot = true;
                    }
                }
                if next < log_start {
                    p.needs_snapshot = true;
                }
                p.next_offset = next;
                self.send_append(from);
            }
        }
    }

    /// Leader: advances the commit offset to what a quorum of voters has durably,
    /// counting only when that offset's entry is of the current term (Raft §5.4.2; the
    /// Figure 8 scenario is why older terms never commit by counting).
    pub(crate) fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let me = self.cfg.id;
        let m = self.membership();
        let quorum = m.quorum();
        let mut matches = [0u64; MEMBERS_MAX];
        let mut n = 0;
        for &v in &m.voters {
            let matched = if v == me {
                self.durable_end_offset
            } else {
                self.progress(v).map_or(0, |p| p.match_end_offset)
            };
            // Memberships are bounded by MEMBERS_MAX wherever they are built or decoded.
            debug_assert!(n < MEMBERS_MAX);
            if let Some(slot) = matches.get_mut(n) {
                *slot = matched;
                n += 1;
            }
        }
        let matches = &mut matches[..n];
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = matches.get(quorum - 1) else {
            return;
        };
        if candidate > self.commit_offset && self.log.term_before(candidate) == Some(self.hard.term)
        {
            self.commit_offset = candidate;
        }
    }

    /// Follower: an append from the leader of our term.
    pub(crate) fn handle_append(&mut self, from: NodeId, a: Append) -> Result<(), StepError> {
        let idle_heartbeat =
            a.entries
                .is_empty()
                .then_some((a.prev_end_offset, a.send_end_offset, a.commit_offset));
        let log_start = self.log.log_start_offset();
        if a.prev_end_offset < log_start {
            // Our compacted prefix is committed; resume the leader at our log start.
            let term = self.log.log_start_term();
            self.reply_append_rejected(from, a.prev_end_offset, term, log_start);
            return Ok(());
        }
        if self.log.term_before(a.prev_end_offset) != Some(a.prev_term) {
            let (hint_term, hint_end_offset) =
                self.log.conflict_hint(a.prev_end_offset, a.prev_term);
            self.reply_append_rejected(from, a.prev_end_offset, hint_term, hint_end_offset);
            return Ok(());
        }
        let verified_end = a.entries.last().map_or(a.prev_end_offset, |e| e.end_offset);
        // Skip the entries we already hold (same start and term means same batch).
        let log_end = self.log.log_end_offset();
        let mut first_new = a.entries.len();
        for (i, e) in a.entries.iter().enumerate() {
            let held = e.end_offset <= log_end
                && self.log.term_at(e.start_offset) == Some(e.term)
                && self.log.term_before(e.end_offset) == Some(e.term);
            if !held {
                first_new = i;
                break;
            }
        }
        if let Some(first) = a.entries.get(first_new) {
            if first.start_offset < log_end {
                if first.start_offset < self.commit_offset {
                    return Err(StepError::TruncateCommitted {
                        from,
                        offset: first.start_offset,
                        commit_offset: self.commit_offset,
                    });
                }
                self.truncate_log(first.start_offset);
            }
        }
        for e in a.entries.into_iter().skip(first_new) {
            self.append_entry(e);
        }
        let commit = a.commit_offset.min(verified_end);
        if commit > self.commit_offset {
            self.commit_offset = commit;
        }
        let m = self.message(
            from,
            MessageBody::AppendResponse(AppendResult::Accepted {
                match_end_offset: verified_end,
            }),
        );
        self.reply(m);
        if let Some((prev_end, send_end, commit)) = idle_heartbeat {
            self.maybe_quiesce_follower(prev_end, send_end, commit);
        }
        Ok(())
    }

    /// Follower: a snapshot from the leader of our term.
    pub(crate) fn handle_snapshot(&mut self, from: NodeId, meta: SnapshotMeta) {
        let match_end_offset = if meta.end_offset <= self.commit_offset {
            // Already have all it stands for.
            self.commit_offset
        } else if self.log.term_before(meta.end_offset) == Some(meta.term) {
            // Our log holds the snapshot's last entry: keep the log, learn the commit.
            self.commit_offset = meta.end_offset;
            meta.end_offset
        } else {
            let end = meta.end_offset;
            self.install_snapshot(meta);
            end
        };
        let m = self.message(
            from,
            MessageBody::AppendResponse(AppendResult::Accepted { match_end_offset }),
        );
        self.reply(m);
    }
}
