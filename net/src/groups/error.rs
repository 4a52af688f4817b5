//! Why the coordinator refuses a request: a code each protocol maps onto its own
//! (the native [`ErrorCode`], or a Kafka error code) and a message for people.

use strata_schema::ErrorCode;

use crate::errors::WireError;

/// What went wrong, in the coordinator's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupCode {
    /// One of strata's own codes (bad input, storage faults, shutdown, …).
    Wire(ErrorCode),
    /// The group id is empty or otherwise unusable.
    InvalidGroupId,
    /// The group is run by another membership protocol (native, Kafka classic or
    /// KIP-848), or the member's protocols have nothing in common with the group's.
    InconsistentGroupProtocol,
    /// A Kafka classic member joined without a member id: it must join again with
    /// the id given here (JoinGroup v4+).
    MemberIdRequired(String),
    /// Another member with the same group instance id replaced this one.
    FencedInstanceId,
    /// A KIP-848 static member's instance id is still used by an active member.
    UnreleasedInstanceId,
    /// The group has the most members it may have.
    GroupMaxSizeReached,
    /// A KIP-848 member's epoch is not the one the coordinator knows: it must give
    /// up its partitions and join again.
    FencedMemberEpoch,
    /// A KIP-848 member committed or fetched with an older epoch.
    StaleMemberEpoch,
    /// A KIP-848 member asked for a server assignor this broker does not have.
    UnsupportedAssignor,
    /// A KIP-848 member subscribed with a regular expression that does not parse.
    InvalidRegularExpression,
    /// The member must use a newer version of the api (KIP-848 members commit with
    /// OffsetCommit v9+).
    UnsupportedVersion,
    /// Offset metadata longer than the broker keeps.
    OffsetMetadataTooLarge,
}

impl From<ErrorCode> for GroupCode {
    fn from(code: ErrorCode) -> Self {
        GroupCode::Wire(code)
    }
}

/// A refused request: its code and a message a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupError {
    pub code: GroupCode,
    pub message: String,
}

impl GroupError {
    pub fn new(code: impl Into<GroupCode>, message: impl Into<String>) -> Self {
        GroupError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The nearest native error code (the native protocol has no codes for the
    /// Kafka-only cases).
    pub fn wire_code(&self) -> ErrorCode {
        match &self.code {
            GroupCode::Wire(c) => *c,
            GroupCode::InvalidGroupId
            | GroupCode::InconsistentGroupProtocol
            | GroupCode::UnsupportedAssignor
            | GroupCode::InvalidRegularExpression
            | GroupCode::OffsetMetadataTooLarge => ErrorCode::InvalidRequest,
            GroupCode::UnsupportedVersion => ErrorCode::UnsupportedVersion,
            GroupCode::MemberIdRequired(_)
            | GroupCode::FencedInstanceId
            | GroupCode::UnreleasedInstanceId
            | GroupCode::FencedMemberEpoch => ErrorCode::UnknownMemberId,
            GroupCode::StaleMemberEpoch => ErrorCode::IllegalGeneration,
            GroupCode::GroupMaxSizeReached => ErrorCode::InvalidRequest,
        }
    }
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<WireError> for GroupError {
    fn from(e: WireError) -> Self {
        GroupError::new(e.code, e.message)
    }
}

impl From<GroupError> for WireError {
    fn from(e: GroupError) -> Self {
        WireError::new(e.wire_code(), e.message)
    }
}
