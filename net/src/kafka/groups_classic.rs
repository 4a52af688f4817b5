//! Kafka's classic group protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.
//! The members choose a protocol and their leader assigns (range, roundrobin,
//! cooperative-sticky, … all run in the clients); the coordinator only relays
//! metadata and assignments and keeps generations (`crate::groups::classic`).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};

use super::groups::{group_error, on_coordinator, str_bytes};
use super::Ctx;
use crate::group_host;
use crate::groups::{
    ClassicJoinRequest, ClassicJoinResponse, GroupCode, GroupError, LeaveMember, SyncRequest,
    SyncResponse,
};

/// A timeout from the wire: negative values become 0 (and fail validation).
fn timeout_ms(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

pub(crate) async fn join_group(ctx: &Ctx, req: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.version;
    let session_timeout_ms = timeout_ms(req.session_timeout_ms);
    // v0 has no rebalance timeout: the session timeout is used.
    let rebalance_timeout_ms = if v >= 1 && req.rebalance_timeout_ms >= 0 {
        timeout_ms(req.rebalance_timeout_ms)
    } else {
        session_timeout_ms
    };
    let join = ClassicJoinRequest {
        group: req.group_id.as_str().to_owned(),
        member_id: req.member_id.as_str().to_owned(),
        instance_id: req
            .group_instance_id
            .as_ref()
            .filter(|_| v >= 5)
            .map(|i| i.as_str().to_owned()),
        client_id: ctx.client_id.clone(),
        host: ctx.peer.to_string(),
        session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: req.protocol_type.as_str().to_owned(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_owned(), p.metadata.clone()))
            .collect(),
        require_known_member_id: v >= 4,
    };
    let group = join.group.clone();
    let result = on_coordinator(ctx, &group, move |s, host| {
        group_host::classic_join(s, host, join)
    })
    .await;
    join_response(v, &req.member_id, result)
}

fn join_response(
    v: i16,
    request_member_id: &str,
    result: Result<ClassicJoinResponse, GroupError>,
) -> JoinGroupResponse {
    let mut out = JoinGroupResponse::default();
    match result {
        Ok(r) => {
            out.generation_id = r.generation;
            if v >= 7 {
                out.protocol_type = Some(str_bytes(r.protocol_type));
            }
            out.protocol_name = Some(str_bytes(r.protocol));
            out.leader = str_bytes(r.leader);
            out.member_id = str_bytes(r.member_id);
            let mut members = r.members;
            if let Some(previous) = r.skip_assignment {
                if v >= 9 {
                    out.skip_assignment = true;
                } else {
                    // No skip_assignment field: the leader must not see itself as
                    // leader, or it would reassign and rebalance everyone.
                    out.leader = str_bytes(previous);
                    members.clear();
                }
            }
            out.members = members
                .into_iter()
                .map(|m| {
                    let mut member = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_metadata(m.metadata);
                    if v >= 5 {
                        member.group_instance_id = m.instance_id.map(str_bytes);
                    }
                    member
                })
                .collect();
        }
        Err(e) => {
            out.error_code = group_error(&e).0;
            out.generation_id = -1;
            // Non-nullable before v7.
            out.protocol_name = (v < 7).then(|| str_bytes(""));
            out.member_id = match &e.code {
                GroupCode::MemberIdRequired(id) => str_bytes(id.as_str()),
                _ => str_bytes(request_member_id),
            };
        }
    }
    out
}

pub(crate) async fn sync_group(ctx: &Ctx, req: SyncGroupRequest) -> SyncGroupResponse {
    let v = ctx.version;
    let sync = SyncRequest {
        group: req.group_id.as_str().to_owned(),
        member_id: req.member_id.as_str().to_owned(),
        instance_id: req
            .group_instance_id
            .as_ref()
            .filter(|_| v >= 3)
            .map(|i| i.as_str().to_owned()),
        generation: req.generation_id,
        protocol_type: req
            .protocol_type
            .as_ref()
            .filter(|_| v >= 5)
            .map(|t| t.as_str().to_owned()),
        protocol: req
            .protocol_name
            .as_ref()
            .filter(|_| v >= 5)
            .map(|t| t.as_str().to_owned()),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.as_str().to_owned(), a.assignment.clone()))
            .collect(),
    };
    let group = sync.group.clone();
    let result = on_coordinator(ctx, &group, move |s, host| {
        group_host::classic_sync(s, host, sync)
    })
    .await;
    sync_response(v, result)
}

fn sync_response(v: i16, result: Result<SyncResponse, GroupError>) -> SyncGroupResponse {
    let mut out = SyncGroupResponse::default();
    match result {
        Ok(r) => {
            if v >= 5 {
                out.protocol_type = Some(str_bytes(r.protocol_type));
                out.protocol_name = Some(str_bytes(r.protocol));
            }
            out.assignment = r.assignment;
        }
        Err(e) => out.error_code = group_error(&e).0,
    }
    out
}

pub(crate) async fn heartbeat(ctx: &Ctx, req: HeartbeatRequest) -> HeartbeatResponse {
    let group = req.group_id.as_str().to_owned();
    let member = req.member_id.as_str().to_owned();
    let instance = req
        .group_instance_id
        .as_ref()
        .filter(|_| ctx.version >= 3)
        .map(|i| i.as_str().to_owned());
    let generation = req.generation_id;
    let g = group.clone();
    let result = on_coordinator(ctx, &g, move |_, host| async move {
        group_host::classic_heartbeat(&host, &group, &member, instance.as_deref(), generation)
    })
    .await;
    let mut out = HeartbeatResponse::default();
    if let Err(e) = result {
        out.error_code = group_error(&e).0;
    }
    out
}

pub(crate) async fn leave_group(ctx: &Ctx, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = ctx.version;
    let leaving: Vec<LeaveMember> = if v >= 3 {
        req.members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.as_str().to_owned(),
                instance_id: m.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: req.member_id.as_str().to_owned(),
            instance_id: None,
        }]
    };
    let group = req.group_id.as_str().to_owned();
    let asked = leaving.clone();
    let g = group.clone();
    let result = on_coordinator(ctx, &g, move |_, host| async move {
        group_host::classic_leave(&host, &group, &leaving)
    })
    .await;
    leave_response(v, asked, result)
}

fn leave_response(
    v: i16,
    asked: Vec<LeaveMember>,
    result: Result<Vec<Result<(), GroupError>>, GroupError>,
) -> LeaveGroupResponse {
    let mut out = LeaveGroupResponse::default();
    match result {
        Err(e) => out.error_code = group_error(&e).0,
        Ok(results) if v < 3 => {
            if let Some(Err(e)) = results.first() {
                out.error_code = group_error(e).0;
            }
        }
        Ok(results) => {
            out.members = asked
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(m.instance_id.map(str_bytes))
                        .with_error_code(r.err().map_or(0, |e| group_error(&e).0))
                })
                .collect();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use strata_schema::ErrorCode;

    use super::*;
    use crate::groups::ClassicJoinedMember;
    use crate::kafka::codec::assert_encodes as encodes;

    #[test]
    fn join_answers_encode_at_every_version() {
        let ok = ClassicJoinResponse {
            member_id: "m".into(),
            generation: 2,
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            leader: "m".into(),
            members: vec![ClassicJoinedMember {
                member_id: "m".into(),
                instance_id: Some("i".into()),
                metadata: Bytes::from_static(b"meta"),
            }],
            skip_assignment: None,
        };
        let rejoined_leader = ClassicJoinResponse {
            skip_assignment: Some("m-old".into()),
            ..ok.clone()
        };
        for v in 0..=9 {
            encodes(&join_response(v, "", Ok(ok.clone())), v);
            let r = join_response(v, "", Ok(rejoined_leader.clone()));
            if v >= 9 {
                assert!(r.skip_assignment && r.leader.as_str() == "m" && r.members.len() == 1);
            } else {
                assert!(r.leader.as_str() == "m-old" && r.members.is_empty());
            }
            encodes(&r, v);
            let required = GroupError::new(GroupCode::MemberIdRequired("m-1".into()), "again");
            let r = join_response(v, "", Err(required));
            assert_eq!(r.member_id.as_str(), "m-1");
            assert_eq!(r.error_code, 79);
            encodes(&r, v);
            let other = GroupError::new(ErrorCode::UnknownMemberId, "who");
            encodes(&join_response(v, "x", Err(other)), v);
        }
    }

    #[test]
    fn sync_leave_and_heartbeat_answers_encode_at_every_version() {
        for v in 0..=5 {
            let ok = SyncResponse {
                protocol_type: "consumer".into(),
                protocol: "range".into(),
                assignment: Bytes::from_static(b"a"),
            };
            encodes(&sync_response(v, Ok(ok)), v);
            let e = GroupError::new(ErrorCode::RebalanceInProgress, "again");
            encodes(&sync_response(v, Err(e.clone())), v);
            let asked = vec![LeaveMember {
                member_id: "m".into(),
                instance_id: (v >= 3).then(|| "i".to_owned()),
            }];
            encodes(&leave_response(v, asked.clone(), Ok(vec![Ok(())])), v);
            encodes(
                &leave_response(v, asked.clone(), Ok(vec![Err(e.clone())])),
                v,
            );
            encodes(&leave_response(v, asked, Err(e)), v);
        }
        for v in 0..=4 {
            encodes(&HeartbeatResponse::default().with_error_code(27), v);
        }
    }

    #[test]
    fn storage_faults_look_retriable_to_group_clients() {
        let e = GroupError::new(ErrorCode::StorageError, "disk");
        assert_eq!(group_error(&e).0, 15, "COORDINATOR_NOT_AVAILABLE");
        let e = GroupError::new(ErrorCode::GroupNotEmpty, "busy");
        assert_eq!(group_error(&e).0, 68);
        let e = GroupError::new(GroupCode::FencedMemberEpoch, "fenced");
        assert_eq!(group_error(&e).0, 110);
    }
}
