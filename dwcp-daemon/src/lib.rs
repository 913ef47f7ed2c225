//! The `dwcpd` daemon: the generic node driver, and the command implementations.
//! Transport, manager, HTTP API and metrics build on the driver.

pub mod cmd;
pub mod driver;
pub mod transport;
