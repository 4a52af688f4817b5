//! Native protocol API keys and the versions this build serves.

/// The AlterConfigs key that asks the broker to reopen a topic's fenced or offline
/// partitions (`strata topic repair`) instead of changing a config; its value is a
/// partition number or `all`. It is an action: nothing is stored.
pub const REPAIR_PARTITIONS_KEY: &str = "strata.repair.partitions";

/// One request type of the native protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ApiKey {
    ApiVersions = 0,
    Metadata = 1,
    CreateTopics = 2,
    DeleteTopics = 3,
    CreatePartitions = 4,
    AlterConfigs = 5,
    Produce = 10,
    Fetch = 11,
    ListOffsets = 12,
    InitProducerId = 13,
    JoinGroup = 20,
    Heartbeat = 21,
    LeaveGroup = 22,
    OffsetCommit = 23,
    OffsetFetch = 24,
    DescribeGroup = 25,
    ListGroups = 26,
    DeleteGroup = 27,
}

impl ApiKey {
    /// Every API, in key order.
    pub const ALL: [ApiKey; 18] = [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::CreatePartitions,
        ApiKey::AlterConfigs,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::InitProducerId,
        ApiKey::JoinGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::DescribeGroup,
        ApiKey::ListGroups,
        ApiKey::DeleteGroup,
    ];

    /// The key for a wire value, if it is one.
    pub fn from_u16(v: u16) -> Option<ApiKey> {
        ApiKey::ALL.iter().copied().find(|k| *k as u16 == v)
    }

    /// Versions served: (min, max).
    pub fn versions(self) -> (u16, u16) {
        (0, 0)
    }

    /// The name used in docs and errors.
    pub fn name(self) -> &'static str {
        match self {
            ApiKey::ApiVersions => "ApiVersions",
            ApiKey::Metadata => "Metadata",
            ApiKey::CreateTopics => "CreateTopics",
            ApiKey::DeleteTopics => "DeleteTopics",
            ApiKey::CreatePartitions => "CreatePartitions",
            ApiKey::AlterConfigs => "AlterConfigs",
            ApiKey::Produce => "Produce",
            ApiKey::Fetch => "Fetch",
            ApiKey::ListOffsets => "ListOffsets",
            ApiKey::InitProducerId => "InitProducerId",
            ApiKey::JoinGroup => "JoinGroup",
            ApiKey::Heartbeat => "Heartbeat",
            ApiKey::LeaveGroup => "LeaveGroup",
            ApiKey::OffsetCommit => "OffsetCommit",
            ApiKey::OffsetFetch => "OffsetFetch",
            ApiKey::DescribeGroup => "DescribeGroup",
            ApiKey::ListGroups => "ListGroups",
            ApiKey::DeleteGroup => "DeleteGroup",
        }
    }
}

/// Lowest api number of the broker-to-broker replication frames.
pub const REPLICATION_API_MIN: u16 = 1000;
/// Highest api number reserved for replication frames.
pub const REPLICATION_API_MAX: u16 = 1099;

/// Frames between brokers on the cluster listener (`schema/fbs/replication.fbs`), in
/// the native framing. Their numbers lie in
/// [`REPLICATION_API_MIN`]`..=`[`REPLICATION_API_MAX`], apart from every [`ApiKey`], so
/// a client listener never serves them ([`ApiKey::from_u16`] knows none of them) and a
/// replication frame sent to a client port is answered as an unknown api.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplicationApi {
    /// `Hello`: the first frame on every broker-to-broker connection.
    Hello = 1000,
    /// `MessagesFrame`: Raft messages of many groups, batches in the tail.
    Messages = 1001,
    /// `CallRequest`: a request that expects a `CallReply`.
    Call = 1002,
    /// `CallReply`: the answer to a `CallRequest`, sent on the replier's own connection.
    CallReply = 1003,
}

impl ReplicationApi {
    /// Every replication frame type.
    pub const ALL: [ReplicationApi; 4] = [
        ReplicationApi::Hello,
        ReplicationApi::Messages,
        ReplicationApi::Call,
        ReplicationApi::CallReply,
    ];

    /// The frame type for a wire value, if it is one.
    pub fn from_u16(v: u16) -> Option<ReplicationApi> {
        ReplicationApi::ALL.iter().copied().find(|k| *k as u16 == v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_roundtrip() {
        for k in ApiKey::ALL {
            assert_eq!(ApiKey::from_u16(k as u16), Some(k));
        }
        assert_eq!(ApiKey::from_u16(999), None);
    }

    #[test]
    fn replication_apis_are_apart_from_client_apis() {
        for r in ReplicationApi::ALL {
            let v = r as u16;
            assert!((REPLICATION_API_MIN..=REPLICATION_API_MAX).contains(&v));
            assert_eq!(ReplicationApi::from_u16(v), Some(r));
            assert_eq!(
                ApiKey::from_u16(v),
                None,
                "client listeners must not serve {r:?}"
            );
        }
        for k in ApiKey::ALL {
            assert!(!(REPLICATION_API_MIN..=REPLICATION_API_MAX).contains(&(k as u16)));
        }
    }
}
