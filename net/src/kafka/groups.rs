//! (being written) Kafka groups apis.

use bytes::Bytes;

use super::errors::KafkaCode;
use super::{Ctx, ServedApi};
use crate::response::Response;

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[];

/// Answers a request of one of [`APIS`].
pub(crate) async fn serve(ctx: &Ctx, _body: Bytes) -> Response {
    super::dispatch::unsupported(ctx.correlation_id, KafkaCode::UnsupportedVersion)
}
