//! Replication: log matching, the commit rule (Figure 8), divergent-suffix truncation
//! at epoch boundaries, snapshots, and durable index versus high watermark.

use super::harness::Cluster;
use crate::{Config, EntryKind, Role};

fn plain(c: &mut Config) {
    c.pre_vote = false;
    c.check_quorum = false;
}

#[test]
fn log_matching_every_replica_holds_and_applies_the_same_batches() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.frame_entries_max = 2;
    for i in 0..10 {
        c.propose(1, 1 + i % 3);
        if i % 3 == 0 {
            c.deliver_all();
        }
    }
    c.tick_all(6);
    c.assert_logs_equal(&[1, 2, 3]);
    let end = c.raft(1).log_end_offset();
    for id in [1, 2, 3] {
        assert_eq!(c.raft(id).commit_offset(), end);
        assert_eq!(
            c.node(id).applied,
            c.node(1).log,
            "node {id} applied a different sequence"
        );
    }
}

/// Raft paper, Figure 8: an entry of an old term stored on a majority is not committed
/// by counting; only once an entry of the leader's own term commits does it.
#[test]
fn figure_8_old_term_entries_do_not_commit_by_counting() {
    let all = [1, 2, 3, 4, 5];
    let mut c = Cluster::new(&all, plain);
    // (a) S1 leads term 2 and writes X at offset 2 (after two leader-change markers), on S2 only.
    c.elect(2);
    c.tick_all(2);
    c.elect(1);
    assert_eq!((c.raft(1).role(), c.raft(1).term()), (Role::Leader, 2));
    c.tick_all(2);
    assert_eq!(c.raft(1).commit_offset(), 2);
    c.isolate(1, &[3, 4, 5]);
    let x = c.propose(1, 1);
    assert_eq!((x.start_offset, x.term), (2, 2));
    c.deliver_all();
    assert_eq!(c.node(2).log.last().unwrap().term, 2);
    // (b) S1 is cut off; S5 wins term 3 with S3 and S4 and writes offset 2 locally only.
    c.heal();
    c.isolate(1, &all[1..]);
    c.isolate(2, &[3, 4, 5]);
    c.raft(5).campaign_now();
    c.process(5);
    c.deliver_until(|c| c.node(5).raft.role() == Role::Leader);
    assert_eq!(c.raft(5).term(), 3);
    c.isolate(5, &[1, 2, 3, 4]);
    c.queue.retain(|m| m.from != 5);
    assert_eq!(
        c.node(5).log[2].term,
        3,
        "S5's term-3 marker is at offset 2, on S5 only"
    );
    // (c) S5 is cut off; S1 restarts, loses term 3 (S3 and S4 voted for S5), wins term 4
    // and copies X to S3 one batch per append: X is on S1, S2, S3 — a majority — the
    // moment before term 4's marker reaches S3.
    c.blocked.retain(|&(a, b)| a == 5 || b == 5);
    c.isolate(1, &[4]);
    c.restart(1);
    c.frame_entries_max = 1;
    c.raft(1).campaign_now();
    c.process(1);
    c.deliver_all();
    assert_eq!(c.raft(1).role(), Role::Candidate);
    c.raft(1).campaign_now();
    c.process(1);
    let x_on_s3 = |c: &Cluster| {
        c.node(3)
            .log
            .iter()
            .any(|e| e.start_offset == 2 && e.term == 2)
    };
    c.deliver_until(x_on_s3);
    assert_eq!((c.raft(1).role(), c.raft(1).term()), (Role::Leader, 4));
    assert!(x_on_s3(&c));
    let x_on: Vec<u64> = [1, 2, 3]
        .into_iter()
        .filter(|&id| {
            c.node(id)
                .log
                .iter()
                .any(|e| e.start_offset == 2 && e.term == 2)
        })
        .collect();
    assert_eq!(x_on, vec![1, 2, 3], "X is stored on a majority");
    // S1 hears every answer already on its way (sending nothing more), and must not
    // count X: the quorum-th match is X's end, of term 2.
    c.queue.retain(|m| m.to == 1);
    for to in [2, 3, 4, 5] {
        c.blocked.insert((1, to));
    }
    c.deliver_all();
    assert!(
        c.raft(1).commit_offset() <= 2,
        "X (term 2) must not commit by counting in term 4 (commit {})",
        c.raft(1).commit_offset()
    );
    // (d) S1 is cut off before its marker spreads; S5 (last term 3) wins term 5 with
    // S2, S3, S4 and overwrites X everywhere — legal, because X never committed.
    c.blocked.clear();
    c.isolate(1, &[2, 3, 4, 5]);
    c.queue.clear();
    c.restart(5);
    c.raft(5).campaign_now();
    c.process(5);
    c.deliver_all();
    c.elect(5);
    assert_eq!(c.raft(5).term(), 5);
    c.frame_entries_max = usize::MAX;
    c.tick_node(5, 4);
    for id in [2, 3, 4, 5] {
        let at2 = c.node(id).log.iter().find(|e| e.start_offset == 2).unwrap();
        assert_eq!(at2.term, 3, "node {id} keeps S5's entry at offset 2");
        assert!(
            c.node(id)
                .applied
                .iter()
                .all(|e| !(e.start_offset == 2 && e.term == 2)),
            "nobody applied X"
        );
    }
    // S1 returns, is truncated at the epoch boundary and follows.
    c.heal();
    c.tick_all(4);
    c.assert_logs_equal(&[1, 2, 3, 4, 5]);
    assert!(c.node(1).truncations.contains(&2));
}

#[test]
fn figure_8_with_a_current_term_entry_commits_the_old_one_too() {
    let mut c = Cluster::new(&[1, 2, 3], plain);
    c.elect(2);
    c.tick_all(2);
    c.isolate(1, &[3]);
    c.elect(1);
    let x = c.propose(1, 1);
    c.deliver_all();
    c.heal();
    c.tick_all(3);
    assert!(c.raft(1).commit_offset() >= x.end_offset);
}

#[test]
fn a_divergent_suffix_is_truncated_at_the_epoch_boundary_in_few_round_trips() {
    let mut c = Cluster::new(&[1, 2, 3], plain);
    c.elect(1);
    c.tick_all(2);
    let committed = c.raft(1).commit_offset();
    // Old leader writes 20 batches nobody else gets.
    c.isolate(1, &[2, 3]);
    for _ in 0..20 {
        c.propose(1, 2);
    }
    c.deliver_all();
    // The others elect node 2 and write their own history.
    c.elect(2);
    for _ in 0..3 {
        c.propose(2, 1);
    }
    c.deliver_all();
    c.tick_all(1);
    let rejections_before = c.node(1).rejections_sent;
    c.heal();
    c.tick_all(8);
    c.assert_logs_equal(&[1, 2, 3]);
    assert_eq!(
        c.node(1).truncations,
        vec![committed],
        "cut once, at the end of term 1 in the leader's log"
    );
    assert!(
        c.node(1).rejections_sent - rejections_before <= 2,
        "the epoch hint skips the whole divergent term, not one batch per round trip ({} rejections)",
        c.node(1).rejections_sent - rejections_before
    );
    // And node 1 never applied any of its divergent batches.
    assert!(c
        .node(1)
        .applied
        .iter()
        .all(|e| e.term != 1 || e.start_offset < committed));
}

#[test]
fn a_follower_behind_the_log_start_gets_a_snapshot() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.isolate(3, &[1, 2]);
    for _ in 0..10 {
        c.propose(1, 3);
        c.deliver_all();
    }
    c.tick_node(1, 2);
    let applied = c.raft(1).applied_offset();
    assert_eq!(applied, c.raft(1).log_end_offset());
    // Retention drops everything applied on the leader.
    let start = c.node(1).log[5].start_offset;
    c.raft(1).compact(start).unwrap();
    c.nodes
        .get_mut(&1)
        .unwrap()
        .log
        .retain(|e| e.start_offset >= start);
    assert!(
        c.raft(1).compact(applied + 1).is_err(),
        "never past the applied offset"
    );
    c.heal();
    c.tick_all(4);
    assert_eq!(c.node(3).snapshots_installed, 1);
    assert_eq!(c.raft(3).log_start_offset(), start);
    assert_eq!(c.raft(3).commit_offset(), c.raft(1).commit_offset());
    assert_eq!(c.node(3).log, c.node(1).log);
    assert_eq!(
        c.node(2).snapshots_installed,
        0,
        "a caught-up follower needs none"
    );
}

/// After installing the snapshot, the follower replicates from the new start like any
/// other: later batches commit on it, its log matches the leader's, and it can lead.
#[test]
fn a_follower_restarted_at_the_log_start_replicates_commits_and_can_lead() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.isolate(3, &[1, 2]);
    for _ in 0..8 {
        c.propose(1, 2);
        c.deliver_all();
    }
    c.tick_node(1, 2);
    // The leader and the caught-up follower apply their own retention.
    let start = c.node(1).log[6].start_offset;
    for id in [1, 2] {
        c.raft(id).compact(start).unwrap();
        c.nodes
            .get_mut(&id)
            .unwrap()
            .log
            .retain(|e| e.start_offset >= start);
    }
    let term_below = c.raft(1).epochs().log_start_term();
    c.heal();
    c.tick_all(4);
    assert_eq!(c.node(3).snapshots_installed, 1);
    assert_eq!(c.raft(3).log_start_offset(), start);
    assert_eq!(c.raft(3).epochs().log_start_term(), term_below);
    // New batches replicate from the new start and commit everywhere.
    for _ in 0..3 {
        c.propose(1, 2);
        c.deliver_all();
    }
    c.tick_all(2);
    let commit = c.raft(1).commit_offset();
    assert_eq!(commit, c.raft(1).log_end_offset());
    assert_eq!(c.raft(3).commit_offset(), commit);
    c.assert_logs_equal(&[1, 2, 3]);
    // It survives a restart (its log holds only what came after the snapshot) and
    // can take over: what the group acknowledged is in its log.
    c.restart(3);
    c.tick_all(2);
    c.raft(1).transfer_leadership(3).unwrap();
    c.process(1);
    c.deliver_all();
    assert_eq!(c.raft(3).role(), crate::Role::Leader);
    c.isolate(1, &[2, 3]);
    c.propose(3, 1);
    c.deliver_all();
    c.tick_all(2);
    assert_eq!(c.raft(2).commit_offset(), c.raft(3).log_end_offset());
    c.assert_logs_equal(&[2, 3]);
    assert!(c.node(3).log.iter().all(|e| e.start_offset >= start));
    assert_eq!(c.node(3).log.first().unwrap().start_offset, start);
}

#[test]
fn the_leader_reports_its_durable_end_and_the_high_watermark_separately() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.tick_all(2);
    c.nodes.get_mut(&1).unwrap().manual_persist = true;
    let e = c.propose(1, 4);
    assert!(
        c.node(1).last_ready_durable_end < e.end_offset,
        "acks=1 waits for the leader's own fsync"
    );
    c.deliver_all();
    // Two followers made it durable: committed (acks=all) before the leader's own fsync.
    assert_eq!(c.raft(1).commit_offset(), e.end_offset);
    assert!(c.raft(1).durable_end_offset() < e.end_offset);
    c.persist_all(1);
    assert_eq!(c.raft(1).durable_end_offset(), e.end_offset);
    assert_eq!(c.node(1).last_ready_durable_end, e.end_offset);
}

#[test]
fn a_follower_acknowledges_only_what_it_has_synced() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.tick_all(2);
    c.nodes.get_mut(&2).unwrap().manual_persist = true;
    c.nodes.get_mut(&3).unwrap().manual_persist = true;
    let e = c.propose(1, 2);
    c.deliver_all();
    assert!(
        c.raft(1).commit_offset() < e.end_offset,
        "no follower has synced it"
    );
    c.persist_all(2);
    c.deliver_all();
    assert_eq!(c.raft(1).commit_offset(), e.end_offset);
    assert!(matches!(
        c.node(1).log.first().unwrap().kind,
        EntryKind::LeaderChange
    ));
}

#[test]
fn an_idle_replica_is_small() {
    // 10,000 replicated partitions per broker must stay cheap: the state machine itself
    // is a few hundred bytes plus its (empty when idle) queues and one epoch run.
    let size_bytes = std::mem::size_of::<crate::Raft>();
    assert!(size_bytes <= 1024, "Raft is {size_bytes} bytes");
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.propose(1, 1);
    c.tick_all(4);
    assert!(
        !c.raft(1).has_ready(),
        "an idle leader has nothing queued between ticks"
    );
    assert_eq!(c.raft(1).epochs().runs().len(), 1);
}
