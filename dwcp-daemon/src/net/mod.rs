//! The network between committee members: the Noise transport that carries the
//! engines' frames over TCP, every link authenticated by committee keys
//! ([`transport`]), and the circuit breaker that guards each outgoing link
//! ([`breaker`]).

pub mod breaker;
pub mod transport;
