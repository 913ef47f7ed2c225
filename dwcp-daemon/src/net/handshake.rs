//! The handshake that opens a link: Noise `XX` (X25519, ChaCha20-Poly1305, BLAKE2s),
//! then each side signs the handshake hash with its ed25519 committee key, binding
//! the channel to a committee identity.

use super::frames::{read_noise, write_noise, LinkError, NOISE_MAX};
use dwcp_core::{Committee, Digest, NodeId, NodeKeys};
use tokio::net::TcpStream;

/// The Noise protocol every link runs.
pub(super) const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Domain of the signed channel binding.
const AUTH_DOMAIN: &str = "dwcp noise channel binding v1";

/// Which end of a link this is: the dialler, which expects a given member to
/// answer, or the listener, which learns who called from the handshake.
pub(super) enum Role {
    Initiator { expect: NodeId },
    Responder,
}

fn binding(hash: &[u8], role: &[u8]) -> Digest {
    Digest::of_parts(AUTH_DOMAIN, &[hash, role])
}

/// Runs the XX handshake, then exchanges committee signatures over its hash.
/// Returns the transport state and the authenticated peer.
pub(super) async fn handshake(
    stream: &mut TcpStream,
    keys: &NodeKeys,
    committee: &Committee,
    role: Role,
) -> Result<(snow::TransportState, NodeId), LinkError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse()?;
    let builder = snow::Builder::new(params);
    let static_key = builder.generate_keypair()?;
    let builder = builder.local_private_key(&static_key.private)?;
    let mut buf = vec![0u8; NOISE_MAX];
    let mut out = vec![0u8; NOISE_MAX];
    let mut payload = vec![0u8; NOISE_MAX];
    let initiator = matches!(role, Role::Initiator { .. });
    let mut hs = if initiator {
        builder.build_initiator()?
    } else {
        builder.build_responder()?
    };
    // XX: -> e; <- e, ee, s, es; -> s, se
    for step in 0..3 {
        let we_write = (step % 2 == 0) == initiator;
        if we_write {
            let n = hs.write_message(&[], &mut out)?;
            write_noise(stream, &out[..n]).await?;
        } else {
            let n = read_noise(stream, &mut buf).await?;
            hs.read_message(&buf[..n], &mut payload)?;
        }
    }
    let hash = hs.get_handshake_hash().to_vec();
    let mut noise = hs.into_transport_mode()?;
    let (mine, theirs): (&[u8], &[u8]) = if initiator {
        (b"initiator", b"responder")
    } else {
        (b"responder", b"initiator")
    };
    let sig = keys.signing.sign(&binding(&hash, mine));
    let mut auth = Vec::with_capacity(66);
    auth.extend_from_slice(&keys.id.0.to_le_bytes());
    auth.extend_from_slice(&sig.0);
    let send_auth =
        |noise: &mut snow::TransportState, out: &mut Vec<u8>| noise.write_message(&auth, out);
    if initiator {
        let n = send_auth(&mut noise, &mut out)?;
        write_noise(stream, &out[..n]).await?;
    }
    let n = read_noise(stream, &mut buf).await?;
    let m = noise.read_message(&buf[..n], &mut payload)?;
    if m != 66 {
        return Err(LinkError::Auth("malformed authentication message"));
    }
    let peer = NodeId(u16::from_le_bytes([payload[0], payload[1]]));
    let mut sig_bytes = [0u8; 64];
    sig_bytes.copy_from_slice(&payload[2..66]);
    if peer == keys.id || !committee.contains(peer) {
        return Err(LinkError::Auth("not another committee member"));
    }
    if let Role::Initiator { expect } = role {
        if peer != expect {
            return Err(LinkError::Auth("answered by the wrong member"));
        }
    }
    committee
        .verify(
            peer,
            &binding(&hash, theirs),
            &dwcp_core::crypto::Signature(sig_bytes),
        )
        .map_err(|_| LinkError::Auth("bad channel-binding signature"))?;
    if !initiator {
        let n = send_auth(&mut noise, &mut out)?;
        write_noise(stream, &out[..n]).await?;
    }
    Ok((noise, peer))
}
