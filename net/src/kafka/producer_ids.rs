//! InitProducerId: producer ids and epochs for idempotent producers, handed out by
//! the metadata shard and never repeated, restarts and crashes included (see
//! `crate::producer_id_blocks`).
//!
//! Transactions are not supported. A request with a transactional id gets
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED: the code that both librdkafka and the
//! Java client treat as fatal, so `init_transactions()` / `initTransactions()` fail
//! at once instead of retrying until they time out (COORDINATOR_NOT_AVAILABLE would
//! be retried). The response has no message field; the broker logs the reason.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::dispatch::call;
use super::errors::{kafka_error, KafkaCode};
use super::{Ctx, ServedApi};
use crate::response::Response;

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::InitProducerId, 0, 5)];

/// Answers a request of one of [`APIS`].
pub(crate) async fn serve(ctx: &Ctx, body: Bytes) -> Response {
    match ctx.api {
        ApiKey::InitProducerId => call!(ctx, body, init_producer_id),
        _ => super::dispatch::unsupported(ctx.correlation_id, KafkaCode::UnsupportedVersion),
    }
}

/// What a request asks for: `Ok(existing id and epoch, if any)`, or a refusal with
/// its reason.
fn plan(req: &InitProducerIdRequest) -> Result<Option<(i64, i16)>, (KafkaCode, String)> {
    if let Some(tid) = &req.transactional_id {
        if tid.0.is_empty() {
            return Err((
                KafkaCode::InvalidRequest,
                "an empty transactional id; leave it out (null) for an idempotent producer"
                    .to_owned(),
            ));
        }
        return Err((
            KafkaCode::TransactionalIdAuthorizationFailed,
            format!(
                "transactional id {:?}: transactions are not supported by this broker; use an idempotent producer without transactional.id",
                tid.0.as_str()
            ),
        ));
    }
    match (req.producer_id.0, req.producer_epoch) {
        (-1, -1) => Ok(None),
        (id, epoch) if id >= 0 && epoch >= 0 => Ok(Some((id, epoch))),
        (id, epoch) => Err((
            KafkaCode::InvalidRequest,
            format!(
                "producer id {id} with epoch {epoch}: give both (to bump the epoch) or neither"
            ),
        )),
    }
}

pub(crate) async fn init_producer_id(
    ctx: &Ctx,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let existing = match plan(&req) {
        Ok(existing) => existing,
        Err((code, why)) => {
            tracing::info!(client = %ctx.client_id, peer = %ctx.peer, error = ?code, "InitProducerId refused: {why}");
            return response(Err(code.code()));
        }
    };
    match crate::producer_id_blocks::init_producer(&ctx.broker, existing).await {
        Ok(id_and_epoch) => response(Ok(id_and_epoch)),
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot hand out a producer id");
            response(Err(kafka_error(&e).0))
        }
    }
}

/// The answer: a producer id and epoch, or an error code. The v6+ ongoing
/// transaction fields keep their defaults (-1), which every version allows.
fn response(answer: Result<(i64, i16), i16>) -> InitProducerIdResponse {
    let mut out = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match answer {
        Ok((id, epoch)) => {
            out.producer_id = ProducerId(id);
            out.producer_epoch = epoch;
        }
        Err(code) => out.error_code = code,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;
    use kafka_protocol::messages::TransactionalId;
    use kafka_protocol::protocol::StrBytes;

    fn req(tid: Option<&'static str>, id: i64, epoch: i16) -> InitProducerIdRequest {
        InitProducerIdRequest::default()
            .with_transactional_id(tid.map(|t| TransactionalId(StrBytes::from_static_str(t))))
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
    }

    #[test]
    fn responses_encode_at_every_served_version() {
        for version in APIS[0].min_version..=APIS[0].max_version {
            assert_encodes(&response(Ok((4_000, 3))), version);
            let refused = KafkaCode::TransactionalIdAuthorizationFailed.code();
            assert_encodes(&response(Err(refused)), version);
        }
    }

    #[test]
    fn idempotent_producers_get_ids_and_transactions_fail_fast() {
        assert_eq!(plan(&req(None, -1, -1)), Ok(None));
        assert_eq!(plan(&req(None, 7, 2)), Ok(Some((7, 2))));
        assert_eq!(
            plan(&req(None, 7, -1)).unwrap_err().0,
            KafkaCode::InvalidRequest
        );
        let (code, why) = plan(&req(Some("tx-1"), -1, -1)).unwrap_err();
        assert_eq!(code, KafkaCode::TransactionalIdAuthorizationFailed);
        assert!(why.contains("transactions are not supported"), "{why}");
        assert_eq!(
            plan(&req(Some(""), -1, -1)).unwrap_err().0,
            KafkaCode::InvalidRequest
        );
    }
}
