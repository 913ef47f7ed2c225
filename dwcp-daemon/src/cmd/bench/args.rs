//! The arguments of `dwcpd bench`, with Narwhal's node parameters by name.

use crate::engine_params::EngineParam;
use clap::Args;
use dwcp_consensus::registry::{thousands, BenchParams};
use std::time::Duration;

/// Arguments of `dwcpd bench`. Node parameters carry Narwhal's names and units;
/// an engine uses those that mean something to it and lists the rest as unused.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Engine to measure.
    #[arg(long, default_value = "pbft")]
    pub engine: String,
    /// Run the nodes as threads of this process over an in-memory network, instead
    /// of as `dwcpd run` processes on loopback.
    #[arg(long)]
    pub in_process: bool,
    /// Committee size.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Transactions per second offered in total, over all clients.
    #[arg(long, default_value_t = 50_000)]
    pub rate: u64,
    /// Transaction size in bytes (at least 16).
    #[arg(long, default_value_t = 512)]
    pub tx_size: usize,
    /// How long the load runs ("20" is seconds; "90s", "2m", "500ms" also parse).
    #[arg(long, default_value = "20", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Narwhal: workers per node.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Narwhal: a worker's batch size in bytes. PBFT: bytes per pre-prepare (its
    /// batch holds this many bytes' worth of transactions of `tx_size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Narwhal: longest wait before sealing a worker batch ("200" is ms).
    #[arg(long, value_parser = parse_millis)]
    pub max_batch_delay: Option<Duration>,
    /// Narwhal: header size in bytes (digests of batches per header).
    #[arg(long)]
    pub header_size: Option<usize>,
    /// Narwhal: longest wait before a primary proposes a header ("200" is ms).
    #[arg(long, value_parser = parse_millis)]
    pub max_header_delay: Option<Duration>,
    /// Narwhal: rounds of the DAG kept before garbage collection.
    #[arg(long)]
    pub gc_depth: Option<u64>,
    /// Narwhal: delay before re-requesting missing data ("10000" is ms).
    #[arg(long, value_parser = parse_millis)]
    pub sync_retry_delay: Option<Duration>,
    /// Narwhal: nodes asked when re-requesting missing data.
    #[arg(long)]
    pub sync_retry_nodes: Option<usize>,
    /// Narwhal/Bullshark: leader timeout ("1000" is ms). PBFT: view-change timeout.
    #[arg(long, value_parser = parse_millis)]
    pub timeout_delay: Option<Duration>,
    /// Sets a field of the engine's config table, over what the options above
    /// give it (repeatable; dotted names reach nested tables), such as
    /// `--param committee_size=4` for T-PBFT.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<EngineParam>,
}

impl BenchArgs {
    /// The node parameters given on the command line, as (Narwhal name, value).
    pub fn given_node_parameters(&self) -> Vec<(&'static str, String)> {
        let bytes = |v: usize| format!("{} B", thousands(v as u64));
        let ms = |d: Duration| format!("{} ms", thousands(d.as_millis() as u64));
        let mut out = Vec::new();
        let mut add = |name, value: Option<String>| {
            if let Some(v) = value {
                out.push((name, v));
            }
        };
        add("workers", self.workers.map(|w| w.to_string()));
        add("batch_size", self.batch_size.map(bytes));
        add("max_batch_delay", self.max_batch_delay.map(ms));
        add("header_size", self.header_size.map(bytes));
        add("max_header_delay", self.max_header_delay.map(ms));
        add("gc_depth", self.gc_depth.map(|g| g.to_string()));
        add("sync_retry_delay", self.sync_retry_delay.map(ms));
        add(
            "sync_retry_nodes",
            self.sync_retry_nodes.map(|n| n.to_string()),
        );
        add("timeout_delay", self.timeout_delay.map(ms));
        out
    }

    /// The node parameters for the engine's [`dwcp_consensus::registry::Protocol::bench_config`].
    pub fn node_params(&self) -> BenchParams {
        BenchParams {
            tx_size: self.tx_size,
            workers: self.workers,
            batch_size: self.batch_size,
            max_batch_delay: self.max_batch_delay,
            header_size: self.header_size,
            max_header_delay: self.max_header_delay,
            gc_depth: self.gc_depth,
            sync_retry_delay: self.sync_retry_delay,
            timeout_delay: self.timeout_delay,
        }
    }

    /// Node parameters given on the command line that `uses` (an engine's
    /// [`dwcp_consensus::registry::Protocol::BENCH_USES`]) leaves out.
    pub fn unused(&self, uses: &[&str]) -> Vec<(&'static str, String)> {
        self.given_node_parameters()
            .into_iter()
            .filter(|(name, _)| !uses.contains(name))
            .collect()
    }
}

/// Parses a duration: a number with a unit (`ms`, `s`, `m`, `h`; decimals allowed),
/// or a bare number in `default_unit_ms` milliseconds.
pub fn parse_duration(text: &str, default_unit_ms: f64) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 200ms, 1s or 2m"))?;
    let unit_ms = match unit.trim() {
        "" => default_unit_ms,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        other => return Err(format!("unknown unit {other:?} in {text:?} (ms, s, m, h)")),
    };
    let ms = value * unit_ms;
    if !ms.is_finite() || ms > 1e12 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_micros((ms * 1_000.0).round() as u64))
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    parse_duration(text, 1_000.0)
}

fn parse_millis(text: &str) -> Result<Duration, String> {
    parse_duration(text, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_or_a_default_unit() {
        let ms = |t| parse_millis(t).map(|d| d.as_micros());
        let s = |t| parse_seconds(t).map(|d| d.as_micros());
        assert_eq!(ms("200ms"), Ok(200_000));
        assert_eq!(ms("200"), Ok(200_000));
        assert_eq!(ms("1s"), Ok(1_000_000));
        assert_eq!(ms("1.5s"), Ok(1_500_000));
        assert_eq!(s("20"), Ok(20_000_000));
        assert_eq!(s("2m"), Ok(120_000_000));
        assert_eq!(s(" 500ms "), Ok(500_000));
        assert!(ms("fast").is_err());
        assert!(ms("10 parsecs").is_err());
        assert!(ms("").is_err());
    }
}
