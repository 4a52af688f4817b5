//! The client's one error type: what failed, with the broker's message when it sent one.

use std::time::Duration;

use strata_schema::{ApiKey, BatchError, ErrorCode, FrameError};

/// Everything a client call can fail with.
#[derive(thiserror::Error, Debug, Clone)]
pub enum ClientError {
    /// No broker answered at `addr`.
    #[error("cannot connect to strata broker at {addr}: {reason} (is `strata serve` running? set --brokers / STRATA_BROKERS)")]
    Connect { addr: String, reason: String },

    /// The broker answered with an error code.
    #[error("{api} failed: {} ({}){}", code.name(), *code as i16, fmt_message(message))]
    Broker {
        api: &'static str,
        code: ErrorCode,
        message: String,
    },

    /// No response within the request timeout.
    #[error("{api} timed out after {} ms without a response from {addr}", timeout.as_millis())]
    Timeout {
        api: &'static str,
        addr: String,
        timeout: Duration,
    },

    /// The connection was lost (or closed) before the response arrived.
    #[error("connection to {addr} lost: {reason}")]
    Disconnected { addr: String, reason: String },

    /// The broker sent bytes this client cannot decode.
    #[error("bad response from broker: {0}")]
    Protocol(String),

    /// The broker's framing was lost.
    #[error("bad frame from broker: {0}")]
    Frame(#[from] FrameError),

    /// A fetched batch is corrupt, or a produced one cannot be built.
    #[error("record batch: {0}")]
    Batch(#[from] BatchError),

    /// A configuration value or argument is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The client (producer, consumer) was closed.
    #[error("client is closed")]
    Closed,

    /// The producer's buffer stayed full for longer than `max_block`.
    #[error("producer buffer of {buffer_bytes} bytes stayed full for {} ms; the broker is slower than the producer", waited.as_millis())]
    BufferFull {
        buffer_bytes: usize,
        waited: Duration,
    },
}

fn fmt_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl ClientError {
    /// The broker's error for `api`, or `Ok` for code 0.
    pub(crate) fn check(api: ApiKey, code: i16, message: Option<&str>) -> Result<(), ClientError> {
        let code = ErrorCode::from_i16(code);
        if code == ErrorCode::None {
            return Ok(());
        }
        Err(ClientError::Broker {
            api: api.name(),
            code,
            message: message.unwrap_or_default().to_owned(),
        })
    }

    /// The broker's error code, if this error came from one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether sending the same request again may succeed: transient broker errors, lost
    /// connections and timeouts.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => {
                code.is_retriable() || *code == ErrorCode::BrokerShuttingDown
            }
            ClientError::Timeout { .. }
            | ClientError::Disconnected { .. }
            | ClientError::Connect { .. } => true,
            _ => false,
        }
    }

    /// Whether the client's cached metadata may be stale (refresh it before retrying).
    pub fn is_stale_metadata(&self) -> bool {
        matches!(
            self.code(),
            Some(ErrorCode::UnknownTopic | ErrorCode::UnknownPartition)
        )
    }

    /// Whether the partition's leader may have moved (or its broker failed): the
    /// request is retried on the leader a fresh Metadata names.
    pub fn is_leader_moved(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => matches!(
                code,
                ErrorCode::NotLeaderOrFollower
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::UnknownLeaderEpoch
                    | ErrorCode::BrokerShuttingDown
            ),
            ClientError::Timeout { .. }
            | ClientError::Disconnected { .. }
            | ClientError::Connect { .. } => true,
            _ => false,
        }
    }
}

/// Result with [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_map_to_typed_errors_with_message() {
        assert!(ClientError::check(ApiKey::Produce, 0, Some("ignored")).is_ok());
        let e =
            ClientError::check(ApiKey::Produce, 3, Some("topic `t` does not exist")).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
        assert!(e.is_stale_metadata());
        assert!(!e.is_retriable());
        let text = e.to_string();
        assert!(text.contains("Produce"), "{text}");
        assert!(text.contains("UNKNOWN_TOPIC"), "{text}");
        assert!(text.contains("topic `t` does not exist"), "{text}");

        let e = ClientError::check(ApiKey::Fetch, 11, None).unwrap_err();
        assert!(e.is_retriable());
        assert_eq!(e.to_string(), "Fetch failed: REQUEST_TIMED_OUT (11)");
        // Codes from a newer broker still map, to Unknown.
        let e = ClientError::check(ApiKey::Fetch, 999, Some("new")).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Unknown));
    }

    #[test]
    fn connect_error_names_address_and_hint() {
        let e = ClientError::Connect {
            addr: "127.0.0.1:9250".into(),
            reason: "connection refused".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("127.0.0.1:9250") && text.contains("STRATA_BROKERS"),
            "{text}"
        );
        assert!(e.is_retriable());
    }
}
