//! Request handlers of the native protocol: one file per api family. `handle` checks
//! the api and version, verifies the flatbuffer body and calls the handler.

mod admin;
pub(crate) mod fetch;
pub(crate) mod groups;
pub(crate) mod list_offsets;
mod metadata;
pub(crate) mod produce;
mod producer_ids;

use std::rc::Rc;

use flatbuffers::{Follow, Verifiable};
use strata_schema::{ApiKey, ErrorCode, FrameHeader};

use crate::broker::Broker;
use crate::connection::RequestFrame;
use crate::errors::WireError;
use crate::response::{api_versions_body, request_error, Response, SERVED_APIS};

/// A request's header and flatbuffer body.
pub struct Request<'a> {
    pub header: FrameHeader,
    pub body: &'a [u8],
    /// The client's IP address ("" when unknown).
    pub peer: &'a str,
}

impl Request<'_> {
    /// A reply to this request with a finished flatbuffer body.
    pub fn reply(&self, body: &[u8], tail: Vec<bytes::Bytes>) -> Response {
        Response::new(
            self.header.api,
            self.header.version,
            self.header.correlation_id,
            body,
            tail,
        )
    }
}

/// Verifies and returns the root table of a request body.
pub fn decode<'a, T>(body: &'a [u8], api: ApiKey) -> Result<T::Inner, WireError>
where
    T: Follow<'a> + Verifiable + 'a,
{
    flatbuffers::root::<T>(body).map_err(|e| {
        WireError::new(
            ErrorCode::InvalidRequest,
            format!("{} request body does not decode: {e}", api.name()),
        )
    })
}

/// Answers one request.
pub async fn handle(broker: Rc<Broker>, frame: RequestFrame, peer: Rc<str>) -> Response {
    let RequestFrame {
        header,
        body,
        tail,
        malformed,
    } = frame;
    if let Some(why) = malformed {
        return request_error(
            header.correlation_id,
            WireError::new(
                ErrorCode::InvalidRequest,
                format!("the request's header does not add up ({why}); it was skipped"),
            ),
        );
    }
    let req = Request {
        header,
        body: &body,
        peer: &peer,
    };
    let Some(api) = ApiKey::from_u16(header.api).filter(|k| SERVED_APIS.contains(k)) else {
        return request_error(
            header.correlation_id,
            WireError::new(
                ErrorCode::UnknownApi,
                format!(
                    "api {} is not served by this broker; see the list of served apis",
                    header.api
                ),
            ),
        );
    };
    let (min, max) = api.versions();
    if header.version < min || header.version > max {
        return request_error(
            header.correlation_id,
            WireError::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "{} version {} is not served; versions {min} to {max} are",
                    api.name(),
                    header.version
                ),
            ),
        );
    }
    let started = std::time::Instant::now();
    crate::metrics::with(|m| m.requests_total += 1);
    let result = match api {
        ApiKey::ApiVersions => Ok(req.reply(&api_versions_body(None), Vec::new())),
        ApiKey::Metadata => metadata::handle(&broker, &req).await,
        ApiKey::CreateTopics => admin::create_topics(&broker, &req).await,
        ApiKey::DeleteTopics => admin::delete_topics(&broker, &req).await,
        ApiKey::CreatePartitions => admin::create_partitions(&broker, &req).await,
        ApiKey::AlterConfigs => admin::alter_configs(&broker, &req).await,
        ApiKey::Produce => produce::handle(&broker, &req, tail).await,
        ApiKey::Fetch => fetch::handle(&broker, &req).await,
        ApiKey::ListOffsets => list_offsets::handle(&broker, &req).await,
        ApiKey::InitProducerId => producer_ids::handle(&broker, &req).await,
        ApiKey::JoinGroup => groups::join(&broker, &req).await,
        ApiKey::Heartbeat => groups::heartbeat(&broker, &req).await,
        ApiKey::LeaveGroup => groups::leave(&broker, &req).await,
        ApiKey::OffsetCommit => groups::commit(&broker, &req).await,
        ApiKey::OffsetFetch => groups::offset_fetch(&broker, &req).await,
        ApiKey::DescribeGroup => groups::describe(&broker, &req).await,
        ApiKey::ListGroups => groups::list(&broker, &req).await,
        ApiKey::DeleteGroup => groups::delete(&broker, &req).await,
    };
    match api {
        ApiKey::Produce => {
            crate::metrics::record_latency(|m| &mut m.produce_latency_us, started.elapsed())
        }
        ApiKey::Fetch => {
            crate::metrics::record_latency(|m| &mut m.fetch_latency_us, started.elapsed())
        }
        _ => {}
    }
    result.unwrap_or_else(|e| request_error(header.correlation_id, e))
}
