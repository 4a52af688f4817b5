//! InitProducerId: an idempotent native producer's id and epoch, from the same
//! allocator as the Kafka api (`crate::producer_id_blocks`: never repeated, restarts
//! and crashes included; in a cluster, blocks from the controller).

use flatbuffers::FlatBufferBuilder;
use strata_schema::protocol::*;
use strata_schema::{ApiKey, ErrorCode};

use super::{decode, Request};
use crate::broker::Broker;
use crate::errors::WireError;
use crate::response::{error_table, Response};

/// What a request asks for: a new id (`None`), or a bump of the epoch of this one.
fn existing(producer_id: i64, producer_epoch: i16) -> Result<Option<(i64, i16)>, WireError> {
    match (producer_id, producer_epoch) {
        (-1, -1) => Ok(None),
        (id, epoch) if id >= 0 && epoch >= 0 => Ok(Some((id, epoch))),
        (id, epoch) => Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!(
                "producer id {id} with epoch {epoch}: give both (to bump the epoch) or neither (for a new id)"
            ),
        )),
    }
}

pub async fn handle(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<InitProducerIdRequest>(req.body, ApiKey::InitProducerId)?;
    let answer = match existing(r.producer_id(), r.producer_epoch()) {
        Ok(existing) => crate::producer_id_blocks::init_producer(broker, existing).await,
        Err(e) => Err(e),
    };
    let mut fbb = FlatBufferBuilder::new();
    let (producer_id, producer_epoch, error) = match answer {
        Ok((id, epoch)) => (id, epoch, None),
        Err(e) => (-1, -1, Some(e)),
    };
    let error = error_table(&mut fbb, error.as_ref());
    let root = InitProducerIdResponse::create(
        &mut fbb,
        &InitProducerIdResponseArgs {
            error,
            producer_id,
            producer_epoch,
        },
    );
    fbb.finish(root, None);
    Ok(req.reply(fbb.finished_data(), Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_id_or_a_bump_but_not_half_of_one() {
        assert_eq!(existing(-1, -1).unwrap(), None);
        assert_eq!(existing(7, 2).unwrap(), Some((7, 2)));
        let e = existing(7, -1).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("give both"), "{}", e.message);
    }
}
