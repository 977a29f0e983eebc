//! Validated identifiers whose paths cannot escape the storage root.
//!
//! Every id that names a file or directory is one of the types here. They can only be built
//! through validation, so a path derived from one is always a single, ordinary path component:
//! ASCII letters, digits, `-`, `_` and `.`, not starting with `.`, without `..`, at most
//! [`MAX_ID_LEN`] bytes.

use std::fmt;
use std::str::FromStr;

/// Longest accepted id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Why an id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which id type.
        kind: &'static str,
    },
    /// The id is longer than [`MAX_ID_LEN`].
    #[error("{kind} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Which id type.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The id contains a byte that is not allowed (a separator, NUL, a control or non-ASCII
    /// character, …).
    #[error(
        "{kind} contains {found:?} at byte {at}; only ASCII letters, digits, '-', '_' and '.' are allowed"
    )]
    BadChar {
        /// Which id type.
        kind: &'static str,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// The id starts with `.` (hidden names, `.` and `..` are never ids).
    #[error("{kind} must not start with '.'")]
    LeadingDot {
        /// Which id type.
        kind: &'static str,
    },
    /// The id contains `..`.
    #[error("{kind} must not contain \"..\"")]
    DotDot {
        /// Which id type.
        kind: &'static str,
    },
}

/// Validate `s` as an id of type `kind`.
///
/// This is the single rule behind every id type; it is public so other crates can check a
/// string before they build an id from it.
pub fn validate(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            len: s.len(),
            max: MAX_ID_LEN,
        });
    }
    for (at, c) in s.char_indices() {
        if !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
            return Err(IdError::BadChar { kind, found: c, at });
        }
    }
    if s.starts_with('.') {
        return Err(IdError::LeadingDot { kind });
    }
    if s.contains("..") {
        return Err(IdError::DotDot { kind });
    }
    Ok(())
}

/// Common behaviour of the id types.
pub trait Id: AsRef<str> + fmt::Display {
    /// Human name of the id type, used in errors.
    const KIND: &'static str;
    /// The id as a string slice (always a valid single path component).
    fn as_str(&self) -> &str {
        self.as_ref()
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validate and build the id.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate($kind, &s)?;
                Ok(Self(s))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Id for $name {
            const KIND: &'static str = $kind;
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

id_type!(
    /// Id of a resumable upload (a file under `uploads/`).
    UploadId,
    "upload id"
);
id_type!(
    /// Id of a video in the catalog (its renditions under `vod/`, images under `thumbnails/`).
    VideoId,
    "video id"
);
id_type!(
    /// Name of a live stream (the `<stream>` of `rtmp://host/<app>/<stream>`), used to group
    /// its recordings.
    StreamKey,
    "stream key"
);
id_type!(
    /// Id of one recording of a live stream (a directory under `recordings/`).
    RecordingId,
    "recording id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for s in ["a", "abc-DEF_123", "v1.2", "x".repeat(MAX_ID_LEN).as_str()] {
            assert!(UploadId::new(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_each_bad_form_with_its_reason() {
        assert_eq!(VideoId::new(""), Err(IdError::Empty { kind: "video id" }));
        assert!(matches!(
            VideoId::new("x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong { len: 129, .. })
        ));
        assert!(matches!(
            VideoId::new("a/b"),
            Err(IdError::BadChar {
                found: '/',
                at: 1,
                ..
            })
        ));
        assert!(matches!(
            VideoId::new("a\\b"),
            Err(IdError::BadChar { found: '\\', .. })
        ));
        assert!(matches!(
            VideoId::new("a\0b"),
            Err(IdError::BadChar { found: '\0', .. })
        ));
        assert!(matches!(
            VideoId::new("caf\u{e9}"),
            Err(IdError::BadChar {
                found: '\u{e9}',
                at: 3,
                ..
            })
        ));
        assert!(matches!(
            VideoId::new(".."),
            Err(IdError::LeadingDot { .. })
        ));
        assert!(matches!(VideoId::new("."), Err(IdError::LeadingDot { .. })));
        assert!(matches!(VideoId::new("a..b"), Err(IdError::DotDot { .. })));
        assert!(matches!(
            VideoId::new("a b"),
            Err(IdError::BadChar { found: ' ', .. })
        ));
    }

    #[test]
    fn error_messages_name_the_kind() {
        let e = StreamKey::new("a/b").unwrap_err();
        assert!(e.to_string().starts_with("stream key contains '/'"), "{e}");
    }
}
