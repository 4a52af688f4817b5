//! Native group requests in a cluster. A native client talks to one broker and does
//! not look up coordinators, so a group request that lands on a broker which does not
//! coordinate its group is forwarded, as it came (header and body), to the broker that
//! does — the leader of the group's `__consumer_offsets` partition in the cluster view
//! — over the cluster transport, and that broker's answer is relayed unchanged.
//!
//! A forwarded request is answered where it arrives and never forwarded again: a
//! broker whose view is stale answers NOT_COORDINATOR, which the client retries.

use std::rc::Rc;

use strata_engine::shard::Shard;
use strata_raft::NodeId;
use strata_schema::{ErrorCode, FrameHeader, FRAME_HEADER_BYTES};

use crate::broker::Broker;
use crate::errors::WireError;
use crate::groups::coordinator_partition;
use crate::handlers::Request;
use crate::metadata::CONSUMER_OFFSETS_TOPIC;
use crate::replication::{LocalBoxFuture, CALL_PAYLOAD_BYTES_MAX};
use crate::response::{request_error, Response};

/// First byte of a forwarded group request (controller commands start with their
/// codec version, 1).
const FORWARD_TAG: u8 = 0xF0;
/// Layout version after the tag.
const FORWARD_VERSION: u8 = 1;
/// Longest client address carried along (for DescribeGroup's member hosts).
const PEER_BYTES_MAX: usize = 255;
/// How long a forwarded request that is not held (everything but a join) may take.
pub const FORWARD_TIMEOUT_MS: u64 = 30_000;

/// Whether a transport call carries a forwarded group request.
pub fn is_forwarded(payload: &[u8]) -> bool {
    payload.first() == Some(&FORWARD_TAG)
}

/// The call payload of a request from client `peer`.
pub fn encode(peer: &str, header: &FrameHeader, body: &[u8]) -> Vec<u8> {
    let peer = truncate_at_char(peer, PEER_BYTES_MAX);
    let mut out = Vec::with_capacity(3 + peer.len() + FRAME_HEADER_BYTES + body.len());
    out.push(FORWARD_TAG);
    out.push(FORWARD_VERSION);
    out.push(peer.len() as u8);
    out.extend_from_slice(peer.as_bytes());
    let forwarded = FrameHeader {
        length: (FRAME_HEADER_BYTES - 4 + body.len()) as u32,
        body_len: body.len() as u32,
        ..*header
    };
    forwarded.encode(&mut out);
    out.extend_from_slice(body);
    out
}

fn truncate_at_char(s: &str, max_bytes: usize) -> &str {
    let mut end = s.len().min(max_bytes);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A forwarded request: the client's address, the header and the body.
#[derive(Debug, PartialEq, Eq)]
pub struct Forwarded<'a> {
    pub peer: &'a str,
    pub header: FrameHeader,
    pub body: &'a [u8],
}

/// Reads a payload [`encode`] wrote.
pub fn decode(payload: &[u8]) -> Result<Forwarded<'_>, String> {
    let (tag, version, peer_len) = match payload {
        [t, v, n, ..] => (*t, *v, usize::from(*n)),
        _ => return Err("forwarded group request: too short".to_owned()),
    };
    if tag != FORWARD_TAG || version != FORWARD_VERSION {
        return Err(format!(
            "forwarded group request: tag {tag:#x} version {version}; this broker reads version {FORWARD_VERSION}"
        ));
    }
    let rest = &payload[3..];
    let peer = rest
        .get(..peer_len)
        .ok_or("forwarded group request: the client address is cut short")?;
    let peer = std::str::from_utf8(peer)
        .map_err(|e| format!("forwarded group request: client address: {e}"))?;
    let frame = &rest[peer_len..];
    let header = FrameHeader::decode(frame, CALL_PAYLOAD_BYTES_MAX)
        .map_err(|e| format!("forwarded group request: {e}"))?
        .ok_or("forwarded group request: the frame header is cut short")?;
    if header.frame_bytes() != frame.len() || header.tail_bytes() != 0 {
        return Err(format!(
            "forwarded group request: the frame says {} bytes with no tail, {} arrived",
            header.frame_bytes(),
            frame.len()
        ));
    }
    Ok(Forwarded {
        peer,
        header,
        body: &frame[FRAME_HEADER_BYTES..],
    })
}

/// In a cluster, the broker that coordinates `group` when, by this broker's view,
/// it is another one. `None`: this broker (or nobody yet: answered here, as
/// NOT_COORDINATOR).
pub fn remote_coordinator(broker: &Broker, group: &str) -> Option<NodeId> {
    let me = broker.config.cluster.as_ref()?.node_id;
    let partitions = broker.topics().get(CONSUMER_OFFSETS_TOPIC)?.partitions;
    let p = coordinator_partition(group, partitions);
    let leader = broker
        .cluster_view()
        .leader_endpoint(CONSUMER_OFFSETS_TOPIC, p)
        .filter(|b| !b.fenced)?
        .id;
    (leader != me).then_some(leader)
}

/// Sends `req` to broker `to` and relays its answer (the whole response frame).
pub async fn forward(
    broker: &Broker,
    req: &Request<'_>,
    to: NodeId,
    timeout_ms: u64,
) -> Result<Response, WireError> {
    let payload = encode(req.peer, &req.header, req.body);
    let head = crate::cluster::node::call_broker(&broker.shard, to, payload, timeout_ms)
        .await
        .map_err(|why| {
            WireError::new(
                ErrorCode::NotCoordinator,
                format!("broker {to} coordinates this group but did not answer ({why}); retry"),
            )
        })?;
    Ok(Response {
        head,
        tail: Vec::new(),
    })
}

/// Answers a forwarded request on this broker (called by the transport's inbound
/// side on shard 0): the response frame, or why the payload was unreadable.
pub fn serve(shard: Shard, payload: Vec<u8>) -> LocalBoxFuture<Result<Vec<u8>, String>> {
    Box::pin(async move {
        let f = decode(&payload)?;
        let broker: Rc<Broker> = Broker::of(&shard);
        let req = Request {
            header: f.header,
            body: f.body,
            peer: f.peer,
        };
        let response = crate::handlers::groups::serve_here(&broker, &req)
            .await
            .unwrap_or_else(|e| request_error(f.header.correlation_id, e));
        debug_assert!(response.tail.is_empty(), "group responses have no tail");
        Ok(response.head)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(body_len: usize) -> FrameHeader {
        FrameHeader {
            length: (FRAME_HEADER_BYTES - 4 + body_len) as u32,
            api: 11,
            version: 0,
            correlation_id: 77,
            body_len: body_len as u32,
        }
    }

    #[test]
    fn a_forwarded_request_reads_back_as_it_was_sent() {
        let body = b"flatbuffer body";
        let payload = encode("10.0.0.7", &header(body.len()), body);
        assert!(is_forwarded(&payload));
        let f = decode(&payload).unwrap();
        assert_eq!(f.peer, "10.0.0.7");
        assert_eq!(f.header, header(body.len()));
        assert_eq!(f.body, body);
    }

    #[test]
    fn controller_commands_are_not_taken_for_forwarded_requests() {
        let cmd = crate::controller::encode_command(
            &crate::controller::ControllerCommand::AllocateProducerIds { count: 1 },
        );
        assert!(!is_forwarded(&cmd));
    }

    #[test]
    fn a_cut_or_padded_payload_is_refused() {
        let body = b"0123456789";
        let payload = encode("", &header(body.len()), body);
        for cut in [1, 3, 10, payload.len() - 1] {
            assert!(decode(&payload[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = payload.clone();
        padded.push(0);
        assert!(decode(&padded).unwrap_err().contains("arrived"));
    }

    #[test]
    fn a_long_client_address_is_cut_at_a_character() {
        let peer = "é".repeat(200);
        let payload = encode(&peer, &header(0), b"");
        let f = decode(&payload).unwrap();
        assert!(f.peer.len() <= PEER_BYTES_MAX);
        assert!(peer.starts_with(f.peer));
    }
}
