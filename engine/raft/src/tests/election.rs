//! Elections: one leader per term, the up-to-date rule, pre-vote, check-quorum,
//! leadership transfer, durable self-votes.

use super::harness::Cluster;
use crate::{
    Config, Membership, Message, MessageBody, ProposeError, Raft, RestoredState, Role, StepError,
    VoteRequest,
};

fn plain(c: &mut Config) {
    c.pre_vote = false;
    c.check_quorum = false;
}

#[test]
fn election_safety_one_leader_per_term_under_split_votes() {
    for seed in 0..20u64 {
        let mut c = Cluster::new(&[1, 2, 3, 4, 5], |cfg| {
            plain(cfg);
            cfg.seed = seed;
        });
        // Two candidates in the same term at once.
        c.raft(1).campaign_now();
        c.raft(2).campaign_now();
        c.process(1);
        c.process(2);
        c.deliver_all();
        let mut seen = std::collections::HashMap::new();
        for _ in 0..30 {
            for (id, term) in c.leaders() {
                if let Some(other) = seen.insert(term, id) {
                    assert_eq!(other, id, "term {term} had two leaders");
                }
            }
            c.tick_all(1);
        }
        assert!(!seen.is_empty(), "seed {seed}: nobody was elected");
    }
}

#[test]
fn leader_completeness_a_stale_log_cannot_win() {
    let mut c = Cluster::new(&[1, 2, 3], plain);
    c.elect(1);
    c.isolate(3, &[1, 2]);
    for _ in 0..3 {
        c.propose(1, 2);
    }
    c.deliver_all();
    let commit = c.raft(1).commit_offset();
    assert_eq!(commit, c.raft(1).log_end_offset());
    // Node 3 missed committed entries: node 2 refuses it, so it cannot win.
    c.heal();
    c.isolate(3, &[1]);
    c.raft(3).campaign_now();
    c.process(3);
    c.deliver_all();
    assert_ne!(c.raft(3).role(), Role::Leader);
    // Node 2 has every committed entry and can win; it still holds them all.
    c.elect(2);
    assert!(c.raft(2).log_end_offset() >= commit);
    c.heal();
    c.tick_all(3);
    c.assert_logs_equal(&[1, 2, 3]);
}

#[test]
fn pre_vote_keeps_a_rejoining_replica_from_deposing_the_leader() {
    for (pre_vote, check_quorum, must_survive) in [
        (true, true, true),
        (true, false, true),
        (false, false, false),
    ] {
        let mut c = Cluster::new(&[1, 2, 3], |cfg| {
            cfg.pre_vote = pre_vote;
            cfg.check_quorum = check_quorum;
        });
        c.elect(1);
        let term = c.raft(1).term();
        c.isolate(3, &[1, 2]);
        // The leader keeps heartbeating 2 while 3 times out again and again.
        for _ in 0..60 {
            c.tick_node(1, 1);
            c.tick_node(2, 1);
            c.tick_node(3, 1);
        }
        if pre_vote {
            assert_eq!(c.raft(3).term(), term, "pre-vote must not bump the term");
        } else {
            assert!(c.raft(3).term() > term);
        }
        // It rejoins right as its election timer fires again.
        c.heal();
        c.raft(3).campaign_now();
        c.process(3);
        c.deliver_all();
        c.tick_all(5);
        let survived = c.raft(1).role() == Role::Leader && c.raft(1).term() == term;
        assert_eq!(
            survived, must_survive,
            "pre_vote={pre_vote} check_quorum={check_quorum}"
        );
    }
}

#[test]
fn check_quorum_steps_a_cut_off_leader_down() {
    for check_quorum in [true, false] {
        let mut c = Cluster::new(&[1, 2, 3], |cfg| {
            cfg.check_quorum = check_quorum;
            cfg.election_ticks = 10;
        });
        c.elect(1);
        c.isolate(1, &[2, 3]);
        c.tick_node(1, 25);
        assert_eq!(
            c.raft(1).role() == Role::Leader,
            !check_quorum,
            "check_quorum={check_quorum}"
        );
        assert_eq!(c.raft(1).propose(1).is_err(), check_quorum);
    }
}

#[test]
fn check_quorum_lease_ignores_a_vote_while_the_leader_is_heard() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    let term = c.raft(1).term();
    let log_end_offset = c.raft(2).log_end_offset();
    let last_term = c.raft(2).epochs().last_term();
    let vote = Message {
        from: 3,
        to: 2,
        term: term + 5,
        body: MessageBody::Vote(VoteRequest {
            last_term,
            log_end_offset,
            transfer: false,
        }),
    };
    c.raft(2).step(vote).unwrap();
    assert_eq!(c.raft(2).term(), term, "a vote inside the lease is ignored");
    c.process(2);
    assert!(c.queue.iter().all(|m| m.to != 3), "and not answered");
}

#[test]
fn leadership_transfer_hands_over_to_a_caught_up_voter() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    let term = c.raft(1).term();
    // The target lags first: it is caught up before it is told to campaign.
    c.isolate(2, &[1]);
    c.propose(1, 3);
    c.deliver_all();
    c.heal();
    c.raft(1).transfer_leadership(2).unwrap();
    assert_eq!(
        c.raft(1).propose(1),
        Err(ProposeError::TransferInProgress(2))
    );
    c.process(1);
    c.deliver_all();
    assert_eq!(c.raft(2).role(), Role::Leader);
    assert_eq!(c.raft(2).term(), term + 1);
    assert_eq!(c.raft(1).role(), Role::Follower);
    assert_eq!(c.raft(1).leader(), Some(2));
    c.tick_all(3);
    c.assert_logs_equal(&[1, 2, 3]);
    assert_eq!(
        c.raft(1).transfer_leadership(3),
        Err(ProposeError::NotLeader { leader: Some(2) })
    );
}

#[test]
fn transfer_is_abandoned_if_the_target_never_answers() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.isolate(2, &[1, 3]);
    c.raft(1).transfer_leadership(2).unwrap();
    c.process(1);
    c.tick_node(1, 12);
    assert_eq!(c.raft(1).role(), Role::Leader);
    assert!(
        c.raft(1).propose(1).is_ok(),
        "proposals resume after an election timeout"
    );
}

#[test]
fn a_single_voter_leads_only_once_its_vote_is_durable() {
    let mut c = Cluster::new(&[1], plain);
    c.nodes.get_mut(&1).unwrap().manual_persist = true;
    c.raft(1).campaign_now();
    c.process(1);
    assert_eq!(
        c.raft(1).role(),
        Role::Candidate,
        "its term and vote are not durable yet"
    );
    c.persist_all(1);
    assert_eq!(c.raft(1).role(), Role::Leader);
}

#[test]
fn restart_with_a_lost_hard_state_takes_the_logs_term_without_a_vote() {
    let mut state = RestoredState::bootstrap(Membership::new(&[1, 2, 3]).unwrap());
    state.epochs = vec![crate::EpochRun {
        term: 4,
        start_offset: 0,
    }];
    state.log_end_offset = 10;
    let r = Raft::new(super::harness::config(1), state).unwrap();
    assert_eq!(r.term(), 4);
    assert_eq!(r.hard_state().vote, None);
}

#[test]
fn malformed_or_misaddressed_messages_are_refused() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    let bad = Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Append(crate::Append {
            prev_end_offset: 0,
            prev_term: 0,
            commit_offset: 0,
            send_end_offset: 5,
            log_start_offset: 0,
            entries: vec![crate::Entry {
                start_offset: 3,
                end_offset: 5,
                term: 1,
                kind: crate::EntryKind::Data,
            }],
        }),
    };
    assert!(matches!(
        c.raft(2).step(bad.clone()),
        Err(StepError::MalformedAppend { .. })
    ));
    let mut wrong = bad;
    wrong.to = 3;
    assert!(matches!(
        c.raft(2).step(wrong),
        Err(StepError::WrongRecipient { .. })
    ));
    let huge = Message {
        from: 1,
        to: 2,
        term: u64::MAX,
        body: MessageBody::TimeoutNow,
    };
    assert!(matches!(
        c.raft(2).step(huge),
        Err(StepError::TermTooLarge(_))
    ));
}

#[test]
fn a_vote_is_answered_only_once_it_is_durable() {
    let mut c = Cluster::new(&[1, 2, 3], plain);
    c.nodes.get_mut(&2).unwrap().manual_persist = true;
    c.isolate(1, &[3]);
    c.raft(1).campaign_now();
    c.process(1);
    c.deliver_all();
    assert_eq!(
        c.raft(2).hard_state().vote,
        Some(1),
        "node 2 granted its vote"
    );
    assert_eq!(
        c.raft(1).role(),
        Role::Candidate,
        "but the grant has not left node 2"
    );
    assert!(c.queue.is_empty());
    c.persist_all(2);
    c.deliver_all();
    assert_eq!(c.raft(1).role(), Role::Leader);
}
