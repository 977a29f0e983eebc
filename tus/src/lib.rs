//! tus 1.0.0 resumable uploads for VideoPick.
//!
//! This first layer is the protocol's vocabulary, sans-IO: strict, bounded parsers for
//! every tus request header (`Tus-Resumable`, `Upload-Offset`/`Upload-Length`,
//! `Upload-Defer-Length`, `Upload-Metadata`, `Upload-Concat`, `Upload-Checksum`) that
//! name the HTTP status the protocol prescribes on rejection, plus the `Upload-Expires`
//! date. [`store::FileStore`] keeps uploads on the `storage` crate, advertising only
//! durably recorded offsets; the hyper service builds on both.
//!
//! ```
//! use videopick_tus::headers::{Checksum, ChecksumAlgorithm, Concat, Metadata, check_version, parse_u64};
//!
//! check_version(Some("1.0.0"))?;
//! assert_eq!(parse_u64("Upload-Length", "5368709120")?, 5 << 30);
//!
//! let meta = Metadata::parse("filename bW92aWUubXA0,is_public", 4096)?;
//! assert_eq!(meta.get_str("filename"), Some("movie.mp4"));
//!
//! assert_eq!(Concat::parse("final;/files/a /files/b")?, Concat::Final(vec!["/files/a".into(), "/files/b".into()]));
//! let sum = Checksum::parse("sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=")?;
//! assert_eq!(sum.algorithm, ChecksumAlgorithm::Sha1);
//!
//! // A bad header says which status to answer with.
//! assert_eq!(parse_u64("Upload-Offset", "-1").unwrap_err().status(), 400);
//! assert_eq!(check_version(None).unwrap_err().status(), 412);
//! # Ok::<(), videopick_tus::headers::HeaderError>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod base64;
pub mod checksum;
pub mod core;
#[cfg(feature = "server")]
pub mod direct;
pub mod headers;
#[cfg(feature = "server")]
pub mod hooks;
#[cfg(feature = "server")]
pub mod service;
pub mod store;

pub use headers::{Checksum, ChecksumAlgorithm, Concat, HeaderError, Metadata, TUS_VERSION};
pub use store::{
    ConcatRole, FileStore, StoreError, Upload, UploadInfo, UploadWriter, new_upload_id,
};
