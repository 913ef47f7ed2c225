//! The `dwcpd` daemon.
