//! `acp backup ...` and `acp doctor`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Result;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde_json::json;

use crate::backup::{self, Catalog, Kind, Progress, Repo, Which};
use crate::config::Config;

use super::{BackupCommand, UsageError};

/// How `acp backup` shows the progress of a long run (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on stderr when it is a terminal and the output is not JSON.
    Auto,
    /// One JSON object per line on stderr: `{"event":"phase"|"start"|
    /// "progress"|"finish","phase":...}`; stdout keeps the result.
    Json,
    /// Nothing.
    None,
}

/// `--progress json`: one line per step, per phase start and end, and per
/// percent (or per 100 items) of a measured phase.
#[derive(Default)]
struct JsonLines {
    state: Mutex<Measured>,
}

#[derive(Default)]
struct Measured {
    phase: String,
    total_bytes: u64,
    bytes: u64,
    items: u64,
    percent: u64,
}

impl JsonLines {
    /// Writes one line; a closed stderr is not an error worth stopping for.
    fn emit(line: &serde_json::Value) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

impl Progress for JsonLines {
    fn step(&self, phase: &str) {
        if let Ok(_order) = self.state.lock() {
            Self::emit(&json!({"event": "phase", "phase": phase}));
        }
    }
    fn start(&self, phase: &str, total: u64) {
        if let Ok(mut m) = self.state.lock() {
            *m = Measured {
                phase: phase.to_owned(),
                total_bytes: total,
                ..Measured::default()
            };
            Self::emit(&json!({"event": "start", "phase": phase, "total_bytes": total}));
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(mut m) = self.state.lock() {
            m.bytes += bytes;
            m.items += 1;
            let percent = (m.bytes.saturating_mul(100))
                .checked_div(m.total_bytes)
                .map_or(100, |p| p.min(100));
            if percent > m.percent || m.items % 100 == 0 {
                m.percent = percent;
                Self::emit(&json!({
                    "event": "progress", "phase": m.phase, "items": m.items,
                    "bytes": m.bytes, "total_bytes": m.total_bytes, "percent": percent,
                }));
            }
        }
    }
    fn finish(&self) {
        if let Ok(m) = self.state.lock() {
            Self::emit(&json!({
                "event": "finish", "phase": m.phase, "items": m.items, "bytes": m.bytes,
            }));
        }
    }
}

/// A progress bar on stderr, only when it is a terminal and output is not
/// JSON.
struct Bar {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    fn new(json_out: bool) -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: !json_out && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(total).with_message(phase.to_owned());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Parses `--at`: RFC 3339 (`2026-11-25T14:00:00Z`) or a local
/// `YYYY-MM-DD HH:MM[:SS]`.
pub fn parse_at(s: &str) -> Result<jiff::Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    s.replace(' ', "T")
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned_datetime(jiff::tz::TimeZone::system()).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            format!(
                "{s:?} is not a time: use RFC 3339 (2026-11-25T14:00:00Z) or local \"2026-11-25 14:00\""
            )
        })
}

fn summary_line(m: &backup::Manifest) -> String {
    format!(
        "{}  {:<12}  {}  {:>6} files  {:>10}  +{} stored  {}",
        m.id,
        m.kind,
        m.created_at,
        m.stats.total_files,
        HumanBytes(m.stats.total_bytes).to_string(),
        HumanBytes(m.stats.stored_bytes),
        m.parent
            .as_deref()
            .map_or_else(String::new, |p| format!("parent {p}"))
    )
}

fn summary_json(m: &backup::Manifest) -> serde_json::Value {
    json!({
        "id": m.id, "kind": m.kind, "parent": m.parent, "created_at": m.created_at,
        "sources": m.sources, "changed": m.entries.len(), "deleted": m.deleted.len(), "stats": m.stats,
    })
}

/// Runs one `acp backup` subcommand.
///
/// # Errors
/// Any failure; damaged backups exit 1, bad input 2.
pub fn run(
    config: &Config,
    cmd: &BackupCommand,
    progress: ProgressMode,
    json_out: bool,
) -> Result<ExitCode> {
    let bar: Box<dyn Progress> = match progress {
        ProgressMode::Auto => Box::new(Bar::new(json_out)),
        ProgressMode::Json => Box::new(JsonLines::default()),
        ProgressMode::None => Box::new(backup::Quiet),
    };
    let bar = &*bar;
    match cmd {
        BackupCommand::Create { kind } => create_cmd(config, *kind, bar, json_out),
        BackupCommand::List => list_cmd(config, json_out),
        BackupCommand::Verify { id, all } => verify_cmd(config, id.as_ref(), *all, bar, json_out),
        BackupCommand::Restore {
            id,
            at,
            to,
            in_place,
            partial,
        } => restore(
            config,
            id.as_deref(),
            *at,
            to.as_deref(),
            *in_place,
            *partial,
            bar,
            json_out,
        ),
        BackupCommand::Prune { dry_run } => prune_cmd(config, *dry_run, json_out),
        BackupCommand::Drill => drill_cmd(config, bar, json_out),
        BackupCommand::Keygen => {
            let (secret, public) = backup::Cipher::generate();
            if json_out {
                print_json(&json!({"ACP_BACKUP_KEY": secret, "recipient": public}))?;
            } else {
                println!("ACP_BACKUP_KEY={secret}");
                eprintln!(
                    "public key: {public}\nPut the line above in .env in the root. New backup repositories are then encrypted.\nKeep a copy of it somewhere else (a password manager): .env is never backed up, and without the key encrypted backups cannot be restored."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn create_cmd(config: &Config, kind: Kind, bar: &dyn Progress, json_out: bool) -> Result<ExitCode> {
    let created = backup::create(config, kind, bar)?;
    let m = &created.manifest;
    if json_out {
        print_json(&json!({
            "backup": summary_json(m), "note": created.note, "skipped": created.skipped,
            "repository": config.backup.repository,
        }))?;
    } else {
        if let Some(note) = &created.note {
            println!("note: {note}");
        }
        println!(
            "{} backup {} taken in {:.1} s: {} files ({}), {} changed ({}), {} deleted, {} new objects (+{} stored) in {}",
            m.kind,
            m.id,
            std::time::Duration::from_millis(m.stats.duration_ms).as_secs_f64(),
            m.stats.total_files,
            HumanBytes(m.stats.total_bytes),
            m.stats.changed_files,
            HumanBytes(m.stats.changed_bytes),
            m.stats.deleted,
            m.stats.new_objects,
            HumanBytes(m.stats.stored_bytes),
            config.backup.repository.display()
        );
        for (path, why) in &created.skipped {
            println!("  skipped {path}: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_cmd(config: &Config, json_out: bool) -> Result<ExitCode> {
    let repo = Repo::open(&config.backup)?;
    let catalog = Catalog::read(&repo)?;
    if json_out {
        print_json(&json!({
            "backups": catalog.manifests.iter().map(summary_json).collect::<Vec<_>>(),
            "damaged": catalog.damaged,
            "repository_bytes": repo.size(),
        }))?;
    } else {
        if catalog.manifests.is_empty() {
            println!("no backups yet in {}", repo.path().display());
        }
        for m in &catalog.manifests {
            println!("{}", summary_line(m));
        }
        for (file, why) in &catalog.damaged {
            println!("DAMAGED {file}: {why}");
        }
        println!(
            "{} backup(s), repository {} at {}",
            catalog.manifests.len(),
            HumanBytes(repo.size()),
            repo.path().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_cmd(
    config: &Config,
    id: Option<&String>,
    all: bool,
    bar: &dyn Progress,
    json_out: bool,
) -> Result<ExitCode> {
    let which = match (id, all) {
        (Some(id), false) => Which::One(id.clone()),
        (None, _) => Which::All,
        (Some(_), true) => {
            return Err(UsageError("give a backup id or --all, not both".into()).into());
        }
    };
    let repo = Repo::open(&config.backup)?;
    let report = backup::verify(&repo, &which, bar)?;
    if json_out {
        print_json(&json!({"ok": report.ok(), "report": report}))?;
    } else {
        for b in &report.backups {
            if b.problems.is_empty() {
                println!("ok       {} ({} files)", b.id, b.files);
            } else {
                println!("DAMAGED  {}: {} problem(s)", b.id, b.problems.len());
                for (path, why) in &b.problems {
                    println!("  {path}: {why}");
                }
            }
        }
        println!(
            "read {} objects ({}) in {:.1} s: {}",
            report.objects_read,
            HumanBytes(report.bytes_read),
            std::time::Duration::from_millis(report.duration_ms).as_secs_f64(),
            if report.ok() {
                "all intact"
            } else {
                "DAMAGE FOUND"
            }
        );
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILURE)
    })
}

fn prune_cmd(config: &Config, dry_run: bool, json_out: bool) -> Result<ExitCode> {
    let repo = Repo::open(&config.backup)?;
    let report = backup::prune(&repo, &config.backup, dry_run)?;
    if json_out {
        print_json(&report)?;
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        println!(
            "kept {} backup(s), {verb} {}: {}; {} unused object(s) deleted ({} freed)",
            report.kept.len(),
            report.removed.len(),
            if report.removed.is_empty() {
                "-".to_owned()
            } else {
                report.removed.join(", ")
            },
            report.objects_removed,
            HumanBytes(report.bytes_freed)
        );
        if let Some(w) = &report.warning {
            println!("warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn drill_cmd(config: &Config, bar: &dyn Progress, json_out: bool) -> Result<ExitCode> {
    let drill = backup::drill(config, bar)?;
    let ok = drill.store_integrity == "ok" || drill.store_integrity == "no store in the backup";
    if json_out {
        print_json(&json!({"ok": ok, "drill": drill}))?;
    } else {
        println!(
            "drill: restored {} backup {} ({} files, {}) into a temporary directory and verified it",
            drill.kind,
            drill.backup,
            drill.files,
            HumanBytes(drill.bytes)
        );
        println!(
            "  recovery time (RTO): {:.2} s",
            std::time::Duration::from_millis(drill.rto_ms).as_secs_f64()
        );
        println!(
            "  data age (RPO): {:#} (backup taken {})",
            jiff::SignedDuration::from_secs(i64::try_from(drill.rpo_seconds).unwrap_or(i64::MAX)),
            drill.created_at
        );
        println!("  restored store integrity: {}", drill.store_integrity);
        println!(
            "  since the backup: {} file(s) changed, {} gone from the live state",
            drill.changed_since.len(),
            drill.missing_live.len()
        );
        for p in drill
            .changed_since
            .iter()
            .chain(&drill.missing_live)
            .take(20)
        {
            println!("    {p}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILURE)
    })
}

#[expect(clippy::too_many_arguments, reason = "one per command-line option")]
fn restore(
    config: &Config,
    id: Option<&str>,
    at: Option<jiff::Timestamp>,
    to: Option<&Path>,
    in_place: bool,
    partial: bool,
    bar: &dyn Progress,
    json_out: bool,
) -> Result<ExitCode> {
    let repo = Repo::open(&config.backup)?;
    let catalog = Catalog::read(&repo)?;
    let chosen = match (id, at) {
        (Some(id), None) => catalog.find(id)?.id.clone(),
        (None, Some(at)) => catalog.at(at)?.id.clone(),
        _ => return Err(UsageError("give a backup id (or latest) or --at TIME".into()).into()),
    };
    match (to, in_place) {
        (Some(dir), false) => {
            let report = backup::restore_to(&repo, &catalog, &chosen, dir, partial, bar)?;
            if json_out {
                print_json(&report)?;
            } else {
                println!(
                    "restored backup {} (taken {}) into {}: {} files ({}), {} directories, {} symlinks",
                    report.id,
                    report.created_at,
                    report.target,
                    report.files,
                    HumanBytes(report.bytes),
                    report.dirs,
                    report.symlinks
                );
                for (path, why) in &report.damaged {
                    println!("  NOT RESTORED {path}: {why}");
                }
            }
            Ok(if report.damaged.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(super::EXIT_FAILURE)
            })
        }
        (None, true) => {
            if partial {
                return Err(UsageError(
                    "--partial cannot be used with --in-place: a partly restored live state is worse than none; restore --to DIR --partial and copy what you need".into(),
                )
                .into());
            }
            // Held through the swap: no service can start meanwhile.
            let _service = crate::service::ServiceLock::acquire(&config.root).map_err(|e| {
                UsageError(format!(
                    "{e}. An in-place restore replaces the store: stop `acp run` first"
                ))
            })?;
            let done = backup::restore_in_place(config, &repo, &catalog, &chosen, bar)?;
            if let Ok(store) = crate::store::Store::open(&config.db_path()) {
                let who = format!(
                    "cli:{}",
                    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
                );
                let _ = store.audit(
                    &who,
                    "backup.restore",
                    Some(&chosen),
                    "ok",
                    Some("in place"),
                );
            }
            if json_out {
                print_json(&done)?;
            } else {
                println!(
                    "restored backup {} (taken {}) in place: {} files; replaced state kept in {}",
                    done.restore.id,
                    done.restore.created_at,
                    done.restore.files,
                    done.replaced_kept_in
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(UsageError(
            "say where to restore: --to DIR (a new or empty directory) or --in-place".into(),
        )
        .into()),
    }
}

/// Resolves `--to` relative to the current directory.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(p)?)
}

/// `--kind`.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
}
