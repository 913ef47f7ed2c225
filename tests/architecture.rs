//! The shape of the workspace, checked: no module of a crate imports another that
//! imports it back (directly or through others), the engines do not import the
//! simulator or the registry, the simulator names no engine, no library file of the
//! daemon imports a CLI command, and no source file grows past 700 lines unless it
//! is listed below with the reason.
//!
//! A module is a file (`mod.rs`, `lib.rs` and `main.rs` stand for their folder or
//! crate). Its imports are the `crate::`, `super::` and `self::` paths it names
//! outside its inline test module. A path to a name that a module only re-exports
//! (`pub use child::Name`) counts as an import of the module that defines it, so a
//! facade's re-exports are not circles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files allowed past 700 lines, and why.
const LONG_FILES: &[(&str, &str)] = &[(
    "dwcp-ml/src/compression/eval.rs",
    "one evaluation pass: measure, decide, score, report",
)];

const CRATES: &[&str] = &["dwcp-core", "dwcp-consensus", "dwcp-ml", "dwcp-daemon", "."];

type Module = Vec<String>;

struct Crate {
    /// Each module's source, without its inline tests.
    sources: BTreeMap<Module, String>,
    /// The file each module comes from.
    files: BTreeMap<Module, PathBuf>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The source without comments and without the inline `mod tests { .. }`.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_cfg_test = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        let opens = t.matches('{').count() as i32;
        let closes = t.matches('}').count() as i32;
        if skip_depth.is_none() && pending_cfg_test && t.starts_with("mod ") && t.ends_with('{') {
            skip_depth = Some(depth);
        }
        pending_cfg_test = t == "#[cfg(test)]" || (pending_cfg_test && t.starts_with("#["));
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn load(krate: &str) -> Crate {
    let src = root().join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut c = Crate {
        sources: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let m = module_of(&src, &f);
        c.sources.insert(m.clone(), code_of(&text));
        c.files.insert(m, f);
    }
    c
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or("").trim().to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// Every path a module's code names, from `use` items and inline `crate::` paths,
/// with whether it came from a `pub use`.
fn paths(code: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let at_item = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == ')');
        let public = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        let after = &rest[i + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if at_item {
            for p in expand(&after[..end]) {
                out.push((p.split_whitespace().collect::<String>(), public));
            }
        }
        rest = &after[end.min(after.len())..];
    }
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with("use ") {
            continue;
        }
        let tail: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push((tail, false));
    }
    out
}

/// The module a path names from module `from`, and the name after it, if any.
fn resolve(c: &Crate, from: &Module, path: &str) -> Option<(Module, Option<String>)> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (mut base, rest): (Module, &[&str]) = match segs.first() {
        Some(&"crate") => (Vec::new(), &segs[1..]),
        Some(&"super") => {
            let mut b = from.clone();
            let mut k = 0;
            while segs.get(k) == Some(&"super") {
                b.pop();
                k += 1;
            }
            (b, &segs[k..])
        }
        Some(&"self") => (from.clone(), &segs[1..]),
        Some(first) => {
            // A child module of `from` named without `self::`.
            let mut m = from.clone();
            m.push(first.to_string());
            if !c.sources.contains_key(&m) {
                return None;
            }
            (from.clone(), &segs[..])
        }
        None => return None,
    };
    let mut name = None;
    for s in rest {
        let mut next = base.clone();
        next.push(s.to_string());
        if c.sources.contains_key(&next) {
            base = next;
        } else {
            name = Some(s.to_string());
            break;
        }
    }
    Some((base, name))
}

/// Import edges between modules of one crate (self and child-to-ancestor edges
/// through re-exports resolved to the defining module).
fn edges(c: &Crate) -> BTreeMap<Module, BTreeSet<Module>> {
    // Names each module re-exports, and from where.
    let mut reexports: BTreeMap<(Module, String), Module> = BTreeMap::new();
    for (m, code) in &c.sources {
        for (p, public) in paths(code) {
            if !public {
                continue;
            }
            if let Some((target, Some(name))) = resolve(c, m, &p) {
                if target != *m {
                    reexports.insert((m.clone(), name), target);
                }
            }
        }
    }
    let mut out: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, code) in &c.sources {
        for (p, public) in paths(code) {
            let Some((mut target, name)) = resolve(c, m, &p) else {
                continue;
            };
            // Follow re-exports to the module that defines the name.
            let mut hops = 0;
            while let Some(n) = &name {
                match reexports.get(&(target.clone(), n.clone())) {
                    Some(t) if hops < 8 => {
                        target = t.clone();
                        hops += 1;
                    }
                    _ => break,
                }
            }
            // A facade's own `pub use` of its children is its shape, not a use.
            if public && target.starts_with(m) {
                continue;
            }
            if target != *m {
                out.entry(m.clone()).or_default().insert(target);
            }
        }
    }
    out
}

fn cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        g: &BTreeMap<Module, BTreeSet<Module>>,
        m: &Module,
        state: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for n in g.get(m).into_iter().flatten() {
            match state.get(n) {
                Some(1) => {
                    let at = stack.iter().position(|x| x == n).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(n.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(g, n, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if !state.contains_key(m) {
            if let Some(c) = visit(graph, m, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn show(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_crate_has_an_import_circle() {
    for krate in CRATES {
        let c = load(krate);
        if let Some(cy) = cycle(&edges(&c)) {
            let shown: Vec<String> = cy.iter().map(show).collect();
            panic!("{krate}: import circle {}", shown.join(" -> "));
        }
    }
}

#[test]
fn the_checker_finds_a_circle_when_there_is_one() {
    let mut c = Crate {
        sources: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    let m = |s: &str| s.split('/').map(String::from).collect::<Module>();
    c.sources
        .insert(Vec::new(), "pub mod a;\npub mod b;\n".into());
    c.sources
        .insert(m("a"), "use crate::b::{B, x::Y};\n".into());
    c.sources
        .insert(m("b"), "pub mod x;\npub use x::Y;\n".into());
    c.sources
        .insert(m("b/x"), "fn f() { let _ = crate::a::A; }\n".into());
    let cy = cycle(&edges(&c)).expect("a -> b/x -> a");
    assert!(cy.contains(&m("a")) && cy.contains(&m("b/x")), "{cy:?}");
    // Without the back edge: none, though `b` re-exports from `b::x`.
    c.sources.insert(m("b/x"), "pub struct Y;\n".into());
    assert_eq!(cycle(&edges(&c)), None);
}

/// Modules of `krate` under `under` that import a module under `forbidden`.
fn imports_between(krate: &str, under: &[&str], forbidden: &[&str]) -> Vec<String> {
    let c = load(krate);
    let mut bad = Vec::new();
    for (m, targets) in edges(&c) {
        if !under.iter().any(|u| m.first().is_some_and(|f| f == u)) {
            continue;
        }
        for t in targets {
            if forbidden.iter().any(|f| t.first().is_some_and(|x| x == f)) {
                bad.push(format!("{} imports {}", show(&m), show(&t)));
            }
        }
    }
    bad
}

#[test]
fn engines_do_not_import_the_simulator_and_the_simulator_names_no_engine() {
    let engines = ["pbft", "bullshark"];
    let bad = imports_between("dwcp-consensus", &engines, &["sim", "registry"]);
    assert!(bad.is_empty(), "{bad:?}");
    let bad = imports_between("dwcp-consensus", &["sim"], &engines);
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn no_library_file_of_the_daemon_imports_a_command() {
    let c = load("dwcp-daemon");
    for (m, targets) in edges(&c) {
        if m.is_empty() || m.first().is_some_and(|f| f == "cmd") {
            continue; // main.rs and the commands themselves
        }
        for t in targets {
            assert!(
                t.first().is_none_or(|f| f != "cmd"),
                "{} imports {}",
                show(&m),
                show(&t)
            );
        }
    }
}

#[test]
fn no_source_file_is_past_700_lines_without_a_reason() {
    let mut long = Vec::new();
    for krate in CRATES {
        let c = load(krate);
        for f in c.files.values() {
            let lines = std::fs::read_to_string(f)
                .expect("readable")
                .lines()
                .count();
            let rel = f
                .strip_prefix(root())
                .expect("in the workspace")
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            if lines > 700 && !LONG_FILES.iter().any(|(p, _)| *p == rel) {
                long.push(format!("{rel}: {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these, or list them with a reason: {long:?}"
    );
}
