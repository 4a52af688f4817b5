//! Kafka framing on the shared connection loop: a big-endian i32 size, then the
//! request. Requests are handled concurrently and answered in order, as Kafka
//! clients expect of pipelined requests.

use std::rc::Rc;

use bytes::Bytes;
use futures_lite::io::AsyncReadExt;
use kafka_protocol::messages::ApiKey;
use strata_schema::FRAME_BYTES_MAX;

use super::codec::{decode_request, KafkaFrame};
use crate::broker::Broker;
use crate::connection::RESPONSE_BYTES_RESERVE_DEFAULT;
use crate::connection::{read_vec, Budget, Held, Protocol, ReadError, Reader};
use crate::response::Response;

/// First Fetch version without `replica_id` in front of `max_bytes` (KIP-903).
const FETCH_VERSION_WITHOUT_REPLICA_ID: i16 = 15;

/// The Kafka protocol.
pub(crate) struct KafkaProtocol;

impl Protocol for KafkaProtocol {
    type Frame = KafkaFrame;

    async fn read_frame(
        reader: &mut Reader,
        budget: &Budget,
    ) -> Result<(KafkaFrame, Held), ReadError> {
        let mut size = [0u8; 4];
        reader.read_exact(&mut size).await?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > FRAME_BYTES_MAX {
            return Err(ReadError::Framing(format!(
                "request size {size} is outside 0..={FRAME_BYTES_MAX} bytes"
            )));
        }
        let held = budget.hold_request(size as usize).await?;
        let bytes = read_vec(reader, size as usize).await?;
        let frame = decode_request(Bytes::from(bytes)).map_err(ReadError::Framing)?;
        Ok((frame, held))
    }

    fn response_bytes_reserve(frame: &KafkaFrame) -> u64 {
        if frame.api != Some(ApiKey::Fetch) || frame.malformed.is_some() {
            return RESPONSE_BYTES_RESERVE_DEFAULT;
        }
        // The request's total `max_bytes` sits at a fixed place in the body (served
        // versions are 4 and up): after replica_id, max_wait_ms and min_bytes, or
        // after the last two from v15.
        let at = if frame.header.request_api_version >= FETCH_VERSION_WITHOUT_REPLICA_ID {
            8
        } else {
            12
        };
        let max_bytes = frame
            .body
            .get(at..at + 4)
            .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        u64::try_from(max_bytes).unwrap_or(0) + RESPONSE_BYTES_RESERVE_DEFAULT
    }

    async fn handle(broker: Rc<Broker>, frame: KafkaFrame, peer: Rc<str>) -> Response {
        super::dispatch::handle(broker, frame, peer).await
    }

    /// A broker cut off from the controller quorum closes a connection after its
    /// Metadata answer, so the client asks another broker (`cluster::isolation`).
    fn closes_after(broker: &Broker, frame: &KafkaFrame) -> bool {
        frame.api == Some(ApiKey::Metadata) && crate::cluster::isolation::is_isolated(&broker.shard)
    }
}
