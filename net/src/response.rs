//! A response on its way to the socket, and the request-level error reply.
//!
//! Request-level errors (an unknown api, an unsupported version, a body that does
//! not decode) are answered with a frame whose `api` is `ApiVersions` (0) whatever
//! the request's api was, and whose body is an `ApiVersionsResponse` carrying the
//! error and the list of served APIs. A client that gets api 0 back for another api
//! reads the error from it. Errors inside a decoded request go in that api's own
//! response (its `error` field or per-partition errors).

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, WIPOffset};
use strata_schema::protocol::{
    ApiRange, ApiRangeArgs, ApiVersionsResponse, ApiVersionsResponseArgs, Error, ErrorArgs,
};
use strata_schema::{frame_header, ApiKey, ErrorCode};

use crate::errors::WireError;

/// The APIs this broker serves: every native API of the schema.
pub const SERVED_APIS: [ApiKey; 18] = ApiKey::ALL;

/// One response frame: header and body in `head`, then the batches of the tail,
/// written as they are (shared with the engine's cache, not copied).
pub struct Response {
    pub head: Vec<u8>,
    pub tail: Vec<Bytes>,
}

impl Response {
    /// A frame for `api` carrying a finished flatbuffer `body` and `tail`.
    pub fn new(api: u16, version: u16, correlation_id: u32, body: &[u8], tail: Vec<Bytes>) -> Self {
        let tail_bytes = tail.iter().map(Bytes::len).sum();
        let header = frame_header(api, version, correlation_id, body.len(), tail_bytes);
        let mut head = Vec::with_capacity(strata_schema::FRAME_HEADER_BYTES + body.len());
        header.encode(&mut head);
        head.extend_from_slice(body);
        Response { head, tail }
    }
}

/// An `Error` table, or none for `ErrorCode::None`.
pub fn error_table<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    error: Option<&WireError>,
) -> Option<WIPOffset<Error<'b>>> {
    let e = error.filter(|e| e.code != ErrorCode::None)?;
    crate::metrics::count_error(e.code);
    let message = fbb.create_string(&e.message);
    Some(Error::create(
        fbb,
        &ErrorArgs {
            code: e.code as i16,
            message: Some(message),
        },
    ))
}

/// The `ApiVersionsResponse` body: the served APIs, and `error` if any.
pub fn api_versions_body(error: Option<&WireError>) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let ranges: Vec<_> = SERVED_APIS
        .iter()
        .map(|k| {
            let (min, max) = k.versions();
            ApiRange::create(
                &mut fbb,
                &ApiRangeArgs {
                    api: *k as u16,
                    min_version: min,
                    max_version: max,
                },
            )
        })
        .collect();
    let apis = fbb.create_vector(&ranges);
    let error = error_table(&mut fbb, error);
    let broker_version = fbb.create_string(concat!("strata ", env!("CARGO_PKG_VERSION")));
    let root = ApiVersionsResponse::create(
        &mut fbb,
        &ApiVersionsResponseArgs {
            error,
            apis: Some(apis),
            broker_version: Some(broker_version),
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

/// The request-level error reply (see the module doc).
pub fn request_error(correlation_id: u32, error: WireError) -> Response {
    let body = api_versions_body(Some(&error));
    Response::new(
        ApiKey::ApiVersions as u16,
        0,
        correlation_id,
        &body,
        Vec::new(),
    )
}
