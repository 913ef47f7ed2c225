//! Errors of the allocator module.

use std::path::PathBuf;

/// Everything that can go wrong in the allocator: bad trace data, invalid placements,
/// unreadable or mismatched model files.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// The demand trace CSV is malformed.
    #[error("demand trace, line {line}: {reason}")]
    Trace {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A requested trace day does not exist.
    #[error("trace {source_name} has no day {day}")]
    NoSuchDay {
        /// Trace source name.
        source_name: String,
        /// Requested day.
        day: usize,
    },
    /// An allocator returned a placement the environment cannot apply.
    #[error("invalid placement of workload {workload} on node {node}: {reason}")]
    InvalidPlacement {
        /// Workload id.
        workload: u64,
        /// Node index.
        node: usize,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The model file could not be read.
    #[error("cannot read model file {path}: {source}")]
    ModelIo {
        /// Path that was read.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The model file is not valid JSON of the expected shape (truncated, corrupted).
    #[error("model file is corrupted or truncated: {0}")]
    ModelFormat(#[source] serde_json::Error),
    /// The model file is well-formed but does not match this build.
    #[error("model file mismatch: {0}")]
    ModelMismatch(String),
    /// The model could not be written.
    #[error("cannot write model file {path}: {source}")]
    ModelWrite {
        /// Destination path.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}
