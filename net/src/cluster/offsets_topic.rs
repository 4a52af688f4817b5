//! `__consumer_offsets` in a cluster: no broker creates it alone; the first group
//! request any broker sees asks the controller to create it (as Kafka does on the
//! first FindCoordinator), compacted, with `offsets.topic.num.partitions` partitions
//! and Kafka's `offsets.topic.replication.factor` of 3, or fewer when the cluster is
//! smaller. Until it exists and its partitions have leaders, group requests are
//! answered COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR, which clients retry.

use std::cell::Cell;
use std::rc::Rc;

use strata_schema::ErrorCode;

use crate::broker::Broker;
use crate::controller::ControllerCommand;
use crate::group_host::{now_ms, offsets_topic_overrides};
use crate::metadata::CONSUMER_OFFSETS_TOPIC;

/// Kafka's `offsets.topic.replication.factor` default.
pub const OFFSETS_TOPIC_REPLICATION_FACTOR: usize = 3;
/// A shard asks the controller at most this often (the creation may fail while too
/// few brokers have registered; group requests keep arriving meanwhile).
const REQUEST_INTERVAL_MS: i64 = 1_000;

/// The replication factor to create `__consumer_offsets` with, given the brokers
/// registered and not fenced, the controller voters the broker was started with and
/// the configured `offsets.topic.replication.factor`: that, or by default 3, or every
/// broker of a smaller cluster (a cluster is at least as large as its quorum).
/// Refused while fewer brokers than that are up, so that a cluster whose brokers are
/// still starting does not get an offsets topic it cannot grow later.
pub fn offsets_replication_factor(
    live_brokers: usize,
    voters: usize,
    configured: Option<u16>,
) -> Result<u16, String> {
    let want = match configured {
        Some(rf) => usize::from(rf),
        None => OFFSETS_TOPIC_REPLICATION_FACTOR.min(live_brokers.max(voters).max(1)),
    };
    if live_brokers < want {
        return Err(format!(
            "{CONSUMER_OFFSETS_TOPIC} needs {want} live brokers for its replicas, \
             {live_brokers} are registered; it is created once they are"
        ));
    }
    Ok(want as u16)
}

/// The command that creates `__consumer_offsets`.
pub fn create_command(partitions: u32, replication_factor: u16) -> ControllerCommand {
    ControllerCommand::CreateTopic {
        name: CONSUMER_OFFSETS_TOPIC.to_owned(),
        partitions: Some(partitions),
        replication_factor: Some(replication_factor),
        assignments: None,
        configs: offsets_topic_overrides(),
        validate_only: false,
    }
}

/// Whether this shard asked, and when it last did; stored with `Shard::insert_local`.
#[derive(Default)]
struct Requested {
    in_flight: Cell<bool>,
    last_ms: Cell<i64>,
}

/// Asks the controller (in the background) to create `__consumer_offsets`, unless
/// this shard asked within `REQUEST_INTERVAL_MS` or is still waiting for an answer.
pub fn request(broker: &Broker) {
    let Some(cluster) = broker.config.cluster.as_ref() else {
        return;
    };
    let shard = broker.shard.clone();
    let state = match shard.local::<Requested>() {
        Some(s) => s,
        None => {
            let s = Rc::new(Requested::default());
            shard.insert_local(Rc::clone(&s));
            s
        }
    };
    let now = now_ms();
    if state.in_flight.get() || now - state.last_ms.get() < REQUEST_INTERVAL_MS {
        return;
    }
    let view = broker.cluster_view();
    let live = view.brokers.iter().filter(|b| !b.fenced).count();
    let rf = match offsets_replication_factor(
        live,
        cluster.voters.len(),
        broker.config.offsets_topic_replication_factor,
    ) {
        Ok(rf) => rf,
        Err(why) => {
            state.last_ms.set(now);
            tracing::info!("{why}");
            return;
        }
    };
    state.in_flight.set(true);
    state.last_ms.set(now);
    let cmd = create_command(broker.config.offsets_topic_num_partitions, rf);
    glommio::spawn_local(async move {
        match crate::cluster::node::submit(&shard, cmd).await {
            Ok(_) => tracing::info!(
                replication_factor = rf,
                "created {CONSUMER_OFFSETS_TOPIC} for the consumer groups"
            ),
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => {}
            Err(e) => {
                tracing::warn!(error = %e.message, "{CONSUMER_OFFSETS_TOPIC} not created yet")
            }
        }
        state.in_flight.set(false);
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_replicas_once_three_brokers_are_up() {
        assert_eq!(offsets_replication_factor(3, 3, None), Ok(3));
        assert_eq!(offsets_replication_factor(5, 3, None), Ok(3));
        // A quorum of 3 with only 2 registered yet: wait rather than create RF 2.
        assert!(offsets_replication_factor(2, 3, None)
            .unwrap_err()
            .contains("needs 3 live brokers"));
    }

    #[test]
    fn a_smaller_cluster_replicates_on_every_broker() {
        assert_eq!(offsets_replication_factor(1, 1, None), Ok(1));
        assert_eq!(offsets_replication_factor(2, 1, None), Ok(2));
        assert!(offsets_replication_factor(0, 1, None).is_err());
        // The configured factor wins over the default, and waits for its brokers.
        assert_eq!(offsets_replication_factor(3, 3, Some(2)), Ok(2));
        assert!(offsets_replication_factor(3, 3, Some(4)).is_err());
    }

    #[test]
    fn the_command_creates_a_compacted_topic() {
        let ControllerCommand::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
            ..
        } = create_command(8, 3)
        else {
            panic!("not a CreateTopic");
        };
        assert_eq!(name, CONSUMER_OFFSETS_TOPIC);
        assert_eq!((partitions, replication_factor), (Some(8), Some(3)));
        assert_eq!(
            configs.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        assert!(!validate_only);
    }
}
