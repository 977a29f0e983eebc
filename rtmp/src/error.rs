//! The error type of the RTMP core.

use videopick_flv::FlvError;

/// Why an RTMP session or codec failed. Every variant ends the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// The peer asked for an RTMP version other than 3.
    #[error("unsupported RTMP version {0} (RTMPE/encrypted RTMP is not supported)")]
    UnsupportedVersion(u8),
    /// The peer's handshake is invalid.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// A value from the peer exceeds a configured limit.
    #[error("{what} of {value} exceeds the limit of {max}")]
    LimitExceeded {
        /// What was too large.
        what: &'static str,
        /// The value received.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The peer broke the chunk stream or message rules.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// An AMF or FLV body could not be parsed.
    #[error("bad message body: {0}")]
    Body(#[from] FlvError),
    /// The peer stopped answering (`what` timed out).
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The application used the session wrongly (e.g. answered a request twice).
    #[error("invalid use of the session: {0}")]
    Misuse(String),
}

impl RtmpError {
    pub(crate) fn protocol(msg: impl Into<String>) -> Self {
        RtmpError::Protocol(msg.into())
    }
}

/// Result alias of this crate.
pub type Result<T, E = RtmpError> = std::result::Result<T, E>;
