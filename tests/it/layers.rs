//! The crate's layers, read from its source: a module names only modules of
//! its own layer or below (model → engines → core → front doors), and the
//! front doors reach the rest of the crate only through the core.

use std::path::{Path, PathBuf};

/// A top-level module and its layer: 0 the model, 1 and 2 the engines
/// (2 may use 1), 3 the core, 4 the front doors in the library.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("lockfile", 1),
    ("untrusted", 1),
    ("watch", 1),
    ("config", 1),
    ("coords", 1),
    ("events", 1),
    ("store", 1),
    ("delivery", 2),
    ("backup", 2),
    ("cluster", 2),
    ("launch", 2),
    ("app", 3),
    ("service", 4),
    ("discord", 4),
    ("http", 4),
    ("mcp", 4),
    ("hook", 4),
];

/// What a front door may name besides itself: the core and the model (and
/// the service runs the Discord bot and the HTTP server as its tasks).
fn door_may_use(door: &str, name: &str) -> bool {
    name == door
        || ["app", "model"].contains(&name)
        || (door == "service" && ["discord", "http"].contains(&name))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `PREFIX::NAME` a text mentions (in `use` lines and paths alike).
fn refs(text: &str, prefix: &str) -> Vec<String> {
    let needle = format!("{prefix}::");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.push(
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect(),
        );
    }
    out
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_owned());
        return;
    }
    for entry in std::fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files of a top-level module: `src/NAME.rs` or `src/NAME/`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in [src().join(format!("{module}.rs")), src().join(module)] {
        if path.exists() {
            rust_files(&path, &mut files);
        }
    }
    assert!(!files.is_empty(), "no source for module {module}");
    files
}

fn rank(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

#[test]
fn every_module_names_only_its_own_layer_or_below() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut wrong = Vec::new();
    for (module, layer) in LAYERS {
        assert!(
            lib.contains(&format!("mod {module};")),
            "lib.rs declares no module {module}"
        );
        for file in files_of(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for name in refs(&text, "crate") {
                let allowed = if *layer == 4 {
                    door_may_use(module, &name)
                } else {
                    rank(&name).is_some_and(|r| r <= *layer)
                };
                if !allowed {
                    wrong.push(format!("{} (layer {layer}): crate::{name}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that reach up or around the core: {wrong:#?}"
    );
}

#[test]
fn every_library_module_has_a_layer() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    for line in lib.lines() {
        let Some(name) = line
            .trim()
            .strip_prefix("pub mod ")
            .or_else(|| line.trim().strip_prefix("mod "))
        else {
            continue;
        };
        let name = name.trim_end_matches(';');
        assert!(
            rank(name).is_some(),
            "module {name} has no layer in this test"
        );
    }
}

#[test]
fn the_command_line_lives_in_the_binary_and_uses_only_the_core() {
    let mut files = vec![src().join("main.rs")];
    rust_files(&src().join("cli"), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for name in refs(&text, "acp") {
            if !["app", "model", "service", "discord", "mcp", "hook"].contains(&name.as_str()) {
                wrong.push(format!("{}: acp::{name}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the CLI reaches past the core: {wrong:#?}"
    );
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    assert!(!lib.contains("mod cli"), "the CLI is in the library");
}

#[test]
fn engines_get_their_own_settings_not_the_whole_config() {
    let mut wrong = Vec::new();
    for module in [
        "delivery", "backup", "store", "events", "coords", "lockfile",
    ] {
        for file in files_of(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            if text.contains("config::Config") || text.contains("&Config") {
                wrong.push(file.display().to_string());
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "engines that take the whole Config: {wrong:#?}"
    );
}

#[test]
fn the_front_doors_hold_no_sql_and_no_store() {
    let mut files = Vec::new();
    rust_files(&src().join("cli"), &mut files);
    rust_files(&src().join("discord"), &mut files);
    files.push(src().join("service.rs"));
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in [
            "SELECT ", "INSERT ", "UPDATE ", "rusqlite", "Store::", "<Store>", ".store()",
        ] {
            assert!(
                !text.contains(needle),
                "{} contains {needle:?}",
                file.display()
            );
        }
    }
}

#[test]
fn refs_finds_every_path_and_only_whole_names() {
    let text = "use crate::store::Store;\nlet x = crate::config::Config::defaults();\nmy_crate::no";
    assert_eq!(refs(text, "crate"), ["store", "config"]);
}
