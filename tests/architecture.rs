//! The layer rule of docs/architecture.md, checked on the source: a module may use only
//! modules below its own layer, and leaves (config, metrics, auth, limits, telemetry, supervisor) use no
//! module above them. A new `use` that points upwards fails here, naming the file.

use std::collections::BTreeSet;
use std::path::Path;

/// Layers from the top; a module may use modules in later layers only.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["bench", "server"],
    &["client"],
    &["http", "scheduler"],
    &["github"],
    &["error"],
    &["app"],
    &["report_batch"],
    &["liveness", "long_poll", "store"],
    &["wire"],
    &["domain"],
];

/// Modules anyone may use; they use nothing of the crate but `config`.
const LEAVES: &[&str] = &[
    "telemetry",
    "auth",
    "metrics",
    "config",
    "limits",
    "supervisor",
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The crate modules a source file names: `crate::x` and `crate::{x, y::z}`.
fn used_modules(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in src.match_indices("crate::") {
        let rest = &src[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end].split(',').collect()
        } else {
            vec![rest]
        };
        for n in names {
            let ident: String = n
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                out.insert(ident);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut wrong = vec![];
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for used in used_modules(&text) {
            if used == module {
                continue;
            }
            let allowed = if LEAVES.contains(&module.as_str()) {
                used == "config"
            } else if LEAVES.contains(&used.as_str()) {
                true
            } else {
                let from = layer(&module).unwrap_or_else(|| panic!("{module} has no layer"));
                let to = layer(&used).unwrap_or_else(|| panic!("{used} has no layer"));
                to > from
            };
            if !allowed {
                wrong.push(format!("{}: {module} uses {used}", rel.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "layer rule broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_scanner_sees_grouped_and_plain_uses() {
    let found = used_modules("use crate::{http, store::x};\nlet a = crate::metrics::f();");
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["http", "metrics", "store"]
    );
}

/// Repository paths a document names: `src/…`, `tests/…`, `scripts/…`, `migrations/…`,
/// `docs/…`, `deploy/…`, `helm/…`, `assets/…`, `examples/…` (a trailing `/` names a
/// directory; `…` and `*` placeholders are skipped).
fn named_paths(text: &str) -> Vec<String> {
    const ROOTS: &[&str] = &[
        "src/",
        "tests/",
        "scripts/",
        "migrations/",
        "docs/",
        "deploy/",
        "helm/",
        "assets/",
        "examples/",
    ];
    let mut out = Vec::new();
    for (i, _) in text.char_indices() {
        let rest = &text[i..];
        let starts_word = i == 0
            || !text[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-'));
        if !starts_word || !ROOTS.iter().any(|r| rest.starts_with(r)) {
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-'))
            .collect();
        let path = path.trim_end_matches(['.', ',']).to_string();
        if path.contains("...") || rest[path.len()..].starts_with(['…', '*', '{', '<']) {
            continue;
        }
        out.push(path);
    }
    out
}

#[test]
fn every_path_the_documents_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            docs.push(p);
        }
    }
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for path in named_paths(&text) {
            if !root.join(&path).exists() {
                missing.push(format!(
                    "{} names {path}",
                    doc.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "stale paths:\n{}", missing.join("\n"));
}

#[test]
fn the_path_scanner_reads_paths_in_prose_and_code() {
    let text = "see `src/store/claim.rs`, src/http/ and (docs/invariants.md). A url \
                https://x/src/nope.rs and my-src/x are not ours; src/… is a placeholder.";
    assert_eq!(
        named_paths(text),
        ["src/store/claim.rs", "src/http/", "docs/invariants.md"]
    );
}

/// Status classes are said by name in SQL (`task_is_live(status)`, migration
/// `status_classes`), never spelled out as a list that can drift from the domain.
#[test]
fn no_statement_spells_a_status_list_out() {
    let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut files = vec![];
    rust_files(&store, &mut files);
    files.push(store.join("invariants.sql"));
    let mut found = vec![];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap().to_lowercase();
        for (i, _) in text.match_indices("status") {
            let rest = text[i + "status".len()..].trim_start();
            let rest = rest.strip_prefix("not").map_or(rest, str::trim_start);
            if let Some(list) = rest.strip_prefix("in") {
                if list.trim_start().starts_with("('") {
                    let line = text[..i].lines().count();
                    found.push(format!("{}:{line}", file.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "status lists spelled out (use the class functions):\n{}",
        found.join("\n")
    );
}

/// Every statement lives in `store` (the service's) or `bench/sql` (the benchmarks'
/// scratch data): nothing else speaks SQL.
#[test]
fn only_the_store_and_the_benchmarks_sql_speak_sql() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let speaking: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(src.join("store")) && !f.starts_with(src.join("bench/sql")))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            [
                "sqlx::query",
                "query!(",
                "query_as!(",
                "query_scalar!(",
                "query_file",
            ]
            .iter()
            .any(|m| text.contains(m))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(speaking.is_empty(), "SQL outside the store: {speaking:?}");
}

/// Functions stay short enough to read whole: at most `MAX_FN_LINES` lines of code (blank
/// and comment lines aside), except the tables named here, which are long lists of one
/// kind of line each.
#[test]
fn no_function_is_longer_than_a_screen() {
    const MAX_FN_LINES: usize = 80;
    const TABLES: &[&str] = &[
        "src/http/mod.rs::router",     // the route table
        "src/metrics.rs::describe",    // every metric's help text
        "src/config/mod.rs::validate", // one range check per setting
        "src/error.rs::body",          // every error's answer
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut long = vec![];
    for file in files {
        let rel = format!("src/{}", file.strip_prefix(&src).unwrap().display());
        for (name, lines) in function_lengths(&std::fs::read_to_string(&file).unwrap()) {
            let key = format!("{rel}::{name}");
            if lines > MAX_FN_LINES && !TABLES.contains(&key.as_str()) {
                long.push(format!("{key}: {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// Each function's name and its lines of code, read from rustfmt's layout: a function
/// ends at the first `}` at its own indentation.
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let sig = [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ]
        .iter()
        .fold(trimmed, |t, p| t.strip_prefix(p).unwrap_or(t));
        let Some(rest) = sig.strip_prefix("fn ") else {
            continue;
        };
        if trimmed.ends_with(';') {
            continue; // a declaration without a body
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{}}}", " ".repeat(indent));
        let Some(end) = (i + 1..lines.len()).find(|&j| lines[j] == close) else {
            continue; // a declaration without a body
        };
        let code = lines[i..=end]
            .iter()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
            .count();
        out.push((name, code));
    }
    out
}

#[test]
fn the_length_scanner_counts_code_lines_of_each_function() {
    let text = "fn a() {\n    // why\n\n    x();\n}\n\n    pub async fn b(\n        y: u8,\n    ) {\n        z();\n    }\n";
    assert_eq!(
        function_lengths(text),
        vec![("a".to_string(), 3), ("b".to_string(), 5)]
    );
}
