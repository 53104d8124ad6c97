//! Retention through the core: one pass removes what `[store]` no longer
//! keeps, in small transactions, then gives the space back a little at a
//! time; `acp run` runs a pass when it starts and every hour.
//! `acp store stats` shows where the bytes are.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{App, AppError, blocking};
use crate::store::feed::FEED_KEEP_MS;
use crate::store::now_ms;
use crate::store::retention::{FileStat, Pruned, TableStat};

/// Messages looked at per transaction: small enough that deliveries
/// waiting for the writer wait a few milliseconds at most.
const BATCH: usize = 500;
/// Pages given back per step (4 KiB each).
const VACUUM_PAGES: u32 = 256;
/// How often `acp run` runs a pass.
const EVERY: Duration = Duration::from_secs(3600);
/// A pause between transactions, for the writers queued behind them.
const BREATHE: Duration = Duration::from_millis(2);

/// What a pass did.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    pub removed: Pruned,
    /// Bytes given back to the file system.
    pub freed_bytes: u64,
    /// Finished messages made before this were removed (RFC 3339); `None`:
    /// messages are kept for ever.
    pub before: Option<String>,
    /// Inbox files of removed messages removed with them (agents' and
    /// people's; none with `[store] keep_inbox_files`).
    pub inbox_files: usize,
    /// Whether the store can give space back while acp runs; if not,
    /// `acp store compact` once.
    pub incremental: bool,
}

/// The store's size, as `acp store stats` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    pub path: String,
    pub file: FileStat,
    /// The write-ahead log beside the file.
    pub wal_bytes: u64,
    pub tables: Vec<TableStat>,
    /// `[store] warn_size_mb`, in bytes.
    pub warn_bytes: u64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl App {
    /// One retention pass, now: finished messages older than `[store]
    /// keep_days` (but the newest `keep_min` of each recipient), old audit
    /// rows, transitions and firings; then the space given back.
    ///
    /// # Errors
    /// [`AppError::Store`]; what was removed before it stays removed.
    pub async fn prune_store(
        &self,
        cancel: &CancellationToken,
    ) -> Result<RetentionReport, AppError> {
        let settings = self.config.store.clone();
        let now = now_ms();
        let before = settings.keep.map(|k| now.saturating_sub(ms(k)));
        let audit_before = settings.audit_keep.map(|k| now.saturating_sub(ms(k)));
        let mut removed = Pruned::default();
        let mut inbox_files = 0;
        if let Some(before) = before {
            let store = Arc::clone(&self.store);
            let keep_min = settings.keep_min;
            let floors = blocking(move || store.keep_floors(keep_min)).await?;
            let floors = Arc::new(floors);
            let mut after = String::new();
            while !cancel.is_cancelled() {
                let store = Arc::clone(&self.store);
                let floors = Arc::clone(&floors);
                let (pass, last) =
                    blocking(move || store.prune_messages(before, &after, &floors, BATCH)).await?;
                removed.add(&pass);
                match last {
                    Some(last) => after = last,
                    None => break,
                }
                tokio::time::sleep(BREATHE).await;
            }
            if !settings.keep_inbox_files && !cancel.is_cancelled() {
                inbox_files = self.prune_inbox_files(before).await?;
            }
        }
        let records_before = before.unwrap_or(i64::MIN);
        // The feed keeps a week, or what the messages keep if shorter.
        let feed_before = now
            .saturating_sub(FEED_KEEP_MS)
            .max(before.unwrap_or(i64::MIN));
        while !cancel.is_cancelled() {
            let store = Arc::clone(&self.store);
            let pass = blocking(move || {
                store.prune_records(records_before, audit_before, feed_before, BATCH)
            })
            .await?;
            removed.add(&pass);
            if pass == Pruned::default() {
                break;
            }
            tokio::time::sleep(BREATHE).await;
        }
        let store = Arc::clone(&self.store);
        let start = blocking(move || store.file_stat()).await?;
        while start.incremental && !cancel.is_cancelled() {
            let store = Arc::clone(&self.store);
            if blocking(move || store.vacuum_step(VACUUM_PAGES)).await? == 0 {
                break;
            }
            tokio::time::sleep(BREATHE).await;
        }
        let store = Arc::clone(&self.store);
        let end = blocking(move || store.file_stat()).await?;
        Ok(RetentionReport {
            removed,
            freed_bytes: start.bytes.saturating_sub(end.bytes),
            before: before
                .and_then(|b| jiff::Timestamp::from_millisecond(b).ok())
                .map(|t| t.to_string()),
            inbox_files,
            incremental: end.incremental,
        })
    }

    /// Removes the inbox files (each agent's `inbox/`, each person's under
    /// `data/people/`) of messages made before `before` that the store no
    /// longer holds: the files follow the store. A folder that cannot be
    /// read is named in the log and left.
    async fn prune_inbox_files(&self, before: i64) -> Result<usize, AppError> {
        let mut homes: Vec<std::path::PathBuf> = self
            .config
            .agents
            .all()
            .iter()
            .map(|a| a.workspace.clone())
            .collect();
        if let Ok(people) = std::fs::read_dir(self.people_dir()) {
            homes.extend(people.flatten().map(|e| e.path()));
        }
        let store = Arc::clone(&self.store);
        Ok(blocking(move || {
            let mut removed = 0;
            for home in homes {
                let gone = |ids: &[crate::model::MessageId]| {
                    store.messages_gone(ids).map_err(std::io::Error::other)
                };
                match crate::delivery::inbox::prune_files(&home, before, gone) {
                    Ok(n) => removed += n,
                    Err(e) => {
                        tracing::warn!(home = %home.display(), error = %e, "retention: cannot prune this inbox's files");
                    }
                }
            }
            Ok(removed)
        })
        .await?)
    }

    /// Runs a retention pass now and every hour until `cancel`: what `acp
    /// run` does.
    pub async fn run_retention(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            match self.prune_store(&cancel).await {
                Ok(r) if r.removed == Pruned::default() && r.inbox_files == 0 => {}
                Ok(r) => tracing::info!(
                    messages = r.removed.messages,
                    inbox_files = r.inbox_files,
                    deliveries = r.removed.deliveries,
                    attempts = r.removed.attempts,
                    audit = r.removed.audit,
                    activity = r.removed.activity,
                    freed_bytes = r.freed_bytes,
                    "retention: removed what [store] no longer keeps"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass failed; trying again in an hour");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// Rows and bytes per table, and the file's size.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn store_stats(&self) -> Result<StoreStats, AppError> {
        let store = Arc::clone(&self.store);
        let (file, tables) =
            blocking(move || Ok((store.file_stat()?, store.table_stats()?))).await?;
        let path = self.store.path().to_path_buf();
        let wal_bytes = std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
        Ok(StoreStats {
            path: path.display().to_string(),
            file,
            wal_bytes,
            tables,
            warn_bytes: self.config.store.warn_bytes,
        })
    }

    /// Rewrites the store file once so it can give space back while acp
    /// runs (and gives back all free space now); sizes before and after.
    /// Holds the store while it runs.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn compact_store(&self) -> Result<(u64, u64), AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || {
            let before = store.file_stat()?.bytes;
            store.compact()?;
            Ok((before, store.file_stat()?.bytes))
        })
        .await?)
    }
}
