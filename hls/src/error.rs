//! The error type of this crate.

/// What went wrong while muxing or parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HlsError {
    /// The FLV tag or codec data is malformed.
    #[error("bad input: {0}")]
    Flv(#[from] videopick_flv::FlvError),
    /// A coded frame is malformed (e.g. a NAL unit length past the end of the frame).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What structure.
        what: &'static str,
        /// How.
        detail: String,
    },
    /// A codec that MPEG-TS/HLS output does not carry here (the track is skipped).
    #[error("unsupported codec for MPEG-TS: {0}")]
    UnsupportedCodec(String),
    /// A playlist that cannot be parsed.
    #[error("playlist line {line}: {detail}")]
    Playlist {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

impl HlsError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> HlsError {
        HlsError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

/// `Result` with [`HlsError`].
pub type Result<T> = std::result::Result<T, HlsError>;
