// Over 400 lines: one printer per backup subcommand, each short; splitting them would scatter one
// command's output.

//! `acp backup ...`: each subcommand calls the core's backups and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use indicatif::HumanBytes;
use serde_json::json;

use acp::app::{
    App, BackupKind as Kind, Backups, Config, Listing, Manifest, Pick, Quiet, Reporter, Scheduled,
    Which,
};

use super::progress::{Bar, JsonLines, ProgressMode};
use super::{BackupCommand, UsageError};

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Parses `--at`: RFC 3339 (`2026-11-25T14:00:00Z`) or a local
/// `YYYY-MM-DD HH:MM[:SS]`.
pub(crate) fn parse_at(s: &str) -> Result<jiff::Timestamp, String> {
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
                "{s:?} is not a time: use RFC 3339 (2026-11-25T14:00:00Z) or local \"2026-11-25 \
                 14:00\""
            )
        })
}

fn summary_line(m: &Manifest) -> String {
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

fn summary_json(m: &Manifest) -> serde_json::Value {
    json!({
        "id": m.id, "kind": m.kind, "parent": m.parent, "created_at": m.created_at,
        "sources": m.sources, "changed": m.entries.len(), "deleted": m.deleted.len(), "stats": m.stats,
    })
}

/// Runs one `acp backup` subcommand through the core. `root` says whether
/// the config came from a root (its store then takes the audit rows); on a
/// new machine there is only the repository.
///
/// # Errors
/// Any failure; damaged backups exit 1, bad input 2.
pub(crate) async fn run(
    config: Config,
    root: bool,
    cmd: &BackupCommand,
    progress: ProgressMode,
    json_out: bool,
) -> Result<ExitCode> {
    let bar: Reporter = match progress {
        ProgressMode::Auto => Arc::new(Bar::new(json_out)),
        ProgressMode::Json => Arc::new(JsonLines::default()),
        ProgressMode::None => Arc::new(Quiet),
    };
    // An in-place restore replaces the store: none may be open meanwhile.
    let in_place = matches!(cmd, BackupCommand::Restore { in_place: true, .. });
    let backups = if root && !in_place {
        App::open(config)?.backups().clone()
    } else {
        Backups::without_store(&config)
    };
    let by = super::show::actor();
    match cmd {
        BackupCommand::Create { kind, .. } => create_cmd(&backups, *kind, &by, bar, json_out).await,
        BackupCommand::Scheduled => {
            let ticked = backups.tick().await?;
            print_json(&serde_json::to_value(Scheduled::of(ticked.as_ref()))?)?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::List => list_cmd(&backups, json_out).await,
        BackupCommand::Verify { id, all, .. } => {
            let which = match (id, all) {
                (Some(id), false) => Which::One(id.clone()),
                (None, _) => Which::All,
                (Some(_), true) => {
                    return Err(UsageError("give a backup id or --all, not both".into()).into());
                }
            };
            verify_cmd(&backups, which, &by, bar, json_out).await
        }
        BackupCommand::Restore {
            id,
            at,
            to,
            in_place,
            partial,
            ..
        } => {
            let pick = match (id, at) {
                (Some(id), None) => Pick::Id(id.clone()),
                (None, Some(at)) => Pick::At(*at),
                _ => {
                    return Err(
                        UsageError("give a backup id (or latest) or --at TIME".into()).into(),
                    );
                }
            };
            match (to, in_place) {
                (Some(dir), false) => {
                    restore_to_cmd(&backups, pick, dir, *partial, &by, bar, json_out).await
                }
                (None, true) if *partial => Err(UsageError(
                    "--partial cannot be used with --in-place: a partly restored live state is worse than none; restore --to DIR --partial and copy what you need".into(),
                )
                .into()),
                (None, true) => restore_in_place_cmd(&backups, pick, &by, bar, json_out).await,
                _ => Err(UsageError(
                    "say where to restore: --to DIR (a new or empty directory) or --in-place"
                        .into(),
                )
                .into()),
            }
        }
        BackupCommand::Prune { dry_run } => prune_cmd(&backups, *dry_run, &by, json_out).await,
        BackupCommand::Drill { .. } => drill_cmd(&backups, &by, bar, json_out).await,
        BackupCommand::Keygen => {
            let (secret, public, advice) = backups.keygen();
            if json_out {
                print_json(
                    &json!({"ACP_BACKUP_KEY": secret, "recipient": public, "warning": advice}),
                )?;
            } else {
                outln!("ACP_BACKUP_KEY={secret}");
                eprintln!(
                    "public key: {public}\nPut the line above in .env in the root. New backup \
                     repositories are then encrypted.\nKeep a copy of it somewhere else (a \
                     password manager): .env is never backed up, and without the key encrypted \
                     backups cannot be restored."
                );
                if let Some(advice) = advice {
                    eprintln!("warning: {advice}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn create_cmd(
    backups: &Backups,
    kind: Kind,
    by: &str,
    bar: Reporter,
    json_out: bool,
) -> Result<ExitCode> {
    let created = backups.create(kind, by, bar).await?;
    let m = &created.manifest;
    if json_out {
        print_json(&json!({
            "backup": summary_json(m), "note": created.note, "skipped": created.skipped,
            "repository": backups.repository(),
        }))?;
    } else {
        if let Some(note) = &created.note {
            outln!("note: {note}");
        }
        outln!(
            "{} backup {} taken in {:.1} s: {} files ({}), {} changed ({}), {} deleted, {} new \
             blobs (+{} stored) in {}",
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
            backups.repository().display()
        );
        for (path, why) in &created.skipped {
            outln!("  skipped {path}: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_cmd(backups: &Backups, json_out: bool) -> Result<ExitCode> {
    let Listing {
        catalog,
        repository,
        repository_bytes,
    } = backups.list(None).await?;
    if json_out {
        print_json(&json!({
            "backups": catalog.manifests.iter().map(summary_json).collect::<Vec<_>>(),
            "damaged": catalog.damaged,
            "repository_bytes": repository_bytes,
        }))?;
    } else {
        if catalog.manifests.is_empty() {
            outln!("no backups yet in {}", repository.display());
        }
        for m in &catalog.manifests {
            outln!("{}", summary_line(m));
        }
        for (file, why) in &catalog.damaged {
            outln!("DAMAGED {file}: {why}");
        }
        outln!(
            "{} backup(s), repository {} at {}",
            catalog.manifests.len(),
            HumanBytes(repository_bytes),
            repository.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify_cmd(
    backups: &Backups,
    which: Which,
    by: &str,
    bar: Reporter,
    json_out: bool,
) -> Result<ExitCode> {
    let report = backups.verify(which, by, bar).await?;
    if json_out {
        print_json(&json!({"ok": report.ok(), "report": report}))?;
    } else {
        for b in &report.backups {
            if b.problems.is_empty() {
                outln!("ok       {} ({} files)", b.id, b.files);
            } else {
                outln!("DAMAGED  {}: {} problem(s)", b.id, b.problems.len());
                for (path, why) in &b.problems {
                    outln!("  {path}: {why}");
                }
            }
        }
        outln!(
            "read {} blobs ({}) in {:.1} s: {}",
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
    Ok(super::success_if(report.ok()))
}

async fn prune_cmd(backups: &Backups, dry_run: bool, by: &str, json_out: bool) -> Result<ExitCode> {
    let report = backups.prune(dry_run, by).await?;
    if json_out {
        print_json(&report)?;
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        outln!(
            "kept {} backup(s), {verb} {}: {}; {} unused blob(s) deleted, {} pack(s) deleted and {} \
             rewritten ({} freed)",
            report.kept.len(),
            report.removed.len(),
            if report.removed.is_empty() {
                "-".to_owned()
            } else {
                report.removed.join(", ")
            },
            report.objects_removed,
            report.packs_removed,
            report.packs_rewritten,
            HumanBytes(report.bytes_freed)
        );
        if let Some(w) = &report.warning {
            outln!("warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn drill_cmd(backups: &Backups, by: &str, bar: Reporter, json_out: bool) -> Result<ExitCode> {
    let drill = backups.drill(by, bar).await?;
    let ok = drill.store_integrity == "ok" || drill.store_integrity == "no store in the backup";
    if json_out {
        print_json(&json!({"ok": ok, "drill": drill}))?;
    } else {
        outln!(
            "drill: restored {} backup {} ({} files, {}) into a temporary directory and verified \
             it",
            drill.kind,
            drill.backup,
            drill.files,
            HumanBytes(drill.bytes)
        );
        outln!(
            "  recovery time (RTO): {:.2} s",
            std::time::Duration::from_millis(drill.rto_ms).as_secs_f64()
        );
        outln!(
            "  data age (RPO): {:#} (backup taken {})",
            jiff::SignedDuration::from_secs(i64::try_from(drill.rpo_seconds).unwrap_or(i64::MAX)),
            drill.created_at
        );
        outln!("  restored store integrity: {}", drill.store_integrity);
        outln!(
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
            outln!("    {p}");
        }
    }
    Ok(super::success_if(ok))
}

async fn restore_to_cmd(
    backups: &Backups,
    pick: Pick,
    dir: &Path,
    partial: bool,
    by: &str,
    bar: Reporter,
    json_out: bool,
) -> Result<ExitCode> {
    let report = backups
        .restore_to(pick, dir.to_owned(), partial, by, bar)
        .await?;
    if json_out {
        print_json(&report)?;
    } else {
        outln!(
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
            outln!("  NOT RESTORED {path}: {why}");
        }
    }
    Ok(super::success_if(report.damaged.is_empty()))
}

async fn restore_in_place_cmd(
    backups: &Backups,
    pick: Pick,
    by: &str,
    bar: Reporter,
    json_out: bool,
) -> Result<ExitCode> {
    let done = backups.restore_in_place(pick, by, bar).await?;
    if json_out {
        print_json(&done)?;
    } else {
        outln!(
            "restored backup {} (taken {}) in place: {} files; replaced state kept in {}",
            done.restore.id,
            done.restore.created_at,
            done.restore.files,
            done.replaced_kept_in
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves `--to` relative to the current directory.
pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(p)?)
}

/// `--kind`.
pub(crate) fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
}
