//! One module per `dwcpd` subcommand: its clap arguments and its `run` function.

pub mod compress;
