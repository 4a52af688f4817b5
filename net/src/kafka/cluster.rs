//! DescribeCluster: the cluster id (stable, kept in the data dir — see
//! `crate::cluster_id`), this broker with its advertised Kafka address, and this
//! broker as the controller: a single-node cluster is its own controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::admin::str_bytes;
use super::admin::Outcome;
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
    let node = crate::cluster_id::cluster_id(broker)
        .await
        .map(|id| {
            let (host, port) = super::advertised(broker);
            Node {
                cluster_id: id.to_string(),
                broker_id: broker.config.broker_id,
                host,
                port,
            }
        })
        .map_err(|e| kafka_error(&e));
    response(
        ctx.version,
        req.endpoint_type,
        req.include_cluster_authorized_operations,
        node,
    )
}

/// This single-node cluster as DescribeCluster shows it.
struct Node {
    cluster_id: String,
    broker_id: i32,
    host: String,
    port: i32,
}

/// The answer at `version`: the endpoint type only from v1, the version that has it.
fn response(
    version: i16,
    endpoint_type: i8,
    include_operations: bool,
    node: Result<Node, Outcome>,
) -> DescribeClusterResponse {
    let mut out = DescribeClusterResponse::default();
    // Brokers and controllers are the same node: either endpoint type gets it.
    if version >= 1 {
        out.endpoint_type = endpoint_type;
    }
    let node = match node {
        Ok(node) => node,
        Err((code, message)) => {
            out.error_code = code;
            out.error_message = message.map(str_bytes);
            return out;
        }
    };
    out.cluster_id = str_bytes(node.cluster_id);
    let id = BrokerId(node.broker_id);
    out.controller_id = id;
    // `is_fenced` (v2+) stays false, its default: nothing to leave out before v2.
    out.brokers = vec![DescribeClusterBroker::default()
        .with_broker_id(id)
        .with_host(str_bytes(node.host))
        .with_port(node.port)
        .with_rack(None)
        .with_is_fenced(false)];
    if include_operations {
        out.cluster_authorized_operations = cluster_operations_bits();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::admin::{refuse, versions};
    use crate::kafka::codec::assert_encodes;
    use crate::kafka::errors::KafkaCode;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn responses_encode_at_every_served_version() {
        let node = || Node {
            cluster_id: "MkU3OEVBNTcwNTJENDM2Qg".to_owned(),
            broker_id: 1,
            host: "localhost".to_owned(),
            port: 9092,
        };
        for version in versions(ApiKey::DescribeCluster) {
            for endpoint_type in [1, 2] {
                for operations in [false, true] {
                    let ok = response(version, endpoint_type, operations, Ok(node()));
                    assert_encodes(&ok, version);
                    let failed = refuse(KafkaCode::UnknownServerError, "no cluster id");
                    let err = response(version, endpoint_type, operations, Err(failed));
                    assert_encodes(&err, version);
                }
            }
        }
    }

    #[test]
    fn operations_bits_match_kafka() {
        assert_eq!(cluster_operations_bits(), 0b1_1111_1010_0000);
    }
}
