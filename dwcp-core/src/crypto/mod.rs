//! Signatures (ed25519, verified with ZIP-215 rules) and the VRF.

pub(crate) mod signature;

mod vrf;

pub use signature::{batch_verify, PublicKey, Signature, SignatureScheme, SigningKey, VerifyItem};
pub use vrf::{InsecureFastVrf, R255Vrf, Vrf, VrfOutput, VrfProof, VrfPublicKey, VrfSecretKey};

/// Why a cryptographic check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A signature did not verify under the claimed key.
    #[error("invalid signature")]
    InvalidSignature,
    /// Bytes that should hold a public key do not.
    #[error("malformed public key")]
    MalformedKey,
    /// A VRF proof did not verify.
    #[error("invalid VRF proof")]
    InvalidProof,
}
