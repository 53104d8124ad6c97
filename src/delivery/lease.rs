//! A dispatcher's lease: an OS lock on `data/dispatchers/<owner>.lock`,
//! held for the life of the process. Deliveries claimed by an owner whose
//! lock is free (the process died) go back to the queue.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lockfile;
use crate::model::MessageId;

/// A dispatcher's claim on its deliveries, alive as long as the process.
#[derive(Debug)]
pub struct Lease {
    owner: String,
    path: PathBuf,
    _held: lockfile::Held,
}

impl Lease {
    /// Takes a new lease under `dir` (`data/dispatchers`).
    ///
    /// # Errors
    /// I/O errors creating or locking the lease file.
    pub fn acquire(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let owner = MessageId::generate().to_string();
        let path = dir.join(format!("{owner}.lock"));
        // Lock under a temporary name, then rename: a lease file visible
        // under its final name is always locked while its owner lives.
        let temp = dir.join(format!(".{owner}.new"));
        // A name nobody else uses: the lock is free.
        let held = lockfile::acquire(&temp, lockfile::Mode::Exclusive, Duration::ZERO)
            .map_err(io::Error::other)?;
        fs::rename(&temp, &path)?;
        Ok(Self {
            owner,
            path,
            _held: held,
        })
    }

    /// The owner id recorded on claimed deliveries.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether the dispatcher `owner` is gone: its lease file is missing or
    /// nobody holds its lock. Removes the file of a dead owner.
    #[must_use]
    pub(crate) fn is_dead(dir: &Path, owner: &str) -> bool {
        // Owners come from the store: never build a path from anything but
        // an id we could have made.
        if owner.parse::<MessageId>().is_err() {
            return true;
        }
        let path = dir.join(format!("{owner}.lock"));
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(_) => return false,
            Ok(_) => {}
        }
        if lockfile::is_held(&path, lockfile::Mode::Exclusive) {
            return false;
        }
        let _ = fs::remove_file(&path);
        true
    }
}

impl Lease {
    /// Removes the lease files of dispatchers that are gone (killed before
    /// they could remove their own), other than `me`.
    pub(super) fn sweep(dir: &Path, me: &str) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            if owner != me {
                // Removes the file when nobody holds it.
                let _ = Self::is_dead(dir, owner);
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
