//! `strata cluster decommission --broker N`: removes a broker from a cluster. Its
//! replicas move to the other brokers first (the controller picks them with its
//! placement rules, racks included), then it is unregistered; the broker process may
//! be stopped after that.
//!
//! It speaks the Kafka protocol to any broker of the cluster (Kafka's UnregisterBroker,
//! which strata answers with REASSIGNMENT_IN_PROGRESS while the broker's replicas are
//! still moving), asking again until the broker is gone or the wait runs out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    RequestHeader, ResponseHeader, UnregisterBrokerRequest, UnregisterBrokerResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// Kafka's REASSIGNMENT_IN_PROGRESS.
const REASSIGNMENT_IN_PROGRESS: i16 = 60;
/// Largest response read.
const RESPONSE_BYTES_MAX: usize = 16 << 20;
/// Pause between two requests while replicas move.
const POLL_MS: u64 = 1_000;

#[derive(Args)]
pub struct DecommissionArgs {
    /// The broker to remove (its node id).
    #[arg(long)]
    pub broker: i32,
    /// A Kafka listener of the cluster (any broker but the one leaving is best).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// How long to wait for the replicas to move, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
}

/// Asks until broker `args.broker` is unregistered, printing progress.
pub fn decommission(args: &DecommissionArgs) -> anyhow::Result<()> {
    let mut conn = Connection::open(&args.bootstrap)?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let mut last_moving = usize::MAX;
    loop {
        let req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(args.broker));
        let resp: UnregisterBrokerResponse = conn.call(ApiKey::UnregisterBroker, 0, &req)?;
        let message = resp
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        match resp.error_code {
            0 => {
                println!(
                    "broker {} holds no replicas and is unregistered; it can be stopped",
                    args.broker
                );
                return Ok(());
            }
            REASSIGNMENT_IN_PROGRESS => {
                let moving = conn.reassignments_in_progress()?;
                if moving != last_moving {
                    println!("{message} ({moving} reassignments in progress)");
                    last_moving = moving;
                }
            }
            code => bail!(
                "broker {} cannot be decommissioned (error {code}): {message}",
                args.broker
            ),
        }
        if Instant::now() >= deadline {
            bail!(
                "broker {}'s replicas did not finish moving within {} s; run the command again to keep waiting",
                args.broker,
                args.timeout_s
            );
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

/// One blocking Kafka connection.
struct Connection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Connection {
    fn open(addr: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)
            .with_context(|| format!("cannot connect to the Kafka listener at {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Connection {
            stream,
            next_correlation_id: 1,
        })
    }

    fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, req: &Req) -> anyhow::Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("strata-cli"));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, Req::header_version(version))?;
        req.encode(&mut buf, version)?;
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        self.stream
            .write_all(&frame)
            .context("sending the request")?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .context("reading the response")?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > RESPONSE_BYTES_MAX {
            bail!("the broker answered with a {size}-byte response");
        }
        let mut body = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut body)
            .context("reading the response")?;
        let mut body = Bytes::from(body);
        let h = ResponseHeader::decode(&mut body, Resp::header_version(version))?;
        if h.correlation_id != correlation_id {
            bail!(
                "the broker answered another request ({} for {correlation_id})",
                h.correlation_id
            );
        }
        Resp::decode(&mut body, version).context("decoding the response")
    }

    /// How many partitions are being reassigned in the cluster.
    fn reassignments_in_progress(&mut self) -> anyhow::Result<usize> {
        let req = ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000);
        let resp: ListPartitionReassignmentsResponse =
            self.call(ApiKey::ListPartitionReassignments, 0, &req)?;
        Ok(resp.topics.iter().map(|t| t.partitions.len()).sum())
    }
}
