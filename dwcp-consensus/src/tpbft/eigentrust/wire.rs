//! How [`LocalTrust`] is stored (in T-PBFT's epoch snapshot): its counts as a list
//! in key order. Decoding checks what [`LocalTrust::add`] and
//! [`LocalTrust::exclude`] guarantee (ids in range, no self-rating, no empty pair,
//! no repeated key), so a decoded value is one the API could have built, and equal
//! values encode to equal bytes.

use super::{Interactions, LocalTrust, MAX_NODES};
use dwcp_core::NodeId;
use serde::{Deserialize, Serialize};

/// [`LocalTrust`] as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct LocalTrustWire {
    n: u64,
    counts: Vec<(NodeId, NodeId, Interactions)>,
    excluded: Vec<NodeId>,
}

impl From<LocalTrust> for LocalTrustWire {
    fn from(l: LocalTrust) -> Self {
        LocalTrustWire {
            n: l.n as u64,
            counts: l.counts.into_iter().map(|((i, j), e)| (i, j, e)).collect(),
            excluded: l.excluded.into_iter().collect(),
        }
    }
}

impl TryFrom<LocalTrustWire> for LocalTrust {
    type Error = String;

    fn try_from(w: LocalTrustWire) -> Result<Self, String> {
        let n = usize::try_from(w.n)
            .ok()
            .filter(|n| *n <= MAX_NODES)
            .ok_or_else(|| format!("{} nodes; at most {MAX_NODES} are supported", w.n))?;
        let mut l = LocalTrust::new(n).map_err(|e| e.to_string())?;
        let in_range = |id: NodeId| id.index() < n;
        for (i, j, e) in w.counts {
            if !in_range(i) || !in_range(j) || i == j || (e.sat == 0 && e.unsat == 0) {
                return Err(format!("bad local-trust entry ({i}, {j})"));
            }
            if l.counts.last_key_value().is_some_and(|(k, _)| *k >= (i, j)) {
                return Err(format!("local-trust entry ({i}, {j}) out of order"));
            }
            l.counts.insert((i, j), e);
        }
        for j in w.excluded {
            if !in_range(j) || l.excluded.last().is_some_and(|k| *k >= j) {
                return Err(format!("bad excluded node {j}"));
            }
            l.excluded.insert(j);
        }
        Ok(l)
    }
}
