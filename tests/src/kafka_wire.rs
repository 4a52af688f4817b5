//! A minimal blocking Kafka protocol connection for tests that need requests no
//! client library sends on purpose: repeated sequence numbers, stale epochs, unknown
//! apis.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// Largest response a test reads.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

pub struct KafkaWire {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl KafkaWire {
    pub fn connect(addr: &str) -> KafkaWire {
        let stream = TcpStream::connect(addr).expect("connect to the Kafka listener");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set timeout");
        KafkaWire {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Sends raw request bytes (after the size prefix) and returns the response's
    /// bytes after the size prefix.
    pub fn round_trip_raw(&mut self, request: &[u8]) -> std::io::Result<Vec<u8>> {
        self.send_raw(request)?;
        self.read_raw()
    }

    pub fn send_raw(&mut self, request: &[u8]) -> std::io::Result<()> {
        let mut frame = (request.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(request);
        self.stream.write_all(&frame)
    }

    /// Writes `bytes` as they are, size prefix included.
    pub fn send_raw_unframed(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn read_raw(&mut self) -> std::io::Result<Vec<u8>> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size) as usize;
        assert!(size <= RESPONSE_BYTES_MAX, "response of {size} bytes");
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body)?;
        Ok(body)
    }

    /// The encoded request (header and body), without the size prefix.
    pub fn encode<Req>(&mut self, api: ApiKey, version: i16, req: &Req) -> Vec<u8>
    where
        Req: Encodable + HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("strata-tests"));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, Req::header_version(version))
            .expect("encode request header");
        req.encode(&mut buf, version).expect("encode request");
        buf.to_vec()
    }

    /// Sends `req` as `api` at `version` and decodes the response.
    pub fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        let bytes = self.encode(api, version, req);
        let response = self.round_trip_raw(&bytes).expect("response");
        let mut buf = Bytes::from(response);
        let header = ResponseHeader::decode(&mut buf, Resp::header_version(version))
            .expect("decode response header");
        assert_eq!(header.correlation_id, correlation_id);
        Resp::decode(&mut buf, version).expect("decode response body")
    }

    /// Produces one record `value` to `topic`-`partition` with `acks` and
    /// `timeout_ms` as Produce `version`; the partition's answer and the response's
    /// node endpoints (KIP-951).
    pub fn produce_one(
        &mut self,
        topic: &str,
        partition: i32,
        value: &[u8],
        acks: i16,
        timeout_ms: i32,
        version: i16,
    ) -> (
        kafka_protocol::messages::produce_response::PartitionProduceResponse,
        Vec<kafka_protocol::messages::produce_response::NodeEndpoint>,
    ) {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut b = strata_schema::KafkaBatchBuilder::new();
        b.push(now_ms, None, Some(value), &[]);
        let mut part = PartitionProduceData::default();
        part.index = partition;
        part.records = Some(Bytes::from(b.build()));
        let mut t = TopicProduceData::default();
        t.name = TopicName(StrBytes::from_string(topic.to_owned()));
        t.partition_data.push(part);
        let mut req = ProduceRequest::default();
        req.acks = acks;
        req.timeout_ms = timeout_ms;
        req.topic_data.push(t);
        let mut resp: ProduceResponse = self.call(ApiKey::Produce, version, &req);
        let p = resp.responses.remove(0).partition_responses.remove(0);
        (p, resp.node_endpoints)
    }
}
