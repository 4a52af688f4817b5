//! The broker-to-broker replication transport: how Raft messages of every group
//! travel between brokers.
//!
//! Owns the group name on the wire ([`GroupId`]), the message a group sends
//! ([`GroupMessage`]), the replication frames as bytes (`frame`: pure encode/decode of
//! `schema/fbs/replication.fbs`, every wire length bounded) and the glommio transport
//! on shard 0 ([`Transport`]: one listener, one outbound connection per peer, messages
//! coalesced per peer into one frame with batches by reference, call/reply for
//! controller RPCs). It does not know what the messages mean: routing them to the
//! shard that owns a group and driving the Raft state machines is the caller's.

mod counters;
mod frame;
mod frame_reader;
mod group_id;
mod group_message;
mod peer_liveness;
mod socket_options;
mod transport;
mod vectored_write;

pub use counters::TransportCounters;
pub use frame::{
    decode_frame, encode_call, encode_hello, encode_messages, encode_reply, message_bytes_bound,
    Frame, ReplicationFrameError, CALL_ERROR_BYTES_MAX, ENTRY_HEAD_BYTES_BOUND,
    FRAME_OVERHEAD_BYTES_BOUND, MESSAGES_PER_FRAME_MAX, MESSAGE_HEAD_BYTES_BOUND,
    REPLICATION_FRAME_VERSION,
};
pub use frame_reader::{FrameReader, ReadFrameError, READ_BYTES_MAX, READ_CHUNK_BYTES};
pub use group_id::GroupId;
pub use group_message::GroupMessage;
pub use peer_liveness::PeerLiveness;
pub use socket_options::{
    KEEPALIVE_IDLE_SECS, KEEPALIVE_INTERVAL_SECS, KEEPALIVE_PROBES, TCP_USER_TIMEOUT_MS,
};
pub use transport::{
    CallError, Inbound, LocalBoxFuture, SendError, Transport, TransportConfig, TransportError,
    APPEND_BATCH_BYTES_MAX, CALLS_IN_FLIGHT_MAX, CALL_PAYLOAD_BYTES_MAX, CONNECT_TIMEOUT_MS,
    FRAME_BYTES_TARGET, HELLO_TIMEOUT_MS, INBOUND_CALLS_MAX, INBOUND_CONNECTIONS_MAX,
    PEER_CONTROL_FRAMES_MAX, PEER_HEARTBEAT_MS, PEER_QUEUE_BYTES_MAX, PEER_QUEUE_MESSAGES_MAX,
    RECONNECT_BACKOFF_MS_MAX, RECONNECT_BACKOFF_MS_MIN,
};
