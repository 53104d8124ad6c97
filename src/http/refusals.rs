//! Refused requests, audited in bounded form: a stranger can send as many
//! as the network carries, and each must not become a row of its own.
//!
//! Per interval (`http.refusal_audit_secs`) and per source address, actor
//! and action, the first refusal is written at once and the rest are
//! counted, then written as one row when the interval ends. Paths and
//! reasons are cut short. At most [`MAX_SOURCES`] keys are told apart per
//! interval; the rest share one, so rows per interval stay bounded
//! whatever the sources.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::model::AuditOutcome;

/// Keys told apart in one interval.
const MAX_SOURCES: usize = 64;
/// Longest path kept in a row.
const MAX_PATH: usize = 120;
/// Longest reason kept in a row.
const MAX_WHY: usize = 300;

/// Who was refused, as the audit log groups them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// `None`: one of the sources past [`MAX_SOURCES`].
    source: Option<IpAddr>,
    actor: String,
    action: &'static str,
}

/// Refusals counted since a key's last row.
#[derive(Debug, Default)]
struct Tally {
    more: u64,
    path: String,
    why: String,
}

struct Window {
    started: Instant,
    keys: HashMap<Key, Tally>,
}

/// One row to write.
struct Row {
    actor: String,
    action: &'static str,
    path: String,
    detail: String,
}

/// The refusals of one server.
pub(crate) struct Refusals {
    app: Arc<App>,
    every: Duration,
    window: Mutex<Window>,
}

/// `text` cut to at most `max` characters, marked when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        let _ = write!(out, "… ({} bytes)", text.len());
    }
    out
}

fn from(source: Option<IpAddr>) -> String {
    source.map_or_else(|| "other sources".to_owned(), |ip| ip.to_string())
}

impl Refusals {
    pub(crate) fn new(app: Arc<App>) -> Self {
        let every = app.config().http.refusal_audit_every;
        Self {
            app,
            every,
            window: Mutex::new(Window {
                started: Instant::now(),
                keys: HashMap::new(),
            }),
        }
    }

    /// Records one refusal: `actor` (from `source`) asked for `path` and
    /// was refused `action` because `why`.
    pub(crate) async fn record(
        &self,
        source: Option<IpAddr>,
        actor: &str,
        action: &'static str,
        path: &str,
        why: &str,
    ) {
        let mut rows = Vec::new();
        {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            self.close_if_due(&mut window, &mut rows, false);
            let secs = self.every.as_secs();
            let mut key = Key {
                source,
                actor: cut(actor, 64),
                action,
            };
            if !window.keys.contains_key(&key) && window.keys.len() >= MAX_SOURCES {
                key.source = None;
            }
            if let Some(tally) = window.keys.get_mut(&key) {
                tally.more += 1;
                tally.path = cut(path, MAX_PATH);
                tally.why = cut(why, MAX_WHY);
            } else {
                rows.push(Row {
                    actor: key.actor.clone(),
                    action,
                    path: cut(path, MAX_PATH),
                    detail: format!(
                        "1 refused from {}: {} (more within {secs} s are counted in one row)",
                        from(key.source),
                        cut(why, MAX_WHY)
                    ),
                });
                window.keys.insert(key, Tally::default());
            }
        }
        self.write(rows).await;
    }

    /// Ends the interval if it is over (or `now`): one row per key with
    /// refusals counted in it.
    fn close_if_due(&self, window: &mut Window, rows: &mut Vec<Row>, now: bool) {
        if !now && window.started.elapsed() < self.every {
            return;
        }
        let secs = window.started.elapsed().as_secs();
        for (key, tally) in window.keys.drain() {
            if tally.more > 0 {
                rows.push(Row {
                    actor: key.actor,
                    action: key.action,
                    path: tally.path,
                    detail: format!(
                        "{} more refused from {} in the last {secs} s: {} (the path is the last one)",
                        tally.more,
                        from(key.source),
                        tally.why
                    ),
                });
            }
        }
        window.started = Instant::now();
    }

    /// Writes what was counted, now.
    async fn flush(&self, all: bool) {
        let mut rows = Vec::new();
        {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            self.close_if_due(&mut window, &mut rows, all);
        }
        self.write(rows).await;
    }

    async fn write(&self, rows: Vec<Row>) {
        for row in rows {
            if let Err(e) = self
                .app
                .audit(
                    &row.actor,
                    row.action,
                    Some(&row.path),
                    AuditOutcome::Refused,
                    Some(&row.detail),
                )
                .await
            {
                tracing::warn!(error = %e, "cannot audit refused HTTP requests");
            }
        }
    }

    /// Writes the counts at the end of each interval, and what is left
    /// when `cancel` comes.
    pub(crate) async fn follow(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.every.min(Duration::from_secs(5)));
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => self.flush(false).await,
            }
        }
        self.flush(true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn long_paths_are_cut_and_say_how_long_they_were() {
        assert_eq!(cut("/api", 10), "/api");
        let long = "a".repeat(60_000);
        let short = cut(&long, 120);
        assert!(short.len() < 150, "{short}");
        assert!(short.ends_with("… (60000 bytes)"), "{short}");
    }
}
