//! Whether this broker is cut off from the controller quorum, and what Kafka clients
//! are told while it is.
//!
//! A broker that cannot reach the quorum cannot learn new leaders: its metadata goes
//! stale. Kafka clients keep asking the broker they used last (librdkafka prefers the
//! least idle one), so a client that was producing to a leader that got cut off
//! would ask that same broker for metadata forever and never find the new leader
//! the majority elected. So while the broker has known no controller leader for
//! [`ISOLATED_AFTER_MS`] — longer than any election — it still answers a Kafka
//! Metadata request, then closes that connection: the client asks another of its
//! bootstrap brokers, which knows the new leader.
//!
//! Shard 0 watches the controller replica and hands the flag to every shard.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use strata_engine::shard::Shard;

use crate::broker::Broker;
use crate::cluster::node::ClusterNode;

/// No controller leader known for this long makes the broker isolated (an election
/// takes 1–2 s).
pub const ISOLATED_AFTER_MS: u64 = 5_000;
/// How often shard 0 looks.
const CHECK_INTERVAL_MS: u64 = 500;

/// One shard's copy of the flag.
#[derive(Default)]
struct Isolated(Cell<bool>);

/// Whether this broker is cut off from the controller quorum (false on a single node).
pub fn is_isolated(shard: &Shard) -> bool {
    shard.local::<Isolated>().is_some_and(|i| i.0.get())
}

/// Shard 0: watches the controller replica until the broker stops.
pub async fn watch(broker: Rc<Broker>) {
    let shard = broker.shard.clone();
    let mut leaderless_ms = 0u64;
    let mut isolated = false;
    while !shard.is_stopping() {
        let tick = glommio::timer::sleep(Duration::from_millis(CHECK_INTERVAL_MS));
        futures_lite::future::or(tick, shard.stopped()).await;
        let Some(node) = ClusterNode::of(&shard) else {
            return;
        };
        leaderless_ms = match node.controller.leader() {
            Some(_) => 0,
            None => leaderless_ms.saturating_add(CHECK_INTERVAL_MS),
        };
        let now = leaderless_ms >= ISOLATED_AFTER_MS;
        if now == isolated {
            continue;
        }
        isolated = now;
        if isolated {
            tracing::warn!(
                "no controller leader for {leaderless_ms} ms: this broker is cut off from the \
                 quorum; Kafka clients asking it for metadata are sent to other brokers"
            );
        } else {
            tracing::info!("the controller quorum is reachable again");
        }
        for s in 0..shard.shard_count() {
            let set = shard
                .invoke_on(s, move |sh| async move {
                    match sh.local::<Isolated>() {
                        Some(i) => i.0.set(isolated),
                        None => sh.insert_local(Rc::new(Isolated(Cell::new(isolated)))),
                    }
                })
                .await;
            if let Err(e) = set {
                tracing::debug!(shard = s, error = %e, "isolation flag did not reach a shard");
            }
        }
    }
}
