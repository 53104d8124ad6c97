//! The lock that says "a service runs for this root" (`data/service.lock`,
//! holding its pid): `acp run` holds it for its life, an in-place restore
//! through its swap, and `acp send` reads it to know whether to deliver
//! its own message.

use std::fs;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::AppError;
use crate::lockfile;

/// Held while a service (or an in-place restore) owns the root.
#[derive(Debug)]
pub struct ServiceLock {
    _held: lockfile::Held,
}

fn lock_path(root: &Path) -> PathBuf {
    root.join("data").join("service.lock")
}

/// How long to wait for a CLI process that checks [`ServiceLock::is_held`]
/// (it holds a shared lock for an instant).
const CHECKERS: Duration = Duration::from_millis(200);

impl ServiceLock {
    /// Takes the lock, or says who holds it.
    ///
    /// # Errors
    /// [`AppError::ServiceRunning`] or [`AppError::ServiceLock`].
    pub fn acquire(root: &Path) -> Result<Self, AppError> {
        let path = lock_path(root);
        let lock_err = |source| AppError::ServiceLock {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(lock_err)?;
        }
        let mut held = match lockfile::acquire(&path, lockfile::Mode::Exclusive, CHECKERS) {
            Ok(held) => held,
            Err(lockfile::LockError::Busy { .. }) => {
                let pid = fs::read_to_string(&path).unwrap_or_default();
                return Err(AppError::ServiceRunning {
                    pid: pid.trim().to_owned(),
                });
            }
            Err(lockfile::LockError::Io { source, .. }) => return Err(lock_err(source)),
        };
        let file = held.file();
        file.set_len(0).map_err(lock_err)?;
        file.rewind().map_err(lock_err)?;
        write!(file, "{}", std::process::id()).map_err(lock_err)?;
        Ok(Self { _held: held })
    }

    /// Whether a service currently runs for this root.
    #[must_use]
    pub fn is_held(root: &Path) -> bool {
        lockfile::is_held(&lock_path(root), lockfile::Mode::Shared)
    }

    /// The pid of the service that runs for this root, if one does.
    #[must_use]
    pub fn holder(root: &Path) -> Option<String> {
        if !Self::is_held(root) {
            return None;
        }
        let pid = fs::read_to_string(lock_path(root)).unwrap_or_default();
        Some(pid.trim().to_owned())
    }
}
