//! The state machine of one replica of one group: its state, the input entry points
//! (`step`, `tick`, `persisted`) and the output (`ready`). Elections live in
//! `election.rs`, replication in `replication.rs`, proposals in `proposal.rs`.

use std::collections::VecDeque;

use crate::config::Config;
use crate::epoch_cache::EpochCache;
use crate::error::{RestoreError, StepError};
use crate::membership::Membership;
use crate::message::{Message, MessageBody, APPEND_ENTRIES_MAX};
use crate::prng::SplitMix64;
use crate::progress::Progress;
use crate::ready::{LogOp, PersistToken, Ready};
use crate::storage::RestoredState;
use crate::types::{Entry, EntryKind, HardState, NodeId, Role, Term, TERM_MAX};

/// Most persists handed out and not yet acknowledged; past it, `ready` holds new log
/// operations back until the application catches up.
pub const PERSISTS_IN_FLIGHT_MAX: usize = 64;

/// Most messages waiting to be handed out (and, separately, most replies waiting for a
/// persist). Beyond it a message is dropped and counted: dropping is always safe, the
/// network does it too.
pub const OUTBOX_MESSAGES_MAX: usize = 4096;

/// Most observers a group replicates to (non-voter brokers of the controller group).
pub const OBSERVERS_MAX: usize = 256;

/// A persist handed out in a Ready and not yet acknowledged.
#[derive(Clone, Debug)]
struct PersistRecord {
    token: u64,
    /// Log end the persist makes durable (lowered if a later truncation cuts below it).
    end_offset: u64,
    hard_state: Option<HardState>,
}

/// One replica of one Raft group.
#[derive(Debug)]
pub struct Raft {
    pub(crate) cfg: Config,
    pub(crate) rng: SplitMix64,
    pub(crate) hard: HardState,
    hard_emitted: HardState,
    pub(crate) durable_hard: HardState,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: EpochCache,
    /// Membership in force at the log start.
    pub(crate) base_membership: Membership,
    /// Membership entries in the log, (offset, membership), in offset order.
    pub(crate) memberships: Vec<(u64, Membership)>,
    pub(crate) commit_offset: u64,
    pub(crate) applied_offset: u64,
    pub(crate) durable_end_offset: u64,
    pub(crate) election_elapsed_ticks: u32,
    pub(crate) election_timeout_ticks: u32,
    pub(crate) heartbeat_elapsed_ticks: u32,
    /// Ticks do nothing until a message, a proposal or a broker lapse wakes the group
    /// (see `quiescence.rs`).
    pub(crate) quiescent: bool,
    /// Leader: consecutive ticks with nothing to replicate (towards quiescence).
    pub(crate) idle_ticks: u32,
    /// Votes (or pre-votes) received in the current campaign; at most one per member.
    pub(crate) votes: Vec<(NodeId, bool)>,
    /// Leader only: one entry per other member (bounded by [`crate::MEMBERS_MAX`]) and
    /// per observer (bounded by [`OBSERVERS_MAX`]).
    pub(crate) progress: Vec<(NodeId, Progress)>,
    /// Leader only: transfer target and ticks since it started.
    pub(crate) transfer: Option<(NodeId, u32)>,
    /// Replicas outside the membership that the leader keeps up to date without
    /// counting them (a controller group's non-voter brokers); at most [`OBSERVERS_MAX`].
    pub(crate) observers: Vec<NodeId>,
    log_ops: Vec<LogOp>,
    outbox: Vec<Message>,
    /// Replies generated since the last Ready; they wait for its persist.
    unpersisted_replies: Vec<Message>,
    /// Replies waiting for the persist with this token.
    held: VecDeque<(u64, Message)>,
    next_token: u64,
    inflight: VecDeque<PersistRecord>,
    dropped_messages: u64,
}

impl Raft {
    /// A replica restored from its durable state (or bootstrapped with
    /// [`RestoredState::bootstrap`]).
    pub fn new(cfg: Config, state: RestoredState) -> Result<Raft, RestoreError> {
        state.validate()?;
        let log = EpochCache::restore(
            state.log_start_offset,
            state.log_start_term,
            &state.epochs,
            state.log_end_offset,
        )
        .ok_or(RestoreError::BadEpochs)?;
        let rng = SplitMix64::new(cfg.seed).fork(cfg.id);
        let mut hard = state.hard_state;
        if log.last_term() > hard.term {
            hard = HardState {
                term: log.last_term(),
                vote: None,
            };
        }
        let mut raft = Raft {
            rng,
            hard,
            hard_emitted: hard,
            durable_hard: hard,
            role: Role::Follower,
            leader: None,
            base_membership: state.log_start_membership,
            memberships: state.memberships,
            commit_offset: state.commit_offset,
            applied_offset: state.log_start_offset,
            durable_end_offset: state.log_end_offset,
            log,
            election_elapsed_ticks: 0,
            election_timeout_ticks: cfg.election_ticks,
            heartbeat_elapsed_ticks: 0,
            quiescent: false,
            idle_ticks: 0,
            votes: Vec::new(),
            progress: Vec::new(),
            transfer: None,
            observers: Vec::new(),
            log_ops: Vec::new(),
            outbox: Vec::new(),
            unpersisted_replies: Vec::new(),
            held: VecDeque::new(),
            next_token: 1,
            inflight: VecDeque::new(),
            dropped_messages: 0,
            cfg,
        };
        raft.randomize_election_timeout();
        Ok(raft)
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Current term (leader epoch).
    pub fn term(&self) -> Term {
        self.hard.term
    }

    /// Current term and vote (possibly not yet durable).
    pub fn hard_state(&self) -> HardState {
        self.hard
    }

    /// Follower, pre-candidate, candidate or leader.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The commit offset (high watermark): every offset below it is committed.
    pub fn commit_offset(&self) -> u64 {
        self.commit_offset
    }

    /// Offsets below this were handed out for applying.
    pub fn applied_offset(&self) -> u64 {
        self.applied_offset
    }

    /// This replica's durable log end (acknowledged persists).
    pub fn durable_end_offset(&self) -> u64 {
        self.durable_end_offset
    }

    /// One past the last offset in the log (durable or not).
    pub fn log_end_offset(&self) -> u64 {
        self.log.log_end_offset()
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.log.log_start_offset()
    }

    /// The log's term runs.
    pub fn epochs(&self) -> &EpochCache {
        &self.log
    }

    /// The membership in force (the newest in the log, committed or not).
    pub fn membership(&self) -> &Membership {
        self.memberships
            .last()
            .map_or(&self.base_membership, |(_, m)| m)
    }

    /// The membership in force at the log start (what a snapshot of it carries).
    pub fn log_start_membership(&self) -> &Membership {
        &self.base_membership
    }

    /// Offset of the newest membership entry in the log, if the log holds one.
    pub fn membership_offset(&self) -> Option<u64> {
        self.memberships.last().map(|(o, _)| *o)
    }

    /// Leader only: what it knows of follower `id`.
    pub fn progress(&self, id: NodeId) -> Option<&Progress> {
        self.progress.iter().find(|(p, _)| *p == id).map(|(_, p)| p)
    }

    /// Messages dropped because an outbox was at [`OUTBOX_MESSAGES_MAX`].
    pub fn dropped_messages(&self) -> u64 {
        self.dropped_messages
    }

    /// Whether a call to [`Raft::ready`] would return something.
    pub fn has_ready(&self) -> bool {
        !self.log_ops.is_empty()
            || self.hard != self.hard_emitted
            || !self.outbox.is_empty()
            || !self.unpersisted_replies.is_empty()
            || self.apply_end() > self.applied_offset
    }

    /// One tick of logical time (a no-op while quiescent).
    pub fn tick(&mut self) {
        if self.quiescent {
            return;
        }
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed_ticks = self.election_elapsed_ticks.saturating_add(1);
            if self.election_elapsed_ticks >= self.election_timeout_ticks
                && self.membership().is_voter(self.cfg.id)
            {
                self.campaign(false);
            }
        }
    }

    /// Starts an election now, as if the election timeout had passed (with a pre-vote
    /// first when configured). A no-op on a leader or a non-voter.
    pub fn campaign_now(&mut self) {
        if self.role != Role::Leader {
            self.wake();
            self.campaign(false);
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
        for (_, p) in self.progress.iter_mut() {
            p.ticks_since_contact = p.ticks_since_contact.saturating_add(1);
            if let Some(t) = p.inflight_ticks.as_mut() {
                *t = t.saturating_add(1);
            }
        }
        if let Some((_, elapsed)) = self.transfer.as_mut() {
            *elapsed += 1;
            if *elapsed >= self.cfg.election_ticks {
                // The target did not take over in time: resume accepting proposals.
                self.transfer = None;
            }
        }
        if self.election_elapsed_ticks >= self.cfg.election_ticks {
            self.election_elapsed_ticks = 0;
            if self.cfg.check_quorum && !self.quorum_active() {
                let term = self.hard.term;
                self.become_follower(term, None);
                return;
            }
            for (_, p) in self.progress.iter_mut() {
                p.recent_active = false;
            }
        }
        if self.heartbeat_elapsed_ticks >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed_ticks = 0;
            let retry_ticks = self.cfg.append_retry_ticks;
            let peers: Vec<(NodeId, Option<u32>)> = self
                .progress
                .iter()
                .map(|(id, p)| (*id, p.inflight_ticks))
                .collect();
            for (id, inflight_ticks) in peers {
                match inflight_ticks {
                    Some(t) if t < retry_ticks => self.send_heartbeat(id),
                    // Nothing in flight, or it looks lost: send (again) from `next_offset`.
                    _ => self.send_append(id),
                }
            }
        }
        self.maybe_quiesce_leader();
    }

    /// Whether log operations or persists are waiting for the application.
    pub(crate) fn has_unpersisted_work(&self) -> bool {
        !self.log_ops.is_empty() || !self.inflight.is_empty()
    }

    /// Whether voters heard from in this check-quorum window (self included) form a quorum.
    fn quorum_active(&self) -> bool {
        let m = self.membership();
        let active = m
            .voters
            .iter()
            .filter(|&&v| v == self.cfg.id || self.progress(v).is_some_and(|p| p.recent_active))
            .count();
        active >= m.quorum()
    }

    /// Feeds one message from a peer.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        if m.to != self.cfg.id {
            return Err(StepError::WrongRecipient {
                to: m.to,
                me: self.cfg.id,
            });
        }
        if m.term > TERM_MAX {
            return Err(StepError::TermTooLarge(m.term));
        }
        validate_body(&m)?;
        // Any message wakes a quiescent replica (an idle heartbeat quiesces it again).
        self.wake();
        if m.term > self.hard.term {
            match &m.body {
                // A pre-vote asks about a term nobody is in yet; a granted answer carries it.
                MessageBody::PreVote(_) | MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::Vote(req)
                    if self.cfg.check_quorum && self.in_lease() && !req.transfer =>
                {
                    // A leader (or a follower hearing from one) ignores elections while
                    // its lease runs: a replica that was cut off must not depose it.
                    return Ok(());
                }
                body => {
                    let leader = match body {
                        MessageBody::Append(_)
                        | MessageBody::Snapshot(_)
                        | MessageBody::TimeoutNow => Some(m.from),
                        _ => None,
                    };
                    let elapsed = self.election_elapsed_ticks;
                    let was_leader = self.role == Role::Leader;
                    self.become_follower(m.term, leader);
                    if leader.is_none() && !was_leader {
                        // A newer term without a leader (e.g. a vote we may refuse) does
                        // not restart our election clock: a candidate that cannot win
                        // (a removed replica, a stale log) must not keep the group
                        // leaderless by bumping terms (Raft §5.2 restarts it only for a
                        // granted vote or a leader's message).
                        self.election_elapsed_ticks = elapsed;
                    }
                }
            }
        } else if m.term < self.hard.term {
            match &m.body {
                MessageBody::Append(a) => {
                    // Tell a stale leader about the newer term so it steps down.
                    let (hint_term, hint_end_offset) =
                        self.log.conflict_hint(a.prev_end_offset, a.prev_term);
                    self.reply_append_rejected(
                        m.from,
                        a.prev_end_offset,
                        hint_term,
                        hint_end_offset,
                    );
                }
                MessageBody::Snapshot(_) => {
                    let end = self.log.log_end_offset();
                    self.reply_append_rejected(m.from, end, self.log.last_term(), end);
                }
                MessageBody::PreVote(_) => {
                    let reply =
                        self.message(m.from, MessageBody::PreVoteResponse { granted: false });
                    self.reply(reply);
                }
                _ => {}
            }
            return Ok(());
        }
        match m.body {
            MessageBody::PreVote(req) => self.handle_vote_request(m.from, m.term, req, true),
            MessageBody::Vote(req) => self.handle_vote_request(m.from, m.term, req, false),
            MessageBody::PreVoteResponse { granted } => {
                if self.role == Role::PreCandidate && m.term == self.hard.term + 1 {
                    self.record_vote(m.from, granted);
                }
            }
            MessageBody::VoteResponse { granted } => {
                if self.role == Role::Candidate && m.term == self.hard.term {
                    self.record_vote(m.from, granted);
                }
            }
            MessageBody::Append(a) => {
                self.accept_leader(m.from, m.term)?;
                self.handle_append(m.from, a)?;
            }
            MessageBody::Snapshot(meta) => {
                self.accept_leader(m.from, m.term)?;
                self.handle_snapshot(m.from, meta);
            }
            MessageBody::AppendResponse(r) => {
                if self.role == Role::Leader {
                    self.handle_append_response(m.from, r);
                }
            }
            MessageBody::TimeoutNow => {
                if self.role != Role::Leader && self.membership().is_voter(self.cfg.id) {
                    self.campaign(true);
                }
            }
        }
        Ok(())
    }

    /// An append or snapshot from `from` in our term: it is the leader.
    fn accept_leader(&mut self, from: NodeId, term: Term) -> Result<(), StepError> {
        if self.role == Role::Leader || self.leader.is_some_and(|l| l != from) {
            return Err(StepError::SecondLeader { from, term });
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        }
        self.election_elapsed_ticks = 0;
        Ok(())
    }

    /// Whether this replica heard from a leader within an election timeout (a leader:
    /// within its current check-quorum window).
    pub(crate) fn in_lease(&self) -> bool {
        self.leader.is_some() && self.election_elapsed_ticks < self.cfg.election_ticks
    }

    pub(crate) fn randomize_election_timeout(&mut self) {
        let base = u64::from(self.cfg.election_ticks.max(1));
        self.election_timeout_ticks =
            u32::try_from(self.rng.range(base, 2 * base)).unwrap_or(u32::MAX);
    }

    /// A message from this replica in its term.
    pub(crate) fn message(&self, to: NodeId, body: MessageBody) -> Message {
        Message {
            from: self.cfg.id,
            to,
            term: self.hard.term,
            body,
        }
    }

    /// Queues a message that promises nothing durable: it goes out with the next Ready.
    pub(crate) fn send(&mut self, m: Message) {
        if self.outbox.len() >= OUTBOX_MESSAGES_MAX {
            self.dropped_messages += 1;
            return;
        }
        self.outbox.push(m);
    }

    /// Queues a reply that may only leave once everything this replica did so far is durable.
    pub(crate) fn reply(&mut self, m: Message) {
        if self.unpersisted_replies.len() + self.held.len() >= OUTBOX_MESSAGES_MAX {
            self.dropped_messages += 1;
            return;
        }
        self.unpersisted_replies.push(m);
    }

    pub(crate) fn reply_append_rejected(
        &mut self,
        to: NodeId,
        rejected_prev_end_offset: u64,
        hint_term: Term,
        hint_end_offset: u64,
    ) {
        let body = MessageBody::AppendResponse(crate::message::AppendResult::Rejected {
            rejected_prev_end_offset,
            hint_term,
            hint_end_offset,
        });
        let m = self.message(to, body);
        self.reply(m);
    }

    /// Appends an entry to the log (leader proposal or replicated batch).
    pub(crate) fn append_entry(&mut self, e: Entry) {
        self.log.append(e.term, e.start_offset, e.end_offset);
        let membership_changed = if let EntryKind::Membership(m) = &e.kind {
            self.memberships.push((e.start_offset, m.clone()));
            true
        } else {
            false
        };
        match self.log_ops.last_mut() {
            Some(LogOp::Append(entries)) => entries.push(e),
            _ => self.log_ops.push(LogOp::Append(vec![e])),
        }
        if membership_changed {
            self.on_membership_changed();
        }
    }

    /// Cuts a divergent suffix: the log now ends at `end_offset`.
    pub(crate) fn truncate_log(&mut self, end_offset: u64) {
        assert!(
            end_offset >= self.commit_offset,
            "committed offsets are never truncated"
        );
        self.log.truncate(end_offset);
        let before = self.memberships.len();
        self.memberships.retain(|(o, _)| *o < end_offset);
        self.log_ops.push(LogOp::Truncate { end_offset });
        self.clamp_durable(end_offset);
        if self.memberships.len() != before {
            self.on_membership_changed();
        }
    }

    /// Replaces the log by a snapshot's empty log.
    pub(crate) fn install_snapshot(&mut self, meta: crate::message::SnapshotMeta) {
        self.log.reset(meta.end_offset, meta.term);
        self.memberships.clear();
        self.base_membership = meta.membership.clone();
        self.commit_offset = self.commit_offset.max(meta.end_offset);
        self.applied_offset = meta.end_offset;
        self.clamp_durable(meta.end_offset);
        self.log_ops.push(LogOp::InstallSnapshot(meta));
        self.on_membership_changed();
    }

    fn clamp_durable(&mut self, end_offset: u64) {
        self.durable_end_offset = self.durable_end_offset.min(end_offset);
        for r in self.inflight.iter_mut() {
            r.end_offset = r.end_offset.min(end_offset);
        }
    }

    /// The newest membership changed (appended, truncated away, or from a snapshot).
    fn on_membership_changed(&mut self) {
        if self.role == Role::Leader {
            self.sync_progress();
        }
    }

    /// Sets the observers: replicas outside the membership that receive the log like
    /// learners but never vote, count towards commit, or become transfer targets (the
    /// controller group's non-voter brokers). Members and this replica are ignored;
    /// beyond [`OBSERVERS_MAX`] the rest are dropped. Kept on every replica, so a new
    /// leader replicates to them at once.
    pub fn set_observers(&mut self, observers: &[NodeId]) {
        let mut ids: Vec<NodeId> = observers
            .iter()
            .copied()
            .filter(|&id| id != self.cfg.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(OBSERVERS_MAX);
        if ids == self.observers {
            return;
        }
        self.observers = ids;
        if self.role == Role::Leader {
            let before: Vec<NodeId> = self.progress.iter().map(|(id, _)| *id).collect();
            self.sync_progress();
            let added: Vec<NodeId> = self
                .progress
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| !before.contains(id))
                .collect();
            for id in added {
                self.send_append(id);
            }
        }
    }

    /// The observers as last set.
    pub fn observers(&self) -> &[NodeId] {
        &self.observers
    }

    /// Leader: one progress entry per other member of the membership in force, and one
    /// per observer.
    pub(crate) fn sync_progress(&mut self) {
        let mut members: Vec<NodeId> = self
            .membership()
            .members()
            .filter(|&id| id != self.cfg.id)
            .collect();
        for &o in &self.observers {
            if !members.contains(&o) {
                members.push(o);
            }
        }
        self.progress.retain(|(id, _)| members.contains(id));
        let end = self.log.log_end_offset();
        for id in members {
            if self.progress(id).is_none() {
                self.progress.push((id, Progress::new(end)));
            }
        }
        if let Some((target, _)) = self.transfer {
            if !self.membership().is_voter(target) {
                self.transfer = None;
            }
        }
    }

    fn apply_end(&self) -> u64 {
        self.commit_offset
            .min(self.durable_end_offset)
            .max(self.applied_offset)
    }

    /// Takes the next batch of work; see [`Ready`] for what to do with it.
    pub fn ready(&mut self) -> Ready {
        let mut rd = Ready::default();
        let hard_changed = self.hard != self.hard_emitted;
        let something_to_persist = !self.log_ops.is_empty() || hard_changed;
        if something_to_persist {
            if self.inflight.len() < PERSISTS_IN_FLIGHT_MAX {
                let token = self.next_token;
                self.next_token += 1;
                rd.log_ops = std::mem::take(&mut self.log_ops);
                if hard_changed {
                    rd.hard_state = Some(self.hard);
                    self.hard_emitted = self.hard;
                }
                self.inflight.push_back(PersistRecord {
                    token,
                    end_offset: self.log.log_end_offset(),
                    hard_state: rd.hard_state,
                });
                rd.persist = Some(PersistToken(token));
                for m in self.unpersisted_replies.drain(..) {
                    self.held.push_back((token, m));
                }
            }
            // Otherwise the replies keep waiting with the log operations they depend on.
        } else if let Some(last) = self.inflight.back() {
            let token = last.token;
            for m in self.unpersisted_replies.drain(..) {
                self.held.push_back((token, m));
            }
        } else {
            let replies = std::mem::take(&mut self.unpersisted_replies);
            self.outbox.extend(replies);
        }
        rd.messages = std::mem::take(&mut self.outbox);
        rd.apply_from_offset = self.applied_offset;
        rd.apply_end_offset = self.apply_end();
        self.applied_offset = rd.apply_end_offset;
        rd.commit_offset = self.commit_offset;
        rd.durable_end_offset = self.durable_end_offset;
        rd
    }

    /// The application synced everything up to and including the Ready that carried
    /// `token` (acknowledge in order; an older token is a no-op).
    pub fn persisted(&mut self, token: PersistToken) {
        while let Some(r) = self.inflight.front() {
            if r.token > token.0 {
                break;
            }
            self.durable_end_offset = r.end_offset;
            if let Some(h) = r.hard_state {
                self.durable_hard = h;
            }
            self.inflight.pop_front();
        }
        while let Some((t, _)) = self.held.front() {
            if *t > token.0 {
                break;
            }
            if let Some((_, m)) = self.held.pop_front() {
                self.outbox.push(m);
            }
        }
        match self.role {
            Role::Candidate => self.poll(),
            Role::Leader => self.maybe_commit(),
            _ => {}
        }
    }
}

/// Structural checks of a peer's message, so no later code trusts a malformed one.
fn validate_body(m: &Message) -> Result<(), StepError> {
    let malformed = |reason| {
        Err(StepError::MalformedAppend {
            from: m.from,
            reason,
        })
    };
    match &m.body {
        MessageBody::Append(a) => {
            if a.entries.len() > APPEND_ENTRIES_MAX {
                return malformed("too many entries");
            }
            if a.prev_term > m.term {
                return malformed("prev term above the message term");
            }
            let mut end = a.prev_end_offset;
            let mut term = a.prev_term;
            for e in &a.entries {
                if e.start_offset != end {
                    return malformed("entries are not contiguous");
                }
                if e.end_offset <= e.start_offset {
                    return malformed("empty entry");
                }
                if e.term < term || e.term > m.term {
                    return malformed("entry terms out of order");
                }
                if let EntryKind::Membership(mm) = &e.kind {
                    if !mm.is_well_formed() {
                        return Err(StepError::MalformedMembership(m.from));
                    }
                }
                end = e.end_offset;
                term = e.term;
            }
            Ok(())
        }
        MessageBody::Snapshot(meta) => {
            if meta.term > m.term || !meta.membership.is_well_formed() {
                return Err(StepError::MalformedMembership(m.from));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
