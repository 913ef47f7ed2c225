//! Supervision: the [`supervisor`] (the DWCP Manager of the design) and the
//! components it starts in dependency order, checks and recovers: the `redb` store
//! ([`storage`]), the Noise transport ([`transport`]), the engine driver
//! ([`engine`]), and the compression selector and allocator models ([`ml`]).

pub mod engine;
pub mod ml;
pub mod storage;
pub mod supervisor;
pub mod transport;
