//! Kafka framing on the shared connection loop: a big-endian i32 size, then the
//! request. Requests are handled concurrently and answered in order, as Kafka
//! clients expect of pipelined requests.

use std::rc::Rc;

use bytes::Bytes;
use futures_lite::io::{AsyncReadExt, ReadHalf};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use strata_schema::FRAME_BYTES_MAX;

use super::codec::{decode_request, KafkaFrame};
use crate::broker::Broker;
use crate::connection::{read_vec, Protocol, IN_FLIGHT_BYTES_MAX};
use crate::response::Response;

/// The Kafka protocol.
pub(crate) struct KafkaProtocol;

impl Protocol for KafkaProtocol {
    type Frame = KafkaFrame;

    async fn read_frame(
        reader: &mut ReadHalf<TcpStream>,
        budget: &Rc<Semaphore>,
    ) -> Result<(KafkaFrame, StaticPermit), String> {
        let mut size = [0u8; 4];
        reader
            .read_exact(&mut size)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > FRAME_BYTES_MAX {
            return Err(format!(
                "request size {size} is outside 0..={FRAME_BYTES_MAX} bytes"
            ));
        }
        let permit = budget
            .acquire_static_permit((size as u64).min(IN_FLIGHT_BYTES_MAX))
            .await
            .map_err(|e| e.to_string())?;
        let bytes = read_vec(reader, size as usize).await?;
        let frame = decode_request(Bytes::from(bytes))?;
        Ok((frame, permit))
    }

    async fn handle(broker: Rc<Broker>, frame: KafkaFrame, peer: Rc<str>) -> Response {
        super::dispatch::handle(broker, frame, peer).await
    }
}
