//! ApiVersions: the apis and versions served, the union of every family's table.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::errors::KafkaCode;
use super::{Ctx, ServedApi};

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::ApiVersions, 0, 4)];

/// The ApiVersions response listing `served`, with `error` (0 for none).
pub(crate) fn response<'a>(
    served: impl IntoIterator<Item = &'a ServedApi>,
    error: i16,
) -> ApiVersionsResponse {
    let mut out = ApiVersionsResponse::default();
    out.error_code = error;
    out.api_keys = served
        .into_iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min_version)
                .with_max_version(a.max_version)
        })
        .collect();
    out
}

pub(crate) async fn handle(ctx: &Ctx, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    let _ = ctx;
    response(super::dispatch::served_apis(), KafkaCode::None.code())
}
