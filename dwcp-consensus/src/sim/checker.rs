//! Invariants checked after every step of a simulation: agreement, total order,
//! validity, no duplicates, no honest node contradicting itself; liveness at the end.

use crate::statement::StatementKey;
use dwcp_core::{Committed, Digest, NodeId, Seq, Time};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Watches what honest nodes commit and sign.
#[derive(Debug, Default)]
pub struct Checker {
    honest: Vec<bool>,
    /// Digest (hash chain) committed at each sequence number, by the first honest node.
    log: HashMap<Seq, Digest>,
    /// Last sequence number each node committed.
    height: Vec<Seq>,
    /// Submit time of each transaction.
    submitted: HashMap<Digest, Time>,
    /// Where each transaction was committed.
    placed: HashMap<Digest, Seq>,
    /// How many distinct honest nodes committed each transaction.
    commit_count: HashMap<Digest, usize>,
    /// Which honest node committed which transaction, so that a node committing one
    /// twice counts once towards liveness.
    committed_by: HashSet<(Digest, NodeId)>,
    statements: Vec<BTreeMap<StatementKey, Digest>>,
    /// Commit latency samples, microseconds.
    pub latencies: Vec<u64>,
    /// Safety violations found, described.
    pub violations: Vec<String>,
    /// Whether a committed transaction is the engine's own record (T-PBFT's
    /// evidence), which no client submitted and which validity and liveness skip.
    pub engine_record: Option<fn(&[u8]) -> bool>,
}

impl Checker {
    /// A checker for nodes whose honesty is given by id.
    pub fn new(honest: Vec<bool>) -> Checker {
        let n = honest.len();
        Checker {
            honest,
            height: vec![0; n],
            statements: vec![BTreeMap::new(); n],
            ..Default::default()
        }
    }

    fn violation(&mut self, s: String) {
        if self.violations.len() < 100 {
            self.violations.push(s);
        }
    }

    /// A client submitted `tx` at `now`.
    pub fn on_submit(&mut self, tx: &[u8], now: Time) {
        self.submitted.entry(Digest::of(tx)).or_insert(now);
    }

    /// Node `node` committed `c` at `now`.
    pub fn on_commit(&mut self, node: NodeId, c: &Committed, now: Time) {
        if !self.honest[node.index()] {
            return;
        }
        let h = &mut self.height[node.index()];
        if c.seq != *h + 1 {
            let msg = format!("total order: {node} committed seq {} after {}", c.seq, *h);
            *h = c.seq.max(*h);
            self.violation(msg);
        } else {
            *h = c.seq;
        }
        match self.log.get(&c.seq) {
            Some(d) if *d != c.digest => {
                let msg = format!(
                    "agreement: {node} committed {:?} at seq {}, another honest node {:?}",
                    c.digest, c.seq, d
                );
                self.violation(msg);
                return;
            }
            Some(_) => {}
            None => {
                self.log.insert(c.seq, c.digest);
            }
        }
        for tx in &c.transactions {
            if self.engine_record.is_some_and(|is_record| is_record(tx)) {
                continue;
            }
            let d = Digest::of(tx);
            let Some(sent) = self.submitted.get(&d).copied() else {
                self.violation(format!(
                    "validity: {node} committed a transaction nobody submitted at seq {}",
                    c.seq
                ));
                continue;
            };
            match self.placed.get(&d) {
                Some(s) if *s != c.seq => {
                    let msg = format!(
                        "no duplicates: transaction committed at seq {s} and at seq {}",
                        c.seq
                    );
                    self.violation(msg);
                }
                Some(_) => {}
                None => {
                    self.placed.insert(d, c.seq);
                }
            }
            if self.committed_by.insert((d, node)) {
                *self.commit_count.entry(d).or_default() += 1;
            }
            self.latencies.push(now.since(sent).as_micros() as u64);
        }
    }

    /// Honest node `node` signed statement `key` asserting `digest` (statements of
    /// other nodes are ignored).
    pub fn on_statement(&mut self, node: NodeId, key: StatementKey, digest: Digest) {
        if !self.honest[node.index()] {
            return;
        }
        // Compared with the first statement under this key, so that one
        // contradiction is reported once, not at every repeat.
        let first = *self.statements[node.index()].entry(key).or_insert(digest);
        if first != digest {
            self.violation(format!(
                "{node} contradicted itself: {key:?} {first:?} then {digest:?}"
            ));
        }
    }

    /// Whether every submitted transaction was committed by every node in `expected`.
    pub fn all_committed_by(&self, expected: usize) -> bool {
        self.submitted
            .keys()
            .all(|d| self.commit_count.get(d).copied().unwrap_or(0) >= expected)
    }

    /// Highest sequence number committed by any honest node.
    pub fn decisions(&self) -> Seq {
        self.height
            .iter()
            .zip(&self.honest)
            .filter(|(_, h)| **h)
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(0)
    }

    /// Number of transactions submitted.
    pub fn submitted(&self) -> usize {
        self.submitted.len()
    }

    /// Number of distinct transactions committed.
    pub fn committed_transactions(&self) -> usize {
        self.placed.len()
    }
}
