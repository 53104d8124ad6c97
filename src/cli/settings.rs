//! `acp config show`: every setting in effect and where it came from.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Map, Value, json};

use acp::app::{Config, Origin, Setting};

use super::{Cli, collect_env, root_of};

/// Whether `--root` was given on the command line (clap takes `ACP_ROOT`
/// for it too).
fn root_flag_given() -> bool {
    std::env::args_os().any(|a| {
        let a = a.to_string_lossy();
        a == "--root" || a.starts_with("--root=")
    })
}

/// Where the root came from: `--root`, `ACP_ROOT`, or found from the
/// current directory.
fn root_setting(root: &std::path::Path) -> Setting {
    let origin = if root_flag_given() {
        Origin::Flag {
            flag: "--root".into(),
        }
    } else if std::env::var_os("ACP_ROOT").is_some() {
        Origin::Environment {
            variable: "ACP_ROOT".into(),
        }
    } else {
        Origin::Default
    };
    Setting {
        key: "root".into(),
        value: json!(root.display().to_string()),
        origin,
    }
}

/// Whether a variable came from `.env` rather than the process.
fn from_dotenv(origin: &Origin) -> bool {
    matches!(origin, Origin::Environment { variable } if std::env::var_os(variable).is_none())
}

/// The text of a value: as TOML writes it (strings quoted, lists in
/// brackets), `(unset)` for none.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "(unset)".to_owned(),
        other => other.to_string(),
    }
}

pub(crate) fn show(cli: &Cli) -> Result<ExitCode> {
    let root = root_of(cli)?;
    let env = collect_env(&root)?;
    let config = Config::load(&root, &env)?;
    let mut settings = vec![root_setting(&root)];
    settings.extend(config.settings(&env));
    if cli.json {
        let mut out = Map::new();
        for s in settings {
            let dotenv = from_dotenv(&s.origin);
            let mut entry = serde_json::to_value(&s)?;
            if let Some(fields) = entry.as_object_mut() {
                fields.remove("key");
                if dotenv {
                    fields.insert("from".into(), json!(".env"));
                }
            }
            out.insert(s.key, entry);
        }
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let lines: Vec<(String, String)> = settings
        .iter()
        .map(|s| {
            let mut source = s.origin.to_string();
            if from_dotenv(&s.origin) {
                source.insert_str(source.len() - 1, ", from .env");
            }
            (format!("{} = {}", s.key, shown(&s.value)), source)
        })
        .collect();
    let width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .filter(|&n| n <= 60)
        .max()
        .unwrap_or(0);
    for (line, source) in lines {
        outln!("{line:<width$}  # {source}");
    }
    Ok(ExitCode::SUCCESS)
}
