//! Ed25519 signing and verification, plus a fast stand-in scheme for simulation.

use super::CryptoError;
use crate::Digest;
use ed25519_zebra::{batch, VerificationKey, VerificationKeyBytes};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroize;

/// Which signature algorithm a committee uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SignatureScheme {
    /// Ed25519; verification follows ZIP-215 so batch and single checks agree.
    #[default]
    Ed25519,
    /// Keyed BLAKE3 of the public key over the message. Anyone who knows the public
    /// key can forge it: it exists so that large simulations can measure protocol
    /// costs without paying for elliptic-curve arithmetic. Never use it on a network.
    InsecureFast,
}

/// A 32-byte ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(&self.0[..8]))
    }
}

/// A 64-byte signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                let arr: [u8; 64] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Signature(arr))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A secret signing key. It never prints and is wiped from memory on drop.
#[derive(Clone)]
pub struct SigningKey {
    seed: [u8; 32],
    inner: ed25519_zebra::SigningKey,
    public: PublicKey,
    scheme: SignatureScheme,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?}, <secret>)", self.public)
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

impl SigningKey {
    /// A key from a 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32], scheme: SignatureScheme) -> SigningKey {
        let inner = ed25519_zebra::SigningKey::from(seed);
        let public = PublicKey(VerificationKeyBytes::from(VerificationKey::from(&inner)).into());
        SigningKey {
            seed,
            inner,
            public,
            scheme,
        }
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate(scheme: SignatureScheme) -> SigningKey {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let key = SigningKey::from_seed(seed, scheme);
        seed.zeroize();
        key
    }

    /// The secret seed, for writing a key file. Handle with care.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The scheme this key signs with.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// Signs a digest (callers hash the exact bytes that travel, then sign the hash).
    pub fn sign(&self, digest: &Digest) -> Signature {
        match self.scheme {
            SignatureScheme::Ed25519 => Signature(self.inner.sign(&digest.0).to_bytes()),
            SignatureScheme::InsecureFast => insecure_signature(&self.public, digest),
        }
    }
}

fn insecure_signature(public: &PublicKey, digest: &Digest) -> Signature {
    let mac = blake3::keyed_hash(&public.0, &digest.0);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(mac.as_bytes());
    sig[32..].copy_from_slice(&digest.0);
    Signature(sig)
}

/// A public key prepared for repeated verification (its curve point is decoded once).
#[derive(Clone)]
pub(crate) struct Verifier {
    pub(crate) bytes: PublicKey,
    point: Option<VerificationKey>,
}

impl Verifier {
    pub(crate) fn new(key: PublicKey) -> Verifier {
        Verifier {
            bytes: key,
            point: VerificationKey::try_from(key.0).ok(),
        }
    }

    pub(crate) fn verify(
        &self,
        scheme: SignatureScheme,
        digest: &Digest,
        sig: &Signature,
    ) -> Result<(), CryptoError> {
        match scheme {
            SignatureScheme::Ed25519 => {
                let point = self.point.as_ref().ok_or(CryptoError::MalformedKey)?;
                point
                    .verify(&ed25519_zebra::Signature::from_bytes(&sig.0), &digest.0)
                    .map_err(|_| CryptoError::InvalidSignature)
            }
            SignatureScheme::InsecureFast => {
                if insecure_signature(&self.bytes, digest) == *sig {
                    Ok(())
                } else {
                    Err(CryptoError::InvalidSignature)
                }
            }
        }
    }
}

/// One (key, digest, signature) triple for [`batch_verify`].
#[derive(Clone, Copy, Debug)]
pub struct VerifyItem<'a> {
    /// The signer's public key.
    pub key: &'a PublicKey,
    /// The signed digest.
    pub digest: &'a Digest,
    /// The signature.
    pub signature: &'a Signature,
}

/// Verifies many signatures at once. With ed25519 this is one multiscalar
/// multiplication (about twice as fast per signature as single checks for large
/// batches); the answer is the same as checking each alone, by ZIP-215.
pub fn batch_verify(scheme: SignatureScheme, items: &[VerifyItem<'_>]) -> Result<(), CryptoError> {
    match scheme {
        SignatureScheme::Ed25519 => {
            let mut v = batch::Verifier::new();
            for it in items {
                v.queue((
                    VerificationKeyBytes::from(it.key.0),
                    ed25519_zebra::Signature::from_bytes(&it.signature.0),
                    &it.digest.0,
                ));
            }
            v.verify(rand_core::OsRng)
                .map_err(|_| CryptoError::InvalidSignature)
        }
        SignatureScheme::InsecureFast => items.iter().try_for_each(|it| {
            if insecure_signature(it.key, it.digest) == *it.signature {
                Ok(())
            } else {
                Err(CryptoError::InvalidSignature)
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(scheme: SignatureScheme) -> Vec<SigningKey> {
        (0..8u8)
            .map(|i| SigningKey::from_seed([i; 32], scheme))
            .collect()
    }

    #[test]
    fn sign_verify_both_schemes() {
        for scheme in [SignatureScheme::Ed25519, SignatureScheme::InsecureFast] {
            let ks = keys(scheme);
            let d = Digest::of(b"hello");
            let sig = ks[0].sign(&d);
            let v = Verifier::new(ks[0].public());
            assert!(v.verify(scheme, &d, &sig).is_ok());
            assert!(v.verify(scheme, &Digest::of(b"other"), &sig).is_err());
            let v1 = Verifier::new(ks[1].public());
            assert!(v1.verify(scheme, &d, &sig).is_err());
        }
    }

    #[test]
    fn batch_agrees_with_single() {
        for scheme in [SignatureScheme::Ed25519, SignatureScheme::InsecureFast] {
            let ks = keys(scheme);
            let ds: Vec<Digest> = (0..8u8).map(|i| Digest::of(&[i])).collect();
            let pks: Vec<PublicKey> = ks.iter().map(|k| k.public()).collect();
            let mut sigs: Vec<Signature> = ks.iter().zip(&ds).map(|(k, d)| k.sign(d)).collect();
            let check = |sigs: &[Signature]| {
                let refs: Vec<VerifyItem<'_>> = (0..8)
                    .map(|i| VerifyItem {
                        key: &pks[i],
                        digest: &ds[i],
                        signature: &sigs[i],
                    })
                    .collect();
                batch_verify(scheme, &refs)
            };
            assert!(check(&sigs).is_ok());
            sigs[3].0[5] ^= 1;
            assert!(check(&sigs).is_err());
        }
    }

    #[test]
    fn secret_never_prints() {
        let k = SigningKey::from_seed([7; 32], SignatureScheme::Ed25519);
        let s = format!("{k:?}");
        assert!(!s.contains(&hex::encode([7u8; 32])));
        assert!(s.contains("<secret>"));
    }
}
