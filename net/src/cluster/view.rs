//! The cluster as clients are told of it (Kafka Metadata, FindCoordinator,
//! DescribeCluster, native Metadata), built from the metadata image and this broker's
//! own replicas, and handed to every shard as an immutable snapshot.

use std::sync::Arc;

use strata_raft::NodeId;

use crate::broker::Broker;
use crate::cluster::stepped_down::{self, SteppedDown, SteppedDownMap};
use crate::cluster_view::{BrokerEndpoint, ClusterView, PartitionView};
use crate::controller::MetadataImage;

/// The view of `image` as seen from broker `me` (fenced brokers are left out of the
/// broker list and count as offline replicas), with the leaderships `me` lost that
/// the image does not know yet (`stepped_down`).
pub fn view_of(
    image: &MetadataImage,
    me: NodeId,
    controller: Option<NodeId>,
    shards: u32,
    stepped_down: &SteppedDownMap,
) -> ClusterView {
    let brokers: Vec<BrokerEndpoint> = image
        .brokers()
        .values()
        .filter_map(|b| {
            let native_addr = b.registration.native_addr.parse().ok()?;
            Some(BrokerEndpoint {
                id: b.registration.id,
                kafka_host: b.registration.kafka_host.clone(),
                kafka_port: b.registration.kafka_port,
                native_addr,
                rack: b.registration.rack.clone(),
                shards,
                fenced: b.fenced,
            })
        })
        .collect();
    let live = |id: &NodeId| image.broker(*id).is_some_and(|b| !b.fenced);
    let mut view = ClusterView::new(me, controller, brokers);
    for t in image.topics().values() {
        let partitions = t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let view = PartitionView {
                    leader: p.leader.filter(live),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.iter().copied().filter(live).collect(),
                    offline: p.replicas.iter().copied().filter(|r| !live(r)).collect(),
                };
                stepped_down::corrected(view, me, stepped_down.get(&(t.id, i as u32)))
            })
            .collect();
        view.set_topic(&t.name, partitions);
    }
    view
}

/// Builds the view of `image` and hands it to every shard.
pub async fn publish_view(
    broker: &Broker,
    image: &MetadataImage,
    me: NodeId,
    controller: Option<NodeId>,
) {
    let shards = broker.shard.shard_count() as u32;
    let stepped = SteppedDown::of(&broker.shard).pruned(image, me);
    let view = Arc::new(view_of(image, me, controller, shards, &stepped));
    for s in 0..broker.shard.shard_count() {
        let v = Arc::clone(&view);
        if let Err(e) = broker
            .shard
            .invoke_on(s, move |shard| async move {
                Broker::of(&shard).set_cluster_view(v);
            })
            .await
        {
            tracing::warn!(shard = s, error = %e, "cluster view did not reach a shard");
        }
    }
}
