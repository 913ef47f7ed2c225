//! The `dwcpd` daemon: the generic node driver, the authenticated transport, the
//! HTTP API, configuration, and the command implementations.

pub mod admission;
pub mod breaker;
pub mod client;
pub mod cmd;
pub mod config;
pub mod driver;
pub mod engine_component;
pub mod engines;
pub mod http;
pub mod http_ml;
pub mod keygen;
pub mod local_cluster;
pub mod manager;
pub mod metrics;
pub mod ml_components;
pub mod node;
pub mod storage_component;
pub mod transport;
pub mod transport_component;
