use dwcp_consensus::sim::{run_engine, scenario, EngineKind};

#[test]
fn smoke() {
    for b in std::env::var("B").unwrap().split(',') {
        for seed in 0..std::env::var("S")
            .map(|s| s.parse().unwrap())
            .unwrap_or(4u64)
        {
            let cfg = scenario(4, 1, b, seed).unwrap();
            let t = std::time::Instant::now();
            let r = run_engine(EngineKind::Pbft, cfg);
            println!("{b} seed {seed}: dec {} live {} viol {:?} msgs {} p50 {} p99 {} vc {} crashes {} events {} tx {}/{} {:?}", r.decisions, r.live, r.violations, r.messages, r.latency_p50_ms, r.latency_p99_ms, r.view_changes, r.crashes, r.events, r.transactions_committed, r.transactions_submitted, t.elapsed());
            if !r.live {
                println!("  {:?}", r.node_status);
            }
        }
    }
}
