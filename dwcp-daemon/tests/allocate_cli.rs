//! End-to-end checks of `dwcpd allocate`: a tiny training run writes a loadable model,
//! and `eval --json` ends with one JSON object holding every allocator.

use std::process::Command;

fn dwcpd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dwcpd"))
}

#[test]
fn train_writes_a_model_that_eval_loads_and_json_is_the_last_line() {
    let dir = std::env::temp_dir().join(format!("dwcpd-allocate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let model = dir.join("m.json");
    let out = dwcpd()
        .args([
            "allocate",
            "train",
            "--episodes",
            "1",
            "--restarts",
            "1",
            "--out",
        ])
        .arg(&model)
        .output()
        .expect("run dwcpd");
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(model.exists());

    let out = dwcpd()
        .args([
            "allocate",
            "eval",
            "--seeds",
            "1",
            "--latency-nodes",
            "10",
            "--json",
            "--model",
        ])
        .arg(&model)
        .output()
        .expect("run dwcpd");
    assert!(
        out.status.success(),
        "eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("some output");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    for name in [
        "maddpg",
        "random",
        "round-robin",
        "first-fit-decreasing",
        "best-fit-decreasing",
        "drf",
        "tetris",
    ] {
        let a = &v["allocators"][name];
        for k in [
            "sla_compliance",
            "mean_utilisation",
            "rejected",
            "objective",
        ] {
            assert!(a[k]["mean"].is_number(), "{name}.{k} missing");
        }
    }
    assert!(v["improvement_vs_best_baseline_pct"].is_number());
    assert!(v["best_baseline"].is_string());
    assert!(v["allocate_p99_ms"].is_number());

    let truncated = dir.join("t.json");
    let bytes = std::fs::read(&model).expect("model");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let out = dwcpd()
        .args(["allocate", "eval", "--model"])
        .arg(&truncated)
        .output()
        .expect("run dwcpd");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupted or truncated"));
    let _ = std::fs::remove_dir_all(dir);
}
