//! The `dwcpd` daemon, by folder:
//!
//! - [`supervision`]: the supervisor (the DWCP Manager) and the components it runs;
//! - [`driver`]: the node driver that runs any engine, its inbox, an in-memory network;
//! - [`net`]: the Noise transport between members, peer addresses, link breakers;
//! - [`http`]: the HTTP API: the router, consensus and ML routes, their shared state;
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
pub mod engine_params;
pub mod engines;
pub mod http;
pub mod keygen;
pub mod local_cluster;
pub mod metrics;
pub mod net;
pub mod node;
pub mod supervision;
