//! Incremental hashing for the checksum extension.

use sha2::Digest as _;

use crate::headers::ChecksumAlgorithm;

/// Hashes a PATCH body as it streams in.
#[derive(Debug, Clone)]
pub enum Hasher {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// MD5.
    Md5(md5::Md5),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: ChecksumAlgorithm) -> Hasher {
        match algorithm {
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self {
            Hasher::Sha1(_) => ChecksumAlgorithm::Sha1,
            Hasher::Md5(_) => ChecksumAlgorithm::Md5,
            Hasher::Sha256(_) => ChecksumAlgorithm::Sha256,
            Hasher::Sha512(_) => ChecksumAlgorithm::Sha512,
        }
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::ChecksumAlgorithm as A;

    fn hex(b: &[u8]) -> String {
        use std::fmt::Write as _;
        b.iter().fold(String::new(), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
    }

    #[test]
    fn known_digests_of_abc() {
        for (alg, want) in [
            (A::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (A::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (
                A::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ] {
            let mut h = Hasher::new(alg);
            h.update(b"a");
            h.update(b"bc");
            let d = h.finish();
            assert_eq!(d.len(), alg.digest_len());
            assert_eq!(hex(&d), want);
        }
        assert_eq!(Hasher::new(A::Sha512).finish().len(), 64);
    }
}
