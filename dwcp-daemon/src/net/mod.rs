//! The network between committee members: the Noise transport that carries the
//! engines' frames over TCP ([`transport`]), every link opened by a handshake bound
//! to committee keys and carrying length-prefixed frames ([`frames`]), peers named
//! by address or host name ([`peer_addr`]), and the circuit breaker that guards
//! each outgoing link ([`breaker`]).

pub mod breaker;
pub mod frames;
mod handshake;
pub mod peer_addr;
#[cfg(test)]
mod tests;
pub mod transport;
