//! ListOffsets: earliest (-2), latest (-1, the high watermark) or the first offset
//! at or after a timestamp, per partition on its owner shard.

use std::rc::Rc;

use flatbuffers::FlatBufferBuilder;
use strata_schema::protocol::*;
use strata_schema::ApiKey;

use super::{decode, Request};
use crate::broker::Broker;
use crate::errors::WireError;
use crate::response::{error_table, Response};

/// Asks for the earliest offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// Asks for the latest offset (the high watermark).
pub const LATEST_TIMESTAMP: i64 = -1;

pub(crate) type Found = Result<(i64, i64), WireError>;

pub(crate) async fn lookup(
    broker: Rc<Broker>,
    (topic, partition, ts): (String, u32, i64),
) -> Found {
    crate::cluster::replicas::leader_replica(&broker, &topic, partition)?;
    let log = broker.log(&topic, partition).await?;
    match ts {
        EARLIEST_TIMESTAMP => Ok((log.log_start_offset(), -1)),
        LATEST_TIMESTAMP => Ok((log.high_watermark(), -1)),
        ts => Ok(log.offset_for_timestamp(ts).await?.unwrap_or((-1, -1))),
    }
}

pub async fn handle(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<ListOffsetsRequest>(req.body, ApiKey::ListOffsets)?;
    let wanted: Vec<(String, u32, i64)> = r
        .partitions()
        .iter()
        .flatten()
        .map(|p| (p.topic().to_owned(), p.partition(), p.timestamp_ms()))
        .collect();
    let items = wanted
        .iter()
        .map(|w| (broker.owner(&w.0, w.1), w.clone()))
        .collect();
    let found = scatter_lookup(broker, items).await;
    let mut fbb = FlatBufferBuilder::new();
    let results: Vec<_> = wanted
        .iter()
        .zip(found)
        .map(|((topic, partition, _), f)| {
            let topic = fbb.create_string(topic);
            let (offset, timestamp_ms, error) = match f {
                Ok((o, t)) => (o, t, None),
                Err(e) => (-1, -1, Some(e)),
            };
            let error = error_table(&mut fbb, error.as_ref());
            ListOffsetsResult::create(
                &mut fbb,
                &ListOffsetsResultArgs {
                    topic: Some(topic),
                    partition: *partition,
                    error,
                    offset,
                    timestamp_ms,
                },
            )
        })
        .collect();
    let results = fbb.create_vector(&results);
    let root = ListOffsetsResponse::create(
        &mut fbb,
        &ListOffsetsResponseArgs {
            results: Some(results),
        },
    );
    fbb.finish(root, None);
    Ok(req.reply(fbb.finished_data(), Vec::new()))
}

async fn scatter_lookup(broker: &Broker, items: Vec<(usize, (String, u32, i64))>) -> Vec<Found> {
    crate::broker::scatter(broker, items, lookup, Err).await
}
