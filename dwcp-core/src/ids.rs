//! Identifiers and counters shared by every engine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a committee member, `0..n`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct NodeId(pub u16);

impl NodeId {
    /// The id as a `usize` index into per-member tables.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A PBFT view number: who leads, and which attempt this is.
pub type View = u64;
/// A position in the total order of committed batches, starting at 1.
pub type Seq = u64;
/// A round of a DAG or of a round-based protocol.
pub type Round = u64;

/// Virtual or wall-clock time in microseconds since an engine-independent epoch.
///
/// Engines never read a clock: the driver passes `Time` with every input. The
/// simulator passes virtual time; the daemon passes time since process start.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default, Debug,
)]
pub struct Time(pub u64);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(0);

    /// `self + d`, saturating.
    pub fn after(self, d: std::time::Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> std::time::Duration {
        std::time::Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// Microseconds since the epoch.
    pub fn as_micros(self) -> u64 {
        self.0
    }
}
