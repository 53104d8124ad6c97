//! `acp store`: the store's size, retention now, compaction.

use std::process::ExitCode;

use anyhow::Result;
use indicatif::HumanBytes;
use tokio_util::sync::CancellationToken;

use acp::app::App;

use super::StoreCommand;

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) async fn run(app: &App, cmd: &StoreCommand, json_out: bool) -> Result<ExitCode> {
    match cmd {
        StoreCommand::Stats => {
            let s = app.store_stats().await?;
            if json_out {
                return print_json(&s).map(|()| ExitCode::SUCCESS);
            }
            outln!(
                "{}: {} ({} free inside), write-ahead log {}",
                s.path,
                HumanBytes(s.file.bytes),
                HumanBytes(s.file.free_bytes),
                HumanBytes(s.wal_bytes)
            );
            outln!("{:<22} {:>12} {:>12}", "table", "rows", "bytes");
            for t in &s.tables {
                outln!(
                    "{:<22} {:>12} {:>12}",
                    t.name,
                    t.rows,
                    HumanBytes(t.bytes).to_string()
                );
            }
            if s.file.bytes > s.warn_bytes {
                outln!(
                    "larger than [store] warn_size_mb ({}): lower [store] keep_days, or raise the warning",
                    HumanBytes(s.warn_bytes)
                );
            }
            if !s.file.incremental {
                outln!(
                    "this store gives space back only after `acp store compact` (once, best with acp run stopped)"
                );
            }
        }
        StoreCommand::Prune => {
            let r = app.prune_store(&CancellationToken::new()).await?;
            if json_out {
                return print_json(&r).map(|()| ExitCode::SUCCESS);
            }
            if let Some(before) = &r.before {
                outln!(
                    "removed {} finished messages made before {before} ({} deliveries, {} attempts, {} receipts, {} inbox files)",
                    r.removed.messages,
                    r.removed.deliveries,
                    r.removed.attempts,
                    r.removed.receipts,
                    r.inbox_files
                );
            } else {
                outln!("[store] keep_days = 0: messages are kept for ever");
            }
            outln!(
                "removed {} audit rows, {} state transitions, {} schedule firings, {} activity rows; gave back {}",
                r.removed.audit,
                r.removed.transitions,
                r.removed.firings,
                r.removed.activity,
                HumanBytes(r.freed_bytes)
            );
            if !r.incremental {
                outln!("run `acp store compact` once so the space is given back");
            }
        }
        StoreCommand::Compact => {
            let (before, after) = app.compact_store().await?;
            if json_out {
                return print_json(
                    &serde_json::json!({ "before_bytes": before, "after_bytes": after }),
                )
                .map(|()| ExitCode::SUCCESS);
            }
            outln!(
                "compacted: {} -> {}; space is now given back while acp runs",
                HumanBytes(before),
                HumanBytes(after)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
