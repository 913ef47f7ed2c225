//! One module per `dwcpd` subcommand: its clap arguments and its `run` function.

pub mod allocate;
pub mod bench;
pub mod compress;
pub mod demo;
pub mod keygen;
pub mod probft_params;
pub mod run;
pub mod sim;
pub mod twins;
