//! DescribeCluster: the cluster id (stable, kept in the data dir — see
//! `crate::cluster_id`), the brokers with their advertised Kafka addresses, racks and
//! fencing, and the controller, from the cluster view (`cluster_view`): a single-node
//! cluster is itself and its own controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::admin::str_bytes;
use super::admin::Outcome;
use super::errors::kafka_error;
use super::Ctx;
use crate::cluster_view::{kafka_id_or_none, ClusterView};

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
    let view = broker.cluster_view();
    let cluster = crate::cluster_id::cluster_id(broker)
        .await
        .map(|id| id.to_string())
        .map_err(|e| kafka_error(&e));
    response(
        ctx.version,
        req.endpoint_type,
        req.include_cluster_authorized_operations,
        cluster
            .as_ref()
            .map(|id| (id.as_str(), &*view))
            .map_err(Clone::clone),
    )
}

/// The answer at `version`: the endpoint type only from v1, the version that has it.
fn response(
    version: i16,
    endpoint_type: i8,
    include_operations: bool,
    cluster: Result<(&str, &ClusterView), Outcome>,
) -> DescribeClusterResponse {
    let mut out = DescribeClusterResponse::default();
    // Brokers and controllers are the same nodes: either endpoint type gets them.
    if version >= 1 {
        out.endpoint_type = endpoint_type;
    }
    let (cluster_id, view) = match cluster {
        Ok(cluster) => cluster,
        Err((code, message)) => {
            out.error_code = code;
            out.error_message = message.map(str_bytes);
            return out;
        }
    };
    out.cluster_id = str_bytes(cluster_id.to_owned());
    out.controller_id = BrokerId(kafka_id_or_none(view.controller));
    out.brokers = view
        .brokers
        .iter()
        .map(|b| {
            let entry = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.kafka_id()))
                .with_host(str_bytes(b.kafka_host.clone()))
                .with_port(i32::from(b.kafka_port))
                .with_rack(b.rack.clone().map(str_bytes));
            // `is_fenced` exists from v2; before, it must stay false.
            if version >= 2 {
                entry.with_is_fenced(b.fenced)
            } else {
                entry
            }
        })
        .collect();
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
        let single = ClusterView::single_node(crate::cluster_view::tests::endpoint(1));
        let cluster = crate::cluster_view::tests::three_brokers();
        for version in versions(ApiKey::DescribeCluster) {
            for endpoint_type in [1, 2] {
                for operations in [false, true] {
                    for view in [&single, &cluster] {
                        let ok = response(
                            version,
                            endpoint_type,
                            operations,
                            Ok(("MkU3OEVBNTcwNTJENDM2Qg", view)),
                        );
                        assert_encodes(&ok, version);
                    }
                    let failed = refuse(KafkaCode::UnknownServerError, "no cluster id");
                    let err = response(version, endpoint_type, operations, Err(failed));
                    assert_encodes(&err, version);
                }
            }
        }
    }

    #[test]
    fn a_cluster_lists_its_brokers_and_controller() {
        let mut view = crate::cluster_view::tests::three_brokers();
        view.brokers[2].fenced = true;
        let out = response(2, 1, false, Ok(("c", &view)));
        assert_eq!(out.controller_id, BrokerId(2));
        let brokers: Vec<_> = out
            .brokers
            .iter()
            .map(|b| {
                (
                    b.broker_id.0,
                    b.port,
                    b.rack.as_ref().map(|r| r.to_string()),
                    b.is_fenced,
                )
            })
            .collect();
        assert_eq!(
            brokers,
            [
                (1, 19_091, Some("rack-1".to_owned()), false),
                (2, 19_092, Some("rack-2".to_owned()), false),
                (3, 19_093, Some("rack-3".to_owned()), true),
            ]
        );
        // v1 has no is_fenced field.
        assert!(!response(1, 1, false, Ok(("c", &view))).brokers[2].is_fenced);
        view.controller = None;
        assert_eq!(
            response(2, 1, false, Ok(("c", &view))).controller_id,
            BrokerId(-1)
        );
    }

    #[test]
    fn a_single_node_is_its_own_controller() {
        let mut me = crate::cluster_view::tests::endpoint(0);
        me.rack = None;
        let view = ClusterView::single_node(me);
        let out = response(1, 1, false, Ok(("c", &view)));
        assert_eq!(out.controller_id, BrokerId(0));
        assert_eq!(out.brokers.len(), 1);
        assert_eq!(out.brokers[0].broker_id, BrokerId(0));
        assert_eq!(out.brokers[0].rack, None);
    }

    #[test]
    fn operations_bits_match_kafka() {
        assert_eq!(cluster_operations_bits(), 0b1_1111_1010_0000);
    }
}
