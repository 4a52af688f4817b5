//! Kafka frames: the request header in front of every request, and response frames
//! (size, correlation id, header tags, body).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::response::Response;

/// A request read from the socket: its header and the body bytes after it.
pub(crate) struct KafkaFrame {
    /// `None` when the api key is not one Kafka defines.
    pub api: Option<ApiKey>,
    pub header: RequestHeader,
    pub body: Bytes,
    /// Why the header did not decode (only its fixed fields are in `header`).
    pub malformed: Option<String>,
}

/// Splits a request (the bytes after the size prefix) into header and body. Fails
/// only when not even the fixed part of the header (api key, version, correlation
/// id) is there: then there is no one to answer. A header whose rest does not
/// decode is answered with an error (the size prefix still frames the request).
pub(crate) fn decode_request(mut bytes: Bytes) -> Result<KafkaFrame, String> {
    if bytes.len() < 8 {
        return Err(format!(
            "a {}-byte request is shorter than a request header",
            bytes.len()
        ));
    }
    let api_key = i16::from_be_bytes([bytes[0], bytes[1]]);
    let version = i16::from_be_bytes([bytes[2], bytes[3]]);
    let correlation_id = i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let fixed = || {
        let mut header = RequestHeader::default();
        header.request_api_key = api_key;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header
    };
    let Ok(api) = ApiKey::try_from(api_key) else {
        // Only the fixed fields are known; whatever follows is skipped.
        return Ok(KafkaFrame {
            api: None,
            header: fixed(),
            body: Bytes::new(),
            malformed: None,
        });
    };
    let header_version = api.request_header_version(version);
    match RequestHeader::decode(&mut bytes, header_version) {
        Ok(header) => Ok(KafkaFrame {
            api: Some(api),
            header,
            body: bytes,
            malformed: None,
        }),
        Err(e) => Ok(KafkaFrame {
            api: Some(api),
            header: fixed(),
            body: Bytes::new(),
            malformed: Some(format!(
                "{api:?} v{version} request header does not decode: {e}"
            )),
        }),
    }
}

/// Decodes a request body at `version`.
pub(crate) fn decode_body<T: Decodable>(mut body: Bytes, version: i16) -> Result<T, String> {
    let out = T::decode(&mut body, version).map_err(|e| e.to_string())?;
    if body.has_remaining() {
        tracing::debug!(
            extra_bytes = body.remaining(),
            "request body longer than its message"
        );
    }
    Ok(out)
}

/// A response frame for `body` encoded at `version`.
pub(crate) fn encode_response<T: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &T,
) -> Result<Response, String> {
    let flexible_header = T::header_version(version) >= 1;
    let size = body.compute_size(version).map_err(|e| e.to_string())?;
    let mut out: Vec<u8> = Vec::with_capacity(4 + 4 + 1 + size);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&correlation_id.to_be_bytes());
    if flexible_header {
        out.extend_from_slice(&[0]); // no tagged fields
    }
    body.encode(&mut out, version).map_err(|e| e.to_string())?;
    let frame_bytes = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&frame_bytes.to_be_bytes());
    Ok(Response {
        head: out,
        tail: Vec::new(),
    })
}

/// Panics unless `message` encodes at `version` (tests of every served version).
#[cfg(test)]
pub(crate) fn assert_encodes<T: Encodable>(message: &T, version: i16) {
    let mut out = Vec::new();
    message
        .encode(&mut out, version)
        .unwrap_or_else(|e| panic!("{} v{version}: {e}", std::any::type_name::<T>()));
}
