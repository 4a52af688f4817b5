//! DescribeCluster: the cluster id (stable, kept in the data dir — see
//! `crate::cluster_id`), this broker with its advertised Kafka address, and this
//! broker as the controller: a single-node cluster is its own controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::admin::str_bytes;
use super::errors::kafka_error;
use super::Ctx;

/// Kafka's `AclOperation` codes allowed on the cluster resource (there are no ACLs:
/// every operation the resource supports): CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS: [u8; 7] = [5, 7, 8, 9, 10, 11, 12];

/// The `cluster_authorized_operations` bit field.
pub(crate) fn cluster_operations_bits() -> i32 {
    CLUSTER_OPERATIONS.iter().fold(0, |bits, op| bits | 1 << op)
}

pub(crate) async fn describe_cluster(
    ctx: &Ctx,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = &ctx.broker;
    let mut out = DescribeClusterResponse::default();
    // Brokers and controllers are the same node: either endpoint type gets it.
    out.endpoint_type = req.endpoint_type;
    match crate::cluster_id::cluster_id(broker).await {
        Ok(id) => out.cluster_id = str_bytes(id.to_string()),
        Err(e) => {
            let (code, message) = kafka_error(&e);
            out.error_code = code;
            out.error_message = message.map(str_bytes);
            return out;
        }
    }
    let id = BrokerId(broker.config.broker_id);
    let (host, port) = super::advertised(broker);
    out.controller_id = id;
    out.brokers = vec![DescribeClusterBroker::default()
        .with_broker_id(id)
        .with_host(str_bytes(host))
        .with_port(port)
        .with_rack(None)
        .with_is_fenced(false)];
    if req.include_cluster_authorized_operations {
        out.cluster_authorized_operations = cluster_operations_bits();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_bits_match_kafka() {
        assert_eq!(cluster_operations_bits(), 0b1_1111_1010_0000);
    }
}
