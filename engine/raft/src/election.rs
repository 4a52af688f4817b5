//! Elections: pre-vote, votes, the up-to-date rule, and the role changes they cause.

use crate::message::{MessageBody, VoteRequest};
use crate::raft::Raft;
use crate::types::{Entry, EntryKind, NodeId, Role, Term, TERM_MAX};

impl Raft {
    /// Starts a pre-vote (or, for a transfer or without pre-vote, a real election).
    pub(crate) fn campaign(&mut self, transfer: bool) {
        if !self.membership().is_voter(self.cfg.id) {
            return;
        }
        if self.hard.term >= TERM_MAX {
            // No further leader epoch fits the batch header; stay a follower.
            return;
        }
        self.election_elapsed_ticks = 0;
        self.randomize_election_timeout();
        self.leader = None;
        self.progress.clear();
        self.transfer = None;
        self.votes.clear();
        self.votes.push((self.cfg.id, true));
        if self.cfg.pre_vote && !transfer {
            self.role = Role::PreCandidate;
            // Nothing changes durably: the request asks about term + 1 and goes out now.
            let req = self.vote_request(false);
            let term = self.hard.term + 1;
            for to in self.other_voters() {
                let mut m = self.message(to, MessageBody::PreVote(req));
                m.term = term;
                self.send(m);
            }
            self.poll();
        } else {
            self.start_election(transfer);
        }
    }

    /// Bumps the term, votes for itself and asks the other voters.
    fn start_election(&mut self, transfer: bool) {
        self.hard.term += 1;
        self.hard.vote = Some(self.cfg.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.votes.push((self.cfg.id, true));
        self.election_elapsed_ticks = 0;
        self.randomize_election_timeout();
        let req = self.vote_request(transfer);
        for to in self.other_voters() {
            // Held until the new term and self-vote are durable.
            let m = self.message(to, MessageBody::Vote(req));
            self.reply(m);
        }
        self.poll();
    }

    fn vote_request(&self, transfer: bool) -> VoteRequest {
        VoteRequest {
            last_term: self.log.last_term(),
            log_end_offset: self.log.log_end_offset(),
            transfer,
        }
    }

    fn other_voters(&self) -> Vec<NodeId> {
        let me = self.cfg.id;
        self.membership()
            .voters
            .iter()
            .copied()
            .filter(|&v| v != me)
            .collect()
    }

    /// Answers a vote or pre-vote for `term` (already checked to be at least ours).
    pub(crate) fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        req: VoteRequest,
        pre: bool,
    ) {
        if pre && self.in_lease() && !req.transfer {
            // Thesis §9.6: no pre-vote while hearing from a leader.
            return;
        }
        let my_last = (self.log.last_term(), self.log.log_end_offset());
        let log_ok = (req.last_term, req.log_end_offset) >= my_last;
        let can_vote = self.hard.vote == Some(from)
            || (self.hard.vote.is_none() && self.leader.is_none())
            || (pre && term > self.hard.term);
        let granted = log_ok && can_vote;
        if pre {
            let mut m = self.message(from, MessageBody::PreVoteResponse { granted });
            if granted {
                m.term = term;
            }
            self.reply(m);
        } else {
            if granted {
                self.hard.vote = Some(from);
                self.election_elapsed_ticks = 0;
            }
            let m = self.message(from, MessageBody::VoteResponse { granted });
            self.reply(m);
        }
    }

    /// Records a (pre-)vote answer from a voter and acts on the count.
    pub(crate) fn record_vote(&mut self, from: NodeId, granted: bool) {
        if !self.membership().is_voter(from) || self.votes.iter().any(|(id, _)| *id == from) {
            return;
        }
        self.votes.push((from, granted));
        self.poll();
    }

    /// Wins, loses or keeps waiting, by the votes counted so far. A candidate's own vote
    /// counts only once durable: a leader must never lead a term it could forget.
    pub(crate) fn poll(&mut self) {
        let m = self.membership();
        let quorum = m.quorum();
        let voters = m.voters.len();
        let me = self.cfg.id;
        let self_durable = self.role == Role::PreCandidate
            || (self.durable_hard.term == self.hard.term && self.durable_hard.vote == Some(me));
        let granted = self
            .votes
            .iter()
            .filter(|(id, g)| *g && m.is_voter(*id) && (*id != me || self_durable))
            .count();
        let rejected = self
            .votes
            .iter()
            .filter(|(id, g)| !*g && m.is_voter(*id))
            .count();
        if granted >= quorum {
            match self.role {
                Role::PreCandidate => self.start_election(false),
                Role::Candidate => self.become_leader(),
                _ => {}
            }
        } else if rejected > voters.saturating_sub(quorum) {
            let term = self.hard.term;
            self.become_follower(term, None);
        }
    }

    /// Follows `leader` (if known) in `term`, forgetting the vote if the term is new.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.hard.term {
            self.hard.term = term;
            self.hard.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.election_elapsed_ticks = 0;
        self.randomize_election_timeout();
        self.progress.clear();
        self.transfer = None;
        self.votes.clear();
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.transfer = None;
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
        self.progress.clear();
        self.sync_progress();
        // The leader-change marker: entries of earlier terms commit once it does.
        let start = self.log.log_end_offset();
        let term = self.hard.term;
        self.append_entry(Entry {
            start_offset: start,
            end_offset: start + 1,
            term,
            kind: EntryKind::LeaderChange,
        });
        let peers: Vec<NodeId> = self.progress.iter().map(|(id, _)| *id).collect();
        for id in peers {
            self.send_append(id);
        }
        self.maybe_commit();
    }
}
