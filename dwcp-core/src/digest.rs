//! BLAKE3 digests.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A 32-byte BLAKE3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The all-zero digest, used as the genesis of hash chains.
    pub const ZERO: Digest = Digest([0; 32]);

    /// BLAKE3 of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(*blake3::hash(data).as_bytes())
    }

    /// BLAKE3 of the concatenation of `parts`, under a domain-separation `context`.
    pub fn of_parts(context: &str, parts: &[&[u8]]) -> Digest {
        let mut h = blake3::Hasher::new_derive_key(context);
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Digest(*h.finalize().as_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..6]))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        let a = Digest::of_parts("t", &[b"ab", b"c"]);
        let b = Digest::of_parts("t", &[b"a", b"bc"]);
        assert_ne!(a, b);
        assert_ne!(
            Digest::of_parts("t", &[b"x"]),
            Digest::of_parts("u", &[b"x"])
        );
        assert_eq!(Digest::of(b"abc").0, *blake3::hash(b"abc").as_bytes());
    }
}
