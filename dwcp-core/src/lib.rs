//! Shared vocabulary of DWCP.
