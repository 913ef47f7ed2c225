//! `dwcpd probft-params` end to end: the cheapest accepted setting and its table,
//! the default f_max, and the refusal at f_max = ⌊(n − 1)/3⌋.

use std::process::Command;

fn dwcpd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dwcpd"))
        .args(args)
        .output()
        .expect("run dwcpd")
}

#[test]
fn prints_the_cheapest_setting_and_a_table_around_it() {
    let out = dwcpd(&["probft-params", "--nodes", "400", "--f-max", "80"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("n = 400, f_max = 80"), "{stdout}");
    assert!(
        stdout.contains("cheapest accepted: l = 2.7, o = 1.5 (q = 54, s = 81): 65199 messages per decision, 0.204 of PBFT's 319599"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.ends_with("verdict"))
        .skip(1)
        .collect();
    // Three cheaper rows that fail, the cheapest, three dearer ones, and l = o = 2.
    assert_eq!(rows.len(), 8, "{stdout}");
    assert!(rows[..3].iter().all(|r| r.contains("too")), "{stdout}");
    assert!(rows[3].contains("<- cheapest"), "{stdout}");
    assert!(rows[3].contains(" 54    81 "), "{stdout}");
    let note = rows[7];
    assert!(note.contains("(the design note's l = o = 2)"), "{stdout}");
    assert!(note.contains(" 40    80 "), "{stdout}");
}

#[test]
fn f_max_defaults_to_a_fifth() {
    let out = dwcpd(&["probft-params", "--nodes", "100"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("n = 100, f_max = 20"), "{stdout}");
    assert!(
        stdout.contains("l = 3.3, o = 1.5 (q = 33, s = 50)"),
        "{stdout}"
    );
}

#[test]
fn a_third_never_passes() {
    let out = dwcpd(&["probft-params", "--nodes", "100", "--f-max", "33"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in ["no l in [1, 8]", "safety risk", "decides", "lower f_max"] {
        assert!(stderr.contains(needle), "{needle:?} missing in {stderr}");
    }
    let out = dwcpd(&["probft-params", "--nodes", "100", "--eps", "2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("eps_safe = 2 is out of range"));
}
