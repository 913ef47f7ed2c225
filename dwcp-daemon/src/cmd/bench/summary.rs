//! What a benchmark run measured, and the summary in the layout of Narwhal's
//! `fab` harness (` Consensus TPS: 46,478 tx/s` and so on), with its definitions:
//!
//! - consensus TPS: committed transaction bytes / tx size / (last commit − first
//!   proposal); consensus latency: mean of commit time − proposal time of the
//!   engine's proposals;
//! - end-to-end TPS: committed transactions / (last commit − first client send);
//!   end-to-end latency: mean of commit time of a sample − its send time.
//!
//! Commits are counted once, from node 0's log.

use super::args::BenchArgs;
use super::load::LoadTotals;
use std::fmt::Write;

/// Where the consensus latency figure comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsensusLatency {
    /// Proposal-to-commit samples, in seconds, straight from the drivers.
    Samples(Vec<f64>),
    /// The `dwcp_consensus_commit_latency_seconds` histograms of all nodes, summed.
    Histogram {
        /// Sum of the observations, seconds.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

/// The measurements of one run. Times are seconds since the run's origin (the
/// moment the load started).
#[derive(Debug, Clone)]
pub struct Report {
    /// How the nodes ran.
    pub mode: String,
    /// Transactions node 0 committed during the load.
    pub committed_tx: u64,
    /// Their bytes.
    pub committed_bytes: u64,
    /// The first proposal of any node that committed.
    pub first_proposal: Option<f64>,
    /// How `first_proposal` was obtained, if not directly.
    pub first_proposal_note: Option<String>,
    /// The first transaction a client sent.
    pub first_send: Option<f64>,
    /// The last commit at node 0 during the load.
    pub last_commit: Option<f64>,
    /// Proposal-to-commit latency.
    pub consensus: ConsensusLatency,
    /// Send-to-commit latency of each committed sample, seconds.
    pub end_to_end: Vec<f64>,
    /// What the clients sent.
    pub load: LoadTotals,
    /// Further lines (memory, per-node heights).
    pub notes: Vec<String>,
}

pub use dwcp_consensus::registry::thousands;

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    })
}

fn rate(amount: f64, from: Option<f64>, to: Option<f64>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) if b > a => amount / (b - a),
        _ => 0.0,
    }
}

fn ms(seconds: Option<f64>) -> String {
    thousands((seconds.unwrap_or(0.0) * 1000.0).round().max(0.0) as u64)
}

/// The memory of a process from `/proc/<pid>/status` (`None`: this process):
/// (resident now, peak resident), in KiB. `None` where `/proc` is not there.
pub fn memory_kib(pid: Option<u32>) -> Option<(u64, u64)> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// `(rss, peak)` in KiB as a phrase in MiB.
pub fn memory_phrase((rss, peak): (u64, u64)) -> String {
    format!(
        "{:.1} MiB resident, peak {:.1} MiB",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    )
}

/// What the summary says about the engine measured.
pub struct EngineSummary {
    /// Its name.
    pub name: &'static str,
    /// Its parameters in effect, one per line.
    pub parameters: Vec<String>,
    /// Node parameters given that it does not use, as (name, value).
    pub unused: Vec<(&'static str, String)>,
}

/// The summary text.
pub fn render(args: &BenchArgs, engine: &EngineSummary, r: &Report) -> String {
    let mut o = String::new();
    let rule = "-----------------------------------------";
    let tx_size = args.tx_size as f64;
    let _ = writeln!(o, "{rule}\n SUMMARY:\n{rule}\n + CONFIG:");
    let _ = writeln!(o, " Engine: {}", engine.name);
    let _ = writeln!(o, " Mode: {}", r.mode);
    let _ = writeln!(o, " Committee size: {} node(s)", args.nodes);
    let _ = writeln!(o, " Input rate: {} tx/s", thousands(args.rate));
    let _ = writeln!(o, " Transaction size: {} B", thousands(args.tx_size as u64));
    let _ = writeln!(
        o,
        " Execution time: {} s",
        thousands(args.duration.as_secs_f64().round() as u64)
    );
    for line in &engine.parameters {
        let _ = writeln!(o, " {line}");
    }
    if !engine.unused.is_empty() {
        let list: Vec<String> = engine
            .unused
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        let _ = writeln!(o, " Unused by {}: {}", engine.name, list.join(", "));
    }

    let _ = writeln!(o, "\n + RESULTS:");
    let _ = writeln!(
        o,
        " Transactions sent: {} ({} refused or undelivered)",
        thousands(r.load.sent),
        thousands(r.load.refused)
    );
    if r.load.late_bursts > 0 {
        let _ = writeln!(
            o,
            " WARNING: rate too high for the clients: {} of {} bursts missed the 50 ms schedule",
            thousands(r.load.late_bursts),
            thousands(r.load.bursts)
        );
    }
    let _ = writeln!(
        o,
        " Committed transactions: {} (node 0)",
        thousands(r.committed_tx)
    );
    let bytes = r.committed_bytes as f64;
    let c_window = (r.first_proposal, r.last_commit);
    let _ = writeln!(
        o,
        " Consensus TPS: {} tx/s",
        thousands(rate(bytes / tx_size, c_window.0, c_window.1).round() as u64)
    );
    let _ = writeln!(
        o,
        " Consensus BPS: {} B/s",
        thousands(rate(bytes, c_window.0, c_window.1).round() as u64)
    );
    match &r.consensus {
        ConsensusLatency::Samples(s) => {
            let _ = writeln!(o, " Consensus latency: {} ms", ms(mean(s)));
            let _ = writeln!(o, " Consensus latency median: {} ms", ms(median(s)));
            let _ = writeln!(
                o,
                " Consensus latency samples: {} proposals",
                thousands(s.len() as u64)
            );
        }
        ConsensusLatency::Histogram { sum, count } => {
            let m = (*count > 0).then(|| sum / *count as f64);
            let _ = writeln!(o, " Consensus latency: {} ms", ms(m));
            let _ = writeln!(
                o,
                " Consensus latency source: mean (sum/count) of dwcp_consensus_commit_latency_seconds in /metrics of all nodes, {} proposals; no median",
                thousands(*count)
            );
        }
    }
    if let Some(note) = &r.first_proposal_note {
        let _ = writeln!(o, " First proposal: {note}");
    }
    let e_window = (r.first_send, r.last_commit);
    let _ = writeln!(
        o,
        "\n End-to-end TPS: {} tx/s",
        thousands(rate(r.committed_tx as f64, e_window.0, e_window.1).round() as u64)
    );
    let _ = writeln!(
        o,
        " End-to-end BPS: {} B/s",
        thousands(rate(bytes, e_window.0, e_window.1).round() as u64)
    );
    let _ = writeln!(o, " End-to-end latency: {} ms", ms(mean(&r.end_to_end)));
    let _ = writeln!(
        o,
        " End-to-end latency median: {} ms",
        ms(median(&r.end_to_end))
    );
    let _ = writeln!(
        o,
        " End-to-end latency samples: {} committed samples",
        thousands(r.end_to_end.len() as u64)
    );
    for n in &r.notes {
        let _ = writeln!(o, " {n}");
    }
    let _ = writeln!(o, "{rule}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_narwhals_definitions() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(46_478), "46,478");
        assert_eq!(thousands(23_796_531), "23,796,531");
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));

        let args = BenchArgs {
            engine: "pbft".into(),
            in_process: true,
            nodes: 4,
            rate: 1000,
            tx_size: 100,
            duration: std::time::Duration::from_secs(10),
            workers: Some(1),
            batch_size: None,
            max_batch_delay: None,
            header_size: Some(1000),
            max_header_delay: None,
            gc_depth: None,
            sync_retry_delay: None,
            sync_retry_nodes: None,
            timeout_delay: None,
            params: Vec::new(),
        };
        let engine = EngineSummary {
            name: "pbft",
            parameters: vec!["Batch size: 10 transactions per pre-prepare".into()],
            unused: args.unused(&["batch_size", "timeout_delay"]),
        };
        let report = Report {
            mode: "test".into(),
            committed_tx: 9_000,
            committed_bytes: 900_000,
            first_proposal: Some(1.0),
            first_proposal_note: None,
            first_send: Some(0.5),
            last_commit: Some(10.0),
            consensus: ConsensusLatency::Samples(vec![0.010, 0.020, 0.060]),
            end_to_end: vec![0.1, 0.3],
            load: LoadTotals {
                sent: 10_000,
                bursts: 800,
                ..LoadTotals::default()
            },
            notes: vec!["Peak RSS: 1 MiB".into()],
        };
        let text = render(&args, &engine, &report);
        // 900,000 B / 100 B over 9 s; 9,000 tx over 9.5 s.
        for line in [
            " Consensus TPS: 1,000 tx/s\n",
            " Consensus BPS: 100,000 B/s\n",
            " Consensus latency: 30 ms\n",
            " Consensus latency median: 20 ms\n",
            " End-to-end TPS: 947 tx/s\n",
            " End-to-end latency: 200 ms\n",
            " Unused by pbft: workers = 1, header_size = 1,000 B\n",
            " Peak RSS: 1 MiB\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("WARNING"));
    }

    #[test]
    fn this_process_has_a_resident_size() {
        if let Some((rss, peak)) = memory_kib(None) {
            assert!(rss > 0 && peak >= rss);
        }
    }
}
