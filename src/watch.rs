//! File changes, without the reads: a watcher that wakes its owner when a
//! file is created, written, renamed or removed under the folders it
//! watches, and never when one is only opened or read. (inotify reports
//! opens too, so a watcher that woke on every event would be woken again by
//! its owner's own reads of what changed, for ever.)
//!
//! A burst of changes (an editor's save is several) is gathered by the
//! owner: on a wake it waits [`settle`] and takes every wake queued since.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// A running watcher; dropping it stops it.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

/// Wakes sent by a [`Watch`].
pub type Wakes = mpsc::UnboundedReceiver<()>;

/// Watches `dirs` (each recursively or not) and sends a wake for each
/// change to a path `wanted` accepts. A watcher error wakes too (the owner
/// looks again rather than miss a change).
///
/// # Errors
/// The watcher cannot be started or a folder cannot be watched.
pub fn changes(
    dirs: &[(PathBuf, bool)],
    wanted: impl Fn(&Path) -> bool + Send + 'static,
) -> notify::Result<(Watch, Wakes)> {
    let (tx, wakes) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let wake = match event {
            Ok(event) => is_change(event.kind) && event.paths.iter().any(|p| wanted(p)),
            Err(_) => true,
        };
        if wake {
            let _ = tx.send(());
        }
    })?;
    for (dir, recursive) in dirs {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        watcher.watch(dir, mode)?;
    }
    Ok((Watch { _watcher: watcher }, wakes))
}

/// Whether an event changed something (not an open, a read or a close
/// after reading).
fn is_change(kind: EventKind) -> bool {
    !matches!(kind, EventKind::Access(_))
}

/// After a wake: waits `quiet` for the rest of a burst, then takes the
/// wakes queued meanwhile, so the burst is one look.
pub async fn settle(wakes: &mut Wakes, quiet: Duration) {
    tokio::time::sleep(quiet).await;
    while wakes.try_recv().is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reading_a_file_wakes_nobody_and_writing_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acp.toml");
        std::fs::write(&file, "a = 1\n").unwrap();
        let wanted = file.clone();
        let (_watch, mut wakes) =
            changes(&[(dir.path().to_path_buf(), false)], move |p| p == wanted).unwrap();
        // Fifty reads (an open and a close each), another file written,
        // then one write: the write is the evidence that the watcher runs.
        for _ in 0..50 {
            let _ = std::fs::read(&file).unwrap();
        }
        std::fs::write(dir.path().join("other"), "x").unwrap();
        std::fs::write(&file, "a = 2\n").unwrap();
        tokio::time::timeout(Duration::from_secs(10), wakes.recv())
            .await
            .expect("a write wakes the owner")
            .unwrap();
        // Everything queued by now: a write is a few events; the reads,
        // had they counted, a hundred.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut woken = 1;
        while wakes.try_recv().is_ok() {
            woken += 1;
        }
        assert!(woken <= 4, "woken {woken} times: reads wake the owner");
    }
}
