//! Why a transport did not open or stopped: one typed answer for every driver, so that a
//! decision such as "do not fall back to WebSocket when the server's certificate was refused"
//! is a match on a variant, not a search in a message.

use std::time::Duration;

/// Why a connection attempt failed or an open transport ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The server's certificate was refused (wrong pinned hash, unknown CA, expired, …): the
    /// server is not who the address says, so no other transport to it is tried.
    #[error("server certificate refused: {0}")]
    Certificate(String),
    /// The server answered the handshake with a refusal (HTTP status, or the WebTransport
    /// CONNECT rejected: `status` 0 when no status was given).
    #[error("refused by the server (HTTP {status}){}", fmt_reason(reason))]
    Refused {
        /// HTTP status of the refusal (0: not told).
        status: u16,
        /// What the server said, if anything.
        reason: String,
    },
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer or the network closed the transport.
    #[error("closed: {0}")]
    Closed(String),
    /// The server closed the transport with an application close code (a WebSocket close
    /// frame's code, a WebTransport application error code): the session reads it
    /// ([`Session::handle_closed`](crate::Session::handle_closed)), as some end it for good.
    #[error("closed by the server (code {code}){}", fmt_reason(reason))]
    ClosedByServer {
        /// The close code.
        code: u32,
        /// What the server said, if anything.
        reason: String,
    },
    /// The address could not be reached or resolved (connection refused, no route, DNS).
    #[error("unreachable: {0}")]
    Io(String),
    /// The peer broke the protocol (a WebSocket or QUIC error, an impossible frame).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The address or configuration itself is unusable.
    #[error("bad address or configuration: {0}")]
    Config(String),
}

impl TransportError {
    /// True when the server's identity was refused: the driver does not fall back then.
    pub fn is_certificate(&self) -> bool {
        matches!(self, Self::Certificate(_))
    }
}

fn fmt_reason(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_happened() {
        let refused = TransportError::Refused {
            status: 429,
            reason: "too many connections from your address".into(),
        };
        assert_eq!(
            refused.to_string(),
            "refused by the server (HTTP 429): too many connections from your address"
        );
        assert!(TransportError::Certificate("x".into()).is_certificate());
        assert!(!refused.is_certificate());
    }
}
