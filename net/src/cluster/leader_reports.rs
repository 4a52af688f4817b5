//! Partition leaders' reports to the controller, coalesced per broker.
//!
//! Every partition leader tells the controller its leadership and in-sync set when
//! either changes. The controller takes one command at a time, each a metadata-log
//! entry committed by a majority (an fdatasync on each), so one command per report
//! made a cluster with thousands of partitions learn its leaders at a few dozen a
//! second. Reports from every shard of this broker meet on shard 0, which sends what
//! gathered within [`GATHER_MS`] (at most [`LEADER_REPORTS_MAX`]) as one
//! `ReportLeaders` command; a newer report of a partition replaces the waiting one.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::channels::local_channel::{self, LocalSender};
use strata_engine::shard::Shard;

use crate::controller::{ControllerCommand, LeaderReport, LEADER_REPORTS_MAX};

/// How long reports gather before they are sent.
const GATHER_MS: u64 = 20;

/// A waiting report and the reporters waiting for its answer.
type Waiting = (LeaderReport, Vec<LocalSender<bool>>);

/// Reports waiting on shard 0, by (topic id, partition).
#[derive(Default)]
pub struct LeaderReports {
    waiting: RefCell<HashMap<([u8; 16], u32), Waiting>>,
    sending: Cell<bool>,
}

impl LeaderReports {
    fn of(shard: &Shard) -> Rc<LeaderReports> {
        if let Some(r) = shard.local::<LeaderReports>() {
            return r;
        }
        let r = Rc::new(LeaderReports::default());
        shard.insert_local(Rc::clone(&r));
        r
    }
}

/// On shard 0: queues `report` and resolves once the command carrying it was taken
/// (true) or refused (false: the reporter tells it again later).
pub async fn report(shard: &Shard, report: LeaderReport) -> bool {
    let reports = LeaderReports::of(shard);
    let (tx, rx) = local_channel::new_bounded(1);
    {
        let mut waiting = reports.waiting.borrow_mut();
        let key = (report.topic_id, report.partition);
        match waiting.get_mut(&key) {
            Some((newest, waiters)) => {
                *newest = report;
                waiters.push(tx);
            }
            None => {
                waiting.insert(key, (report, vec![tx]));
            }
        }
    }
    if !reports.sending.replace(true) {
        glommio::spawn_local(send_loop(shard.clone(), Rc::clone(&reports))).detach();
    }
    rx.recv().await.unwrap_or(false)
}

async fn send_loop(shard: Shard, reports: Rc<LeaderReports>) {
    loop {
        let gather = glommio::timer::sleep(Duration::from_millis(GATHER_MS));
        future::or(gather, shard.stopped()).await;
        let batch: Vec<Waiting> = {
            let mut waiting = reports.waiting.borrow_mut();
            let keys: Vec<([u8; 16], u32)> =
                waiting.keys().take(LEADER_REPORTS_MAX).copied().collect();
            keys.iter().filter_map(|k| waiting.remove(k)).collect()
        };
        if batch.is_empty() {
            reports.sending.set(false);
            return;
        }
        let (batch, waiters): (Vec<LeaderReport>, Vec<Vec<LocalSender<bool>>>) =
            batch.into_iter().unzip();
        let count = batch.len();
        let cmd = ControllerCommand::ReportLeaders(batch);
        let taken = match crate::cluster::node::submit(&shard, cmd).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e.message, reports = count, "leader reports not taken");
                false
            }
        };
        for waiting in waiters {
            for w in waiting {
                let _ = w.try_send(taken);
            }
        }
        if shard.is_stopping() {
            reports.sending.set(false);
            return;
        }
    }
}
