//! OS file locks with a deadline: the one way acp takes a lock on a file
//! (the service lock, the backup repository, the keyboard and mouse, the
//! dispatchers' leases). The OS drops a lock when its process dies, so a
//! crash never leaves one behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether others may hold the lock at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nobody else, shared or exclusive.
    Exclusive,
    /// Others may hold it shared; nobody exclusive.
    Shared,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process held it for the whole wait.
    #[error("{} is held by another process", .path.display())]
    Busy { path: PathBuf },
    #[error("cannot open the lock file {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Held {
    file: File,
}

impl Held {
    /// The locked file, to record who holds it.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }
}

/// How often a waiting `acquire` tries again.
const RETRY: Duration = Duration::from_millis(5);

/// Opens (creating) `path` and locks it, trying again until `wait` has
/// passed; `Duration::ZERO` tries once.
///
/// # Errors
/// [`LockError::Busy`] when another process kept it, [`LockError::Io`]
/// when the file cannot be opened.
pub fn acquire(path: &Path, mode: Mode, wait: Duration) -> Result<Held, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.to_owned(),
            source,
        })?;
    let deadline = Instant::now() + wait;
    loop {
        let got = match mode {
            Mode::Exclusive => file.try_lock(),
            Mode::Shared => file.try_lock_shared(),
        };
        if got.is_ok() {
            return Ok(Held { file });
        }
        if Instant::now() >= deadline {
            return Err(LockError::Busy {
                path: path.to_owned(),
            });
        }
        std::thread::sleep(RETRY);
    }
}

/// Whether taking `path` in `mode` would fail now: another process holds
/// it (exclusively, or at all when `mode` is exclusive). A missing file is
/// not held; it is never created.
#[must_use]
pub fn is_held(path: &Path, mode: Mode) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let free = match mode {
        Mode::Exclusive => file.try_lock(),
        Mode::Shared => file.try_lock_shared(),
    };
    free.is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let one = acquire(&path, Mode::Shared, Duration::ZERO).unwrap();
        let two = acquire(&path, Mode::Shared, Duration::ZERO).unwrap();
        assert!(matches!(
            acquire(&path, Mode::Exclusive, Duration::from_millis(20)),
            Err(LockError::Busy { .. })
        ));
        assert!(is_held(&path, Mode::Exclusive));
        assert!(!is_held(&path, Mode::Shared));
        drop((one, two));
        let held = acquire(&path, Mode::Exclusive, Duration::ZERO).unwrap();
        assert!(is_held(&path, Mode::Shared));
        drop(held);
        assert!(!is_held(&path, Mode::Exclusive));
        assert!(!is_held(&dir.path().join("missing"), Mode::Exclusive));
    }

    #[test]
    fn a_waiting_acquire_gets_the_lock_once_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = acquire(&path, Mode::Exclusive, Duration::ZERO).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                tx.send(()).unwrap();
                acquire(&path, Mode::Exclusive, Duration::from_secs(60)).map(drop)
            })
        };
        rx.recv().unwrap();
        drop(held);
        waiter.join().unwrap().unwrap();
    }
}
