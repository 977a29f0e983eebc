//! The tus 1.0.0 request headers, parsed strictly and with bounds: numbers, `Tus-Resumable`,
//! `Upload-Metadata`, `Upload-Concat`, `Upload-Checksum`, and the HTTP date of
//! `Upload-Expires`. Every parser returns a [`HeaderError`] (which names the HTTP status the
//! protocol requires) instead of panicking, whatever the bytes.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::base64;

/// The protocol version this crate speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// Largest `Upload-Metadata` header accepted by default (bytes).
pub const DEFAULT_MAX_METADATA: usize = 4096;
/// Most parts a final upload may concatenate.
pub const MAX_CONCAT_PARTS: usize = 1000;

/// A header the protocol says to reject, with the status to reject it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// `Tus-Resumable` missing or not `1.0.0`: 412 Precondition Failed.
    #[error("unsupported or missing Tus-Resumable version (this server speaks {TUS_VERSION})")]
    UnsupportedVersion,
    /// A malformed value: 400 Bad Request.
    #[error("invalid {header}: {detail}")]
    Invalid {
        /// Which header.
        header: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A checksum algorithm the server does not support: 400 Bad Request.
    #[error("unsupported checksum algorithm {0:?} (supported: sha1, md5, sha256, sha512)")]
    UnsupportedAlgorithm(String),
    /// A header over its size limit: 400 Bad Request.
    #[error("{header} is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Which header.
        header: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl HeaderError {
    /// The HTTP status the protocol prescribes.
    pub fn status(&self) -> u16 {
        match self {
            HeaderError::UnsupportedVersion => 412,
            _ => 400,
        }
    }

    fn invalid(header: &'static str, detail: impl Into<String>) -> HeaderError {
        HeaderError::Invalid {
            header,
            detail: detail.into(),
        }
    }
}

/// Check `Tus-Resumable` (every request but `OPTIONS` must carry `1.0.0`).
pub fn check_version(value: Option<&str>) -> Result<(), HeaderError> {
    match value {
        Some(v) if v.trim() == TUS_VERSION => Ok(()),
        _ => Err(HeaderError::UnsupportedVersion),
    }
}

/// A non-negative decimal integer (`Upload-Offset`, `Upload-Length`): digits only, at most
/// 2^63 − 1 (what JavaScript clients and signed 64-bit servers can both hold).
pub fn parse_u64(header: &'static str, value: &str) -> Result<u64, HeaderError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::invalid(
            header,
            format!("{v:?} is not a non-negative integer"),
        ));
    }
    v.parse::<u64>()
        .ok()
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(|| HeaderError::invalid(header, "out of range"))
}

/// `Upload-Defer-Length`: the only valid value is `1`.
pub fn parse_defer_length(value: &str) -> Result<(), HeaderError> {
    if value.trim() == "1" {
        Ok(())
    } else {
        Err(HeaderError::invalid("Upload-Defer-Length", "must be 1"))
    }
}

/// `Upload-Metadata`: unique, non-empty keys (no spaces or commas) with optional base64
/// values, in the client's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pairs: Vec<(String, Option<Vec<u8>>)>,
}

impl Metadata {
    /// Parse a header of at most `max_len` bytes.
    pub fn parse(value: &str, max_len: usize) -> Result<Metadata, HeaderError> {
        const H: &str = "Upload-Metadata";
        if value.len() > max_len {
            return Err(HeaderError::TooLarge {
                header: H,
                len: value.len(),
                max: max_len,
            });
        }
        let mut pairs: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        if value.trim().is_empty() {
            return Ok(Metadata { pairs });
        }
        for item in value.split(',') {
            let item = item.trim();
            let (key, val) = match item.split_once(' ') {
                Some((k, v)) => (k, Some(v.trim())),
                None => (item, None),
            };
            if key.is_empty() {
                return Err(HeaderError::invalid(H, "empty key"));
            }
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(HeaderError::invalid(
                    H,
                    format!("key {key:?} is not printable ASCII"),
                ));
            }
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(HeaderError::invalid(H, format!("duplicate key {key:?}")));
            }
            let decoded = match val {
                None | Some("") => None,
                Some(v) => Some(base64::decode(v).ok_or_else(|| {
                    HeaderError::invalid(H, format!("value of {key:?} is not base64"))
                })?),
            };
            pairs.push((key.to_string(), decoded));
        }
        Ok(Metadata { pairs })
    }

    /// Value of `key` (decoded bytes; `Some(&[])` for a key given without a value).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref().unwrap_or(&[]))
    }

    /// Value of `key` as UTF-8 text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The header value (canonical form, as echoed on `HEAD`).
    pub fn to_header(&self) -> String {
        let mut s = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(k);
            if let Some(v) = v {
                s.push(' ');
                s.push_str(&base64::encode(v));
            }
        }
        s
    }
}

/// `Upload-Concat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    /// `partial`: this upload is a part of a later final upload.
    Partial,
    /// `final;<url> <url>…`: concatenate these partial uploads (URLs or absolute paths).
    Final(Vec<String>),
}

impl Concat {
    /// Parse the header value.
    pub fn parse(value: &str) -> Result<Concat, HeaderError> {
        const H: &str = "Upload-Concat";
        let v = value.trim();
        if v == "partial" {
            return Ok(Concat::Partial);
        }
        let Some(list) = v.strip_prefix("final;") else {
            return Err(HeaderError::invalid(
                H,
                "must be \"partial\" or \"final;<urls>\"",
            ));
        };
        let parts: Vec<String> = list.split_ascii_whitespace().map(str::to_string).collect();
        if parts.is_empty() {
            return Err(HeaderError::invalid(
                H,
                "final upload lists no partial uploads",
            ));
        }
        if parts.len() > MAX_CONCAT_PARTS {
            return Err(HeaderError::invalid(
                H,
                format!("more than {MAX_CONCAT_PARTS} partial uploads"),
            ));
        }
        Ok(Concat::Final(parts))
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        match self {
            Concat::Partial => "partial".into(),
            Concat::Final(parts) => format!("final;{}", parts.join(" ")),
        }
    }
}

/// Checksum algorithms of the checksum extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    /// SHA-1 (the protocol's mandatory algorithm).
    Sha1,
    /// MD5.
    Md5,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl ChecksumAlgorithm {
    /// Every supported algorithm, for `Tus-Checksum-Algorithm`.
    pub const ALL: [ChecksumAlgorithm; 4] = [
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha512,
    ];

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Md5 => "md5",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha512 => "sha512",
        }
    }

    /// By name (case-insensitive).
    pub fn from_name(name: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Md5 => 16,
            ChecksumAlgorithm::Sha256 => 32,
            ChecksumAlgorithm::Sha512 => 64,
        }
    }

    /// The `Tus-Checksum-Algorithm` header value.
    pub fn header_list() -> String {
        Self::ALL.map(ChecksumAlgorithm::name).join(",")
    }
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// The algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// The expected digest.
    pub digest: Vec<u8>,
}

impl Checksum {
    /// Parse the header value.
    pub fn parse(value: &str) -> Result<Checksum, HeaderError> {
        const H: &str = "Upload-Checksum";
        let (name, digest) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| HeaderError::invalid(H, "must be \"<algorithm> <base64 digest>\""))?;
        let algorithm = ChecksumAlgorithm::from_name(name)
            .ok_or_else(|| HeaderError::UnsupportedAlgorithm(name.chars().take(32).collect()))?;
        let digest = base64::decode(digest.trim())
            .ok_or_else(|| HeaderError::invalid(H, "digest is not base64"))?;
        if digest.len() != algorithm.digest_len() {
            return Err(HeaderError::invalid(
                H,
                format!(
                    "a {} digest has {} bytes, not {}",
                    algorithm.name(),
                    algorithm.digest_len(),
                    digest.len()
                ),
            ));
        }
        Ok(Checksum { algorithm, digest })
    }
}

/// An HTTP date (RFC 9110 IMF-fixdate), e.g. `Wed, 25 Jun 2014 16:00:00 GMT`, as
/// `Upload-Expires` uses.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    let mut s = String::with_capacity(29);
    let _ = write!(
        s,
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(check_version(Some("1.0.0")).is_ok());
        for bad in [None, Some(""), Some("0.2.2"), Some("1.0")] {
            assert_eq!(check_version(bad).unwrap_err().status(), 412);
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("Upload-Length", "0"), Ok(0));
        assert_eq!(parse_u64("Upload-Length", "5368709120"), Ok(5_368_709_120));
        assert_eq!(
            parse_u64("Upload-Length", "9223372036854775807"),
            Ok(9_223_372_036_854_775_807)
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "1e3",
            "0x10",
            "9223372036854775808",
            "1 2",
            "abc",
        ] {
            let e = parse_u64("Upload-Offset", bad).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
        }
        assert!(parse_defer_length("1").is_ok());
        assert!(parse_defer_length("0").is_err());
    }

    #[test]
    fn metadata() {
        // tus-js-client's form: no spaces after commas; an empty value is allowed.
        let m = Metadata::parse(
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential",
            4096,
        )
        .unwrap();
        assert_eq!(m.get_str("filename"), Some("world_domination_plan.pdf"));
        assert_eq!(m.get("is_confidential"), Some(&[][..]));
        assert_eq!(m.get("other"), None);
        assert_eq!(
            m.to_header(),
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"
        );
        assert_eq!(
            Metadata::parse("a Zg==, b Zm8=", 4096)
                .unwrap()
                .get_str("b"),
            Some("fo")
        );
        assert!(Metadata::parse("", 4096).unwrap().is_empty());
        for bad in ["a Zg==,a Zm8=", ",a Zg==", "a Z", "a Zg==,", "ä Zg=="] {
            assert_eq!(
                Metadata::parse(bad, 4096).unwrap_err().status(),
                400,
                "{bad}"
            );
        }
        assert!(matches!(
            Metadata::parse(&"a".repeat(5000), 4096),
            Err(HeaderError::TooLarge { .. })
        ));
    }

    #[test]
    fn concat() {
        assert_eq!(Concat::parse("partial"), Ok(Concat::Partial));
        assert_eq!(
            Concat::parse("final;/files/a http://tus.example.org/files/b"),
            Ok(Concat::Final(vec![
                "/files/a".into(),
                "http://tus.example.org/files/b".into()
            ]))
        );
        for bad in ["", "final", "final;", "final; ", "partial;x", "whole"] {
            assert!(Concat::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checksums() {
        // sha1("") = da39a3ee5e6b4b0d3255bfef95601890afd80709
        let c = Checksum::parse("sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=").unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(c.digest[0], 0xda);
        assert_eq!(
            Checksum::parse("crc32 AAAAAA==").unwrap_err(),
            HeaderError::UnsupportedAlgorithm("crc32".into())
        );
        assert!(Checksum::parse("sha1 AAAA").is_err(), "wrong length");
        assert!(Checksum::parse("sha1").is_err());
        assert!(Checksum::parse("sha1 !!!!").is_err());
        assert_eq!(ChecksumAlgorithm::header_list(), "sha1,md5,sha256,sha512");
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(1_403_712_000)),
            "Wed, 25 Jun 2014 16:00:00 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(1_795_680_911)),
            "Thu, 26 Nov 2026 08:15:11 GMT"
        );
    }
}
