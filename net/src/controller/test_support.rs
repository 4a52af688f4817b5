//! Values the controller's unit tests build images from.

use strata_raft::NodeId;

use super::image::MetadataImage;
use super::records::{BrokerRegistration, MetadataRecord};

/// Broker `id` on 127.0.0.1, in `rack`.
pub(crate) fn registration(id: NodeId, rack: Option<&str>) -> BrokerRegistration {
    BrokerRegistration {
        id,
        incarnation: 7,
        kafka_host: "127.0.0.1".to_owned(),
        kafka_port: 9092 + id as u16,
        native_addr: format!("127.0.0.1:{}", 9000 + id),
        cluster_addr: format!("127.0.0.1:{}", 9100 + id),
        rack: rack.map(str::to_owned),
    }
}

/// An image with brokers `ids` registered (no racks).
pub(crate) fn image_with_brokers(ids: &[NodeId]) -> MetadataImage {
    image_with_racks(&ids.iter().map(|&id| (id, None)).collect::<Vec<_>>())
}

/// An image with brokers `(id, rack)` registered.
pub(crate) fn image_with_racks(brokers: &[(NodeId, Option<&str>)]) -> MetadataImage {
    let mut image = MetadataImage::new();
    for &(id, rack) in brokers {
        image
            .apply(&MetadataRecord::RegisterBroker(registration(id, rack)))
            .expect("a registration always applies");
    }
    image
}
