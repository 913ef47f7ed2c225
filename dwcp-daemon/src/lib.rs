//! The `dwcpd` daemon: command implementations and, later, transport, node driver,
//! manager, HTTP API and metrics.

pub mod cmd;
