//! The `dwcpd` daemon.
//!
//! - [`supervision`]: the supervisor (the DWCP Manager) and the components it starts,
//!   checks and recovers: storage, transport, engine driver, compression, allocator;
//! - [`driver`]: the node driver that runs any engine, its inbox and outbox, and an
//!   in-memory network;
//! - [`net`]: the Noise transport between committee members, peer addresses, and the
//!   circuit breaker of each link;
//! - [`http`]: the HTTP API: consensus routes, the compression and allocator routes,
//!   and the state they share;
//! - [`cmd`]: the `dwcpd` subcommands.
//!
//! At the top level: the node's configuration ([`config`]) and wiring ([`node`]),
//! the engine choice ([`engines`]), metrics, submission admission, key generation,
//! and the HTTP client and local cluster the commands and tests use.

pub mod admission;
pub mod client;
pub mod cmd;
pub mod config;
pub mod driver;
pub mod engines;
pub mod http;
pub mod keygen;
pub mod local_cluster;
pub mod metrics;
pub mod net;
pub mod node;
pub mod supervision;
