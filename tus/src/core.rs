//! The request → decision core: what a PATCH asks for, checked against the upload's state
//! and the service's limits before any byte of its body is read — no I/O, so every rule is
//! a plain function call to test — and the named outcome of streaming the body.
//!
//! ```
//! use videopick_tus::core::{PatchPlan, decide_patch};
//!
//! let headers = [
//!     ("content-type", "application/offset+octet-stream"),
//!     ("upload-offset", "1024"),
//!     ("upload-checksum", "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
//! ];
//! let get = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
//! let plan: PatchPlan = decide_patch(get, false, 1 << 30).unwrap();
//! assert_eq!(plan.offset, 1024);
//! assert!(plan.checksum.is_some() && !plan.checksum_trailer);
//!
//! // A final (concatenated) upload cannot be patched: 403 before the body is touched.
//! assert_eq!(decide_patch(get, true, 1 << 30).unwrap_err().status, 403);
//! ```

use crate::headers::{Checksum, HeaderError, parse_u64};
use crate::store::StoreError;

/// Why a request is refused, before its body is read: the HTTP status and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Message for the client.
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: &str) -> Refusal {
        Refusal {
            status,
            message: format!("{message}\n"),
        }
    }
}

impl From<HeaderError> for Refusal {
    fn from(e: HeaderError) -> Refusal {
        Refusal {
            status: e.status(),
            message: format!("{e}\n"),
        }
    }
}

/// What an accepted PATCH will do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatchPlan {
    /// Where the body goes (`Upload-Offset`; must equal the stored offset).
    pub offset: u64,
    /// A length declared with this PATCH (creation-defer-length).
    pub declare_length: Option<u64>,
    /// The checksum the body must have (`Upload-Checksum`).
    pub checksum: Option<Checksum>,
    /// The checksum comes as a trailer after the body (checksum-trailer): hash with every
    /// supported algorithm while it streams.
    pub checksum_trailer: bool,
}

/// Decide a PATCH from its headers (`header` looks one up by lower-case name), whether the
/// upload is a final concatenation, and the largest size allowed.
pub fn decide_patch<'h>(
    header: impl Fn(&str) -> Option<&'h str>,
    final_upload: bool,
    max_size: u64,
) -> Result<PatchPlan, Refusal> {
    if final_upload {
        return Err(Refusal::new(403, "a final upload cannot be patched"));
    }
    if header("content-type").is_none_or(|c| c.trim() != "application/offset+octet-stream") {
        return Err(Refusal::new(
            415,
            "Content-Type must be application/offset+octet-stream",
        ));
    }
    let offset = match header("upload-offset") {
        Some(v) => parse_u64("Upload-Offset", v)?,
        None => return Err(Refusal::new(400, "Upload-Offset is required")),
    };
    let declare_length = match header("upload-length") {
        Some(v) => {
            let l = parse_u64("Upload-Length", v)?;
            if l > max_size {
                return Err(Refusal::new(413, "Upload-Length over Tus-Max-Size"));
            }
            Some(l)
        }
        None => None,
    };
    let checksum = header("upload-checksum").map(Checksum::parse).transpose()?;
    let checksum_trailer = checksum.is_none()
        && header("trailer").is_some_and(|t| t.to_ascii_lowercase().contains("upload-checksum"));
    Ok(PatchPlan {
        offset,
        declare_length,
        checksum,
        checksum_trailer,
    })
}

/// The plan for the body of a creation request (creation-with-upload): it starts at offset
/// 0, with the checksum headers of a PATCH.
pub fn creation_body_plan<'h>(
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<PatchPlan, Refusal> {
    let checksum = header("upload-checksum").map(Checksum::parse).transpose()?;
    let checksum_trailer = checksum.is_none()
        && header("trailer").is_some_and(|t| t.to_ascii_lowercase().contains("upload-checksum"));
    Ok(PatchPlan {
        offset: 0,
        declare_length: None,
        checksum,
        checksum_trailer,
    })
}

/// How a PATCH body ended, once what arrived is durable. Every variant carries the durable
/// offset, which is what the client is told.
#[derive(Debug)]
#[non_exhaustive]
pub enum PatchOutcome {
    /// Every byte of the body is stored.
    Stored {
        /// The new offset.
        offset: u64,
    },
    /// The body's checksum did not match: the chunk was discarded, the offset stays.
    ChecksumMismatch {
        /// The offset, as before the PATCH.
        offset: u64,
    },
    /// Storing failed (a full disk …) after part of the body was stored.
    StoreFailed {
        /// What is durable.
        offset: u64,
        /// Why.
        error: StoreError,
    },
    /// The client's body broke off (a dropped connection, a taken-over upload); what
    /// arrived is kept.
    BodyBroken {
        /// What is durable.
        offset: u64,
        /// What the transport said.
        reason: String,
    },
}

impl PatchOutcome {
    /// The durable offset after the PATCH.
    pub fn offset(&self) -> u64 {
        match self {
            PatchOutcome::Stored { offset }
            | PatchOutcome::ChecksumMismatch { offset }
            | PatchOutcome::StoreFailed { offset, .. }
            | PatchOutcome::BodyBroken { offset, .. } => *offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(headers: &[(&str, &str)], final_upload: bool) -> Result<PatchPlan, Refusal> {
        let get = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        decide_patch(get, final_upload, 1000)
    }

    const CT: (&str, &str) = ("content-type", "application/offset+octet-stream");

    #[test]
    fn patch_rules() {
        assert_eq!(
            plan(&[("upload-offset", "0")], false).unwrap_err().status,
            415
        );
        assert_eq!(plan(&[CT], false).unwrap_err().status, 400);
        assert_eq!(
            plan(&[CT, ("upload-offset", "-1")], false)
                .unwrap_err()
                .status,
            400
        );
        let p = plan(
            &[CT, ("upload-offset", "5"), ("upload-length", "100")],
            false,
        )
        .unwrap();
        assert_eq!((p.offset, p.declare_length), (5, Some(100)));
        let too_big = plan(
            &[CT, ("upload-offset", "0"), ("upload-length", "1001")],
            false,
        );
        assert_eq!(too_big.unwrap_err().status, 413);
        let p = plan(
            &[CT, ("upload-offset", "0"), ("trailer", "Upload-Checksum")],
            false,
        );
        assert!(p.unwrap().checksum_trailer);
        let bad = plan(
            &[
                CT,
                ("upload-offset", "0"),
                ("upload-checksum", "crc32 AAAA"),
            ],
            false,
        );
        assert_eq!(bad.unwrap_err().status, 400);
        assert_eq!(
            plan(&[CT, ("upload-offset", "0")], true)
                .unwrap_err()
                .status,
            403
        );
    }
}
