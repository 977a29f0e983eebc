//! The error type of every parser and encoder in this crate.

/// What went wrong while reading or writing FLV, AMF or codec data.
///
/// "Need more bytes" is never an error: streaming decoders return `Ok(None)` for it. Every
/// variant here means the input is invalid, unsupported or over a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// A complete structure ended before `what` could be read.
    #[error("truncated input: {what} needs more bytes than the structure has")]
    UnexpectedEof {
        /// What was being read.
        what: &'static str,
    },
    /// The FLV file header does not start with `FLV`.
    #[error("not an FLV stream: bad signature")]
    BadSignature,
    /// A length field exceeds a configured limit.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// An FLV tag of a type other than audio (8), video (9) or script data (18).
    #[error("unknown FLV tag type {0}")]
    UnknownTagType(u8),
    /// The tag is encrypted (filter bit set); decryption is not supported.
    #[error("encrypted FLV tags are not supported")]
    Encrypted,
    /// Well-formed input using a feature this crate does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Malformed input.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What structure is malformed.
        what: &'static str,
        /// How.
        detail: String,
    },
    /// AMF nesting deeper than the configured limit.
    #[error("AMF nesting deeper than {0} levels")]
    DepthExceeded(usize),
    /// An AMF value with more elements (counting those cloned through references) than the
    /// configured limit.
    #[error("AMF value has more than {0} elements")]
    TooManyElements(usize),
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// An AMF type marker this crate does not know.
    #[error("unknown AMF{version} type marker {marker:#04x}")]
    UnknownMarker {
        /// 0 or 3.
        version: u8,
        /// The marker byte.
        marker: u8,
    },
    /// An AMF reference to an entry that does not exist (or is still being decoded).
    #[error("AMF reference {index} does not point to a decoded {table}")]
    BadReference {
        /// Which reference table.
        table: &'static str,
        /// The index found.
        index: usize,
    },
}

impl FlvError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        FlvError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = FlvError> = std::result::Result<T, E>;
