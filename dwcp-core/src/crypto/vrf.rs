//! Verifiable random functions: RFC 9381 ECVRF over ristretto255 behind our own trait.

use super::CryptoError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroize;

/// A verifiable random function: only the secret-key holder can evaluate it, and
/// anyone with the public key can check the output. ProBFT samples its quorums with it.
pub trait Vrf {
    /// The secret key type.
    type SecretKey;
    /// The public key type.
    type PublicKey;
    /// Evaluates the VRF on `alpha`: the pseudo-random output and its proof.
    fn prove(sk: &Self::SecretKey, alpha: &[u8]) -> (VrfOutput, VrfProof);
    /// Checks `proof` for `alpha` under `pk`, returning the output it proves.
    fn verify(
        pk: &Self::PublicKey,
        alpha: &[u8],
        proof: &VrfProof,
    ) -> Result<VrfOutput, CryptoError>;
}

/// ECVRF-RISTRETTO255-SHA512 (RFC 9381), via the `vrf-r255` crate.
#[derive(Debug, Clone, Copy, Default)]
pub struct R255Vrf;

impl Vrf for R255Vrf {
    type SecretKey = VrfSecretKey;
    type PublicKey = VrfPublicKey;

    fn prove(sk: &VrfSecretKey, alpha: &[u8]) -> (VrfOutput, VrfProof) {
        let proof = sk.inner.prove(alpha);
        let pk = vrf_r255::PublicKey::from(sk.inner);
        // An honest proof always verifies; the output is the proof's hash.
        let out = Option::<[u8; 64]>::from(pk.verify(alpha, &proof)).unwrap_or([0; 64]);
        (VrfOutput(out), VrfProof(proof.to_bytes()))
    }

    fn verify(pk: &VrfPublicKey, alpha: &[u8], proof: &VrfProof) -> Result<VrfOutput, CryptoError> {
        let key = vrf_r255::PublicKey::from_bytes(pk.0).ok_or(CryptoError::MalformedKey)?;
        let proof = vrf_r255::Proof::from_bytes(proof.0).ok_or(CryptoError::InvalidProof)?;
        Option::<[u8; 64]>::from(key.verify(alpha, &proof))
            .map(VrfOutput)
            .ok_or(CryptoError::InvalidProof)
    }
}

/// The simulator's VRF stand-in, paired with [`super::SignatureScheme::InsecureFast`]:
/// the output is a keyed BLAKE3 of the input under the *public* key and the proof
/// is the output, so anyone can compute it for any key. It exists so that large
/// simulations can measure protocol costs without elliptic-curve arithmetic.
/// Never use it on a network.
#[derive(Debug, Clone, Copy, Default)]
pub struct InsecureFastVrf;

impl InsecureFastVrf {
    fn output(pk: &VrfPublicKey, alpha: &[u8]) -> VrfOutput {
        let mut out = [0u8; 64];
        blake3::Hasher::new_keyed(&pk.0)
            .update(b"dwcp insecure vrf stand-in v1")
            .update(alpha)
            .finalize_xof()
            .fill(&mut out);
        VrfOutput(out)
    }
}

impl Vrf for InsecureFastVrf {
    type SecretKey = VrfSecretKey;
    type PublicKey = VrfPublicKey;

    fn prove(sk: &VrfSecretKey, alpha: &[u8]) -> (VrfOutput, VrfProof) {
        let out = Self::output(&sk.public(), alpha);
        let mut proof = [0u8; 80];
        proof[..64].copy_from_slice(&out.0);
        (out, VrfProof(proof))
    }

    fn verify(pk: &VrfPublicKey, alpha: &[u8], proof: &VrfProof) -> Result<VrfOutput, CryptoError> {
        let out = Self::output(pk, alpha);
        if proof.0[..64] == out.0[..] && proof.0[64..] == [0u8; 16] {
            Ok(out)
        } else {
            Err(CryptoError::InvalidProof)
        }
    }
}

/// A VRF secret key. It never prints and is wiped on drop.
#[derive(Clone)]
pub struct VrfSecretKey {
    seed: [u8; 32],
    inner: vrf_r255::SecretKey,
}

impl VrfSecretKey {
    /// Derives a key from 32 secret bytes (hashed to a scalar, so any bytes work).
    pub fn from_seed(seed: [u8; 32]) -> VrfSecretKey {
        let wide = blake3::derive_key("dwcp vrf-r255 secret key v1", &seed);
        let mut rng = <rand_chacha_shim::Rng as rand_core::SeedableRng>::from_seed(wide);
        let inner = vrf_r255::SecretKey::generate(&mut rng);
        VrfSecretKey { seed, inner }
    }

    /// The seed this key came from, for writing a key file.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The matching public key.
    pub fn public(&self) -> VrfPublicKey {
        VrfPublicKey(vrf_r255::PublicKey::from(self.inner).to_bytes())
    }
}

impl fmt::Debug for VrfSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VrfSecretKey({:?}, <secret>)", self.public())
    }
}

impl Drop for VrfSecretKey {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

/// A deterministic generator from a 32-byte seed, to turn a seed into a VRF scalar.
mod rand_chacha_shim {
    /// BLAKE3 in XOF mode as a seeded generator: enough to draw one scalar.
    pub struct Rng(blake3::OutputReader);
    impl rand_core::SeedableRng for Rng {
        type Seed = [u8; 32];
        fn from_seed(seed: [u8; 32]) -> Rng {
            Rng(blake3::Hasher::new_keyed(&seed).finalize_xof())
        }
    }
    impl rand_core::RngCore for Rng {
        fn next_u32(&mut self) -> u32 {
            let mut b = [0; 4];
            self.0.fill(&mut b);
            u32::from_le_bytes(b)
        }
        fn next_u64(&mut self) -> u64 {
            let mut b = [0; 8];
            self.0.fill(&mut b);
            u64::from_le_bytes(b)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            self.0.fill(dest)
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.0.fill(dest);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for Rng {}
}

/// A VRF public key (a compressed ristretto255 point).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VrfPublicKey(pub [u8; 32]);

impl fmt::Debug for VrfPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VrfPublicKey({})", hex::encode(&self.0[..8]))
    }
}

/// An 80-byte VRF proof.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VrfProof(pub [u8; 80]);

/// A 64-byte VRF output.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VrfOutput(pub [u8; 64]);

impl VrfOutput {
    /// The first 8 bytes as an integer, uniform in `0..2^64`, for sampling.
    pub fn as_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }
}

macro_rules! byte_array_serde {
    ($t:ident, $n:expr) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), hex::encode(&self.0[..8]))
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} bytes", $n)
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<$t, E> {
                        let arr: [u8; $n] = v
                            .try_into()
                            .map_err(|_| E::invalid_length(v.len(), &self))?;
                        Ok($t(arr))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    };
}
byte_array_serde!(VrfProof, 80);
byte_array_serde!(VrfOutput, 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prove_verify_roundtrip_and_rejects_tampering() {
        let sk = VrfSecretKey::from_seed([3; 32]);
        let pk = sk.public();
        let (out, proof) = R255Vrf::prove(&sk, b"round 7");
        assert_eq!(R255Vrf::verify(&pk, b"round 7", &proof), Ok(out));
        assert!(R255Vrf::verify(&pk, b"round 8", &proof).is_err());
        let other = VrfSecretKey::from_seed([4; 32]).public();
        assert!(R255Vrf::verify(&other, b"round 7", &proof).is_err());
        let mut bad = proof;
        bad.0[40] ^= 1;
        assert!(R255Vrf::verify(&pk, b"round 7", &bad).is_err());
        // Deterministic: same key, same input, same output.
        assert_eq!(R255Vrf::prove(&sk, b"round 7").0, out);
        assert!(!format!("{sk:?}").contains(&hex::encode([3u8; 32])));
    }

    #[test]
    fn the_stand_in_verifies_its_own_proofs_only() {
        let sk = VrfSecretKey::from_seed([3; 32]);
        let pk = sk.public();
        let (out, proof) = InsecureFastVrf::prove(&sk, b"round 7");
        assert_eq!(InsecureFastVrf::verify(&pk, b"round 7", &proof), Ok(out));
        assert!(InsecureFastVrf::verify(&pk, b"round 8", &proof).is_err());
        let other = VrfSecretKey::from_seed([4; 32]).public();
        assert!(InsecureFastVrf::verify(&other, b"round 7", &proof).is_err());
        let mut bad = proof;
        bad.0[70] ^= 1;
        assert!(InsecureFastVrf::verify(&pk, b"round 7", &bad).is_err());
        // Not the real VRF: its proofs do not pass for ECVRF's.
        assert!(R255Vrf::verify(&pk, b"round 7", &proof).is_err());
    }
}
