//! Sends each request to the file of its api family, after checking that the api
//! and version are served.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use super::codec::{encode_response, KafkaFrame};
use super::errors::KafkaCode;
use super::{
    admin, api_versions, describe_quorum, describe_topic_partitions, fetch, groups, list_offsets,
    log_dirs, metadata, produce, producer_ids, ServedApi,
};
use crate::broker::Broker;
use crate::response::Response;

/// What every handler knows about its request.
pub(crate) struct Ctx {
    pub broker: Rc<Broker>,
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// The client's `client.id` ("" when none).
    pub client_id: String,
    /// The client's IP address ("" when unknown).
    pub peer: Rc<str>,
}

/// Decodes the body as the handler's request type, runs the handler, encodes its
/// response: `call!(ctx, body, handler)` with `async fn handler(&Ctx, Req) -> Resp`.
macro_rules! call {
    ($ctx:expr, $body:expr, $handler:path) => {{
        let ctx: &$crate::kafka::Ctx = $ctx;
        match $crate::kafka::codec::decode_body($body, ctx.version) {
            Ok(req) => {
                let resp = $handler(ctx, req).await;
                $crate::kafka::dispatch::reply(ctx, &resp)
            }
            Err(e) => $crate::kafka::dispatch::undecodable(ctx, &e),
        }
    }};
}
pub(crate) use call;

/// Each family's table of served apis.
const FAMILIES: [&[ServedApi]; 11] = [
    api_versions::APIS,
    metadata::APIS,
    produce::APIS,
    fetch::APIS,
    list_offsets::APIS,
    groups::APIS,
    admin::APIS,
    producer_ids::APIS,
    describe_quorum::APIS,
    describe_topic_partitions::APIS,
    log_dirs::APIS,
];

/// Every served api (no allocation: it is looked at for every request).
pub(crate) fn served_apis() -> impl Iterator<Item = &'static ServedApi> {
    FAMILIES.into_iter().flatten()
}

/// The encoded reply to `ctx`'s request.
pub(crate) fn reply<T>(ctx: &Ctx, body: &T) -> Response
where
    T: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
{
    encode_response(ctx.correlation_id, ctx.version, body).unwrap_or_else(|e| {
        tracing::error!(api = ?ctx.api, version = ctx.version, error = %e, "response does not encode");
        unsupported(ctx.correlation_id, KafkaCode::UnknownServerError)
    })
}

/// The reply to a request whose body does not decode.
pub(crate) fn undecodable(ctx: &Ctx, why: &str) -> Response {
    tracing::debug!(api = ?ctx.api, version = ctx.version, error = %why, "request body does not decode");
    unsupported(ctx.correlation_id, KafkaCode::InvalidRequest)
}

/// An ApiVersions v0 reply carrying `code` and the served apis: the answer to a
/// request for an api or version this broker does not serve.
pub(crate) fn unsupported(correlation_id: i32, code: KafkaCode) -> Response {
    let body = api_versions::response(served_apis(), code.code());
    encode_response(correlation_id, 0, &body).expect("an ApiVersions v0 response always encodes")
}

/// Answers one request.
pub(crate) async fn handle(broker: Rc<Broker>, frame: KafkaFrame, peer: Rc<str>) -> Response {
    let KafkaFrame {
        api,
        header,
        body,
        malformed,
    } = frame;
    let correlation_id = header.correlation_id;
    let version = header.request_api_version;
    let Some(api) = api else {
        tracing::debug!(api_key = header.request_api_key, "unknown kafka api");
        return unsupported(correlation_id, KafkaCode::UnsupportedVersion);
    };
    let served =
        served_apis().any(|s| s.key == api && (s.min_version..=s.max_version).contains(&version));
    if !served {
        tracing::debug!(?api, version, "kafka api or version not served");
        return unsupported(correlation_id, KafkaCode::UnsupportedVersion);
    }
    if let Some(why) = malformed {
        tracing::debug!(error = %why, "kafka request header does not decode");
        return unsupported(correlation_id, KafkaCode::InvalidRequest);
    }
    crate::metrics::with(|m| m.requests_total += 1);
    let ctx = Ctx {
        broker,
        api,
        version,
        correlation_id,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        peer,
    };
    serve(&ctx, body).await
}

/// Produce with acks=0 is never answered.
async fn produce_or_nothing(ctx: &Ctx, body: Bytes) -> Response {
    match super::codec::decode_body::<kafka_protocol::messages::ProduceRequest>(body, ctx.version) {
        Ok(req) => {
            let acks = req.acks;
            let resp = produce::handle(ctx, req).await;
            if acks == 0 {
                Response {
                    head: Vec::new(),
                    tail: Vec::new(),
                }
            } else {
                reply(ctx, &resp)
            }
        }
        Err(e) => undecodable(ctx, &e),
    }
}

async fn serve(ctx: &Ctx, body: Bytes) -> Response {
    match ctx.api {
        ApiKey::ApiVersions => call!(ctx, body, api_versions::handle),
        ApiKey::Metadata => call!(ctx, body, metadata::handle),
        ApiKey::Produce => produce_or_nothing(ctx, body).await,
        ApiKey::Fetch => call!(ctx, body, fetch::handle),
        ApiKey::ListOffsets => call!(ctx, body, list_offsets::handle),
        ApiKey::DescribeQuorum => describe_quorum::serve(ctx, body).await,
        ApiKey::DescribeTopicPartitions => call!(ctx, body, describe_topic_partitions::handle),
        api if log_dirs::APIS.iter().any(|a| a.key == api) => log_dirs::serve(ctx, body).await,
        api if groups::APIS.iter().any(|a| a.key == api) => groups::serve(ctx, body).await,
        api if admin::APIS.iter().any(|a| a.key == api) => admin::serve(ctx, body).await,
        api if producer_ids::APIS.iter().any(|a| a.key == api) => {
            producer_ids::serve(ctx, body).await
        }
        _ => unsupported(ctx.correlation_id, KafkaCode::UnsupportedVersion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's Kafka api table lists exactly what ApiVersions advertises.
    #[test]
    fn readme_lists_every_served_api_with_its_versions() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let section = readme
            .split("## Kafka protocol")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Kafka protocol section");
        let rows: Vec<(i16, String)> = section
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let key = cells.get(2)?.parse::<i16>().ok()?;
                Some((key, cells.get(3)?.to_string()))
            })
            .collect();
        let mut served: Vec<(i16, String)> = served_apis()
            .map(|a| (a.key as i16, format!("{}–{}", a.min_version, a.max_version)))
            .collect();
        served.sort();
        let mut listed = rows.clone();
        listed.sort();
        assert_eq!(listed, served, "README Kafka table vs served apis");
    }
}
