//! Backups: full, incremental and differential, restore to any point in
//! time, verification, retention and recovery drills.
//!
//! What a backup holds (its *sources*): `config/`, `devlogs/`, every
//! agent's inbox (as `agent_workspaces/<id>/inbox`, wherever the workspace
//! is), the paths in `backup.include`, and the store as `data/acp.db`,
//! captured through SQLite's online backup API while the service runs.
//! `.env` files are never included, nor `backup.exclude`.
//!
//! The repository format is described in [`repo`]; each backup is a
//! [`Manifest`] listing what changed since its parent. File contents are
//! content-addressed zstd blobs shared between backups, packed many to a
//! file; large files (the store first) are split into content-defined
//! chunks, so a backup stores what changed inside them, not the whole file.
//!
//! - [`repo`]: the layout on disk, the marker, manifests, the lock.
//! - [`blob`]: one stored content (zstd and a seal, or age); [`pack`]: many
//!   blobs in a file, and the index of every blob; [`chunk`]: where large
//!   files are cut; [`content`]: files into blobs and back.
//! - [`scan`]: taking a backup; [`restore`]; [`ops`]: verify, drills,
//!   retention and the schedule; [`gc`]: prune, and what no backup uses.

mod blob;
mod chunk;
mod content;
mod crypt;
mod gc;
pub mod manifest;
mod ops;
mod pack;
pub mod repo;
mod restore;
mod scan;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::BackupConfig;
use crate::model::prefix::{IdKind, IdPrefix, PrefixError};

pub use crypt::Cipher;
pub use gc::{PruneReport, prune};
pub use manifest::{Entry, Kind, Manifest, Node, State, Stats, Summary};
pub use ops::{BackupCheck, Drill, VerifyReport, Which, drill, due, missing_files, verify};
pub use repo::Repo;
pub use restore::{InPlace, RestoreReport, restore_in_place, restore_to};
pub use scan::{Created, create};

/// What backups cover and how: the `[backup]` settings and the root's
/// layout, as the core gives them (never the whole config).
#[derive(Debug, Clone)]
pub struct Scope {
    /// The root (an in-place restore goes here).
    pub root: PathBuf,
    /// The store file, captured through SQLite's online backup API.
    pub store: PathBuf,
    /// Each agent's inbox directory, by agent id (wherever its workspace
    /// is).
    pub inboxes: Vec<(String, PathBuf)>,
    pub settings: BackupConfig,
}

/// What went wrong, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Bad input or a request that cannot be met as asked.
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The repository itself is not usable.
    #[error("the backup repository is damaged: {0}")]
    Corrupt(String),
    /// Some files of a backup cannot be restored.
    #[error("backup {id} is damaged: {} file(s) cannot be restored (nothing was restored; `--partial` restores the intact files):\n{}", .files.len(), list(.files))]
    Damaged {
        id: String,
        files: Vec<(String, String)>,
    },
    #[error("another acp backup, restore or prune is using {0}: wait for it to finish")]
    Busy(String),
    #[error("the store: {0}")]
    Store(#[from] rusqlite::Error),
}

fn list(files: &[(String, String)]) -> String {
    files
        .iter()
        .map(|(path, why)| format!("  {path}: {why}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl BackupError {
    /// Bad input (exit code 2) rather than a failure.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        matches!(self, Self::Usage(_) | Self::Busy(_))
    }
}

/// Progress of a long run, for a progress bar, `--progress json` or the
/// Discord progress line.
pub trait Progress: Sync {
    /// A step without a measure starts (scanning, syncing, committing).
    fn step(&self, _phase: &str) {}
    /// A phase starts; `total` bytes will pass through [`Progress::advance`].
    fn start(&self, _phase: &str, _total: u64) {}
    /// `bytes` more were processed.
    fn advance(&self, _bytes: u64) {}
    /// The phase ended.
    fn finish(&self) {}
}

/// No progress output.
pub struct Quiet;
impl Progress for Quiet {}

/// A backup id, as people give it: 6 characters are enough (about 17
/// minutes of ids), backups being minutes apart.
const BACKUP: IdKind = IdKind {
    name: "backup",
    hint: "`acp backup list` shows them, or use latest",
    min: 6,
};

/// The usable manifests of a repository, by id, and the damaged ones.
#[derive(Debug)]
pub struct Catalog {
    pub manifests: Vec<Manifest>,
    pub damaged: Vec<(String, String)>,
    by_id: HashMap<String, usize>,
}

impl Catalog {
    /// Reads every manifest.
    ///
    /// # Errors
    /// I/O errors.
    pub fn read(repo: &Repo) -> Result<Self, BackupError> {
        let mut manifests = Vec::new();
        let mut damaged = Vec::new();
        for found in repo.manifests()? {
            match found {
                repo::Found::Ok(m) => manifests.push(*m),
                repo::Found::Damaged { file, reason } => damaged.push((file, reason)),
            }
        }
        Ok(Self::of(manifests, damaged))
    }

    /// What a new backup needs, reading one manifest at a time, newest
    /// first, and keeping only the newest backup's chain and the newest
    /// full backup: a repository keeps many full backups, each listing
    /// every file, and holding them all at once made a backup's memory
    /// grow with how many are kept. Also returns every blob any backup
    /// names (for [`gc::trusted_index`]); the damaged manifests are in the
    /// catalog as [`Catalog::read`] has them.
    ///
    /// # Errors
    /// I/O errors reading the directory.
    pub(crate) fn read_for_backup(
        repo: &Repo,
    ) -> Result<(Self, std::collections::HashSet<pack::Name>), BackupError> {
        let mut needed = std::collections::HashSet::new();
        let (mut head, mut full) = (false, false);
        let (mut manifests, mut damaged, mut named) =
            (Vec::new(), Vec::new(), std::collections::HashSet::new());
        for name in repo.manifest_names()?.iter().rev() {
            match repo.load_named(name) {
                repo::Found::Ok(m) => {
                    named.extend(gc::blobs_of(repo, &m));
                    let keep = !head || needed.contains(&m.id) || (!full && m.kind == Kind::Full);
                    head = true;
                    full |= m.kind == Kind::Full;
                    if keep {
                        needed.extend(m.parent.clone());
                        manifests.push(*m);
                    }
                }
                repo::Found::Damaged { file, reason } => damaged.push((file, reason)),
            }
        }
        damaged.reverse();
        Ok((Self::of(manifests, damaged), named))
    }

    /// A catalog of these manifests (sorted here by id).
    fn of(mut manifests: Vec<Manifest>, damaged: Vec<(String, String)>) -> Self {
        manifests.sort_by(|a, b| a.id.cmp(&b.id));
        let by_id = manifests
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        Self {
            manifests,
            damaged,
            by_id,
        }
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Manifest> {
        self.by_id.get(id).map(|&i| &self.manifests[i])
    }

    /// Finds a backup by id, unique id prefix (at least 6 characters) or
    /// `latest`: the same resolver as message and prompt ids
    /// ([`crate::model::prefix`]), over the catalog's sorted ids.
    ///
    /// # Errors
    /// [`BackupError::Usage`] saying what exists.
    pub fn find(&self, key: &str) -> Result<&Manifest, BackupError> {
        let key = key.trim();
        if key.eq_ignore_ascii_case("latest") {
            return self.manifests.last().ok_or_else(|| {
                BackupError::Usage("there are no backups yet: run `acp backup create`".into())
            });
        }
        if let Some(m) = self.get(&key.to_ascii_uppercase()) {
            return Ok(m);
        }
        let usage = |e: PrefixError| BackupError::Usage(e.to_string());
        let prefix = IdPrefix::parse(key, BACKUP).map_err(usage)?;
        // The manifests are sorted by id: the prefix's ids are one run.
        let (from, to) = prefix.range();
        let first = self
            .manifests
            .partition_point(|m| m.id.as_str() < from.as_str());
        let matches: Vec<&Manifest> = self.manifests[first..]
            .iter()
            .take_while(|m| m.id.as_str() < to.as_str())
            .take(crate::model::prefix::LISTED + 1)
            .collect();
        if matches.is_empty()
            && let Some((file, why)) = self
                .damaged
                .iter()
                .find(|(file, _)| file.starts_with(&format!("snapshots/{}", prefix.as_str())))
        {
            return Err(BackupError::Corrupt(format!(
                "backup {key} is refused: {file} is damaged: {why}"
            )));
        }
        let id = prefix
            .pick(matches.iter().map(|m| m.id.clone()).collect())
            .map_err(usage)?;
        self.get(&id)
            .ok_or_else(|| BackupError::Usage(format!("no backup {id}")))
    }

    /// The newest backup taken at or before `at`.
    ///
    /// # Errors
    /// [`BackupError::Usage`] if there is none.
    pub fn at(&self, at: jiff::Timestamp) -> Result<&Manifest, BackupError> {
        self.manifests
            .iter()
            .rev()
            .find(|m| m.time().is_ok_and(|t| t <= at))
            .ok_or_else(|| {
                let first = self.manifests.first().map_or_else(
                    || "there are none yet".to_owned(),
                    |m| format!("the first is from {}", m.created_at),
                );
                BackupError::Usage(format!("no backup was taken at or before {at}: {first}"))
            })
    }

    /// The chain a backup needs, oldest (the full backup) first.
    ///
    /// # Errors
    /// [`BackupError::Corrupt`] naming the missing or damaged link.
    pub fn chain(&self, id: &str) -> Result<Vec<&Manifest>, BackupError> {
        let mut chain = Vec::new();
        let mut next = Some(id.to_owned());
        while let Some(id) = next.take() {
            let Some(m) = self.get(&id) else {
                let child = chain.last().map_or_else(String::new, |c: &&Manifest| {
                    format!("backup {} depends on ", c.id)
                });
                return Err(BackupError::Corrupt(format!(
                    "{child}backup {id}, which is missing or damaged (`acp backup verify --all` \
                     says which)"
                )));
            };
            if chain.len() > self.manifests.len() {
                return Err(BackupError::Corrupt(format!(
                    "backup {id} is part of a loop"
                )));
            }
            chain.push(m);
            next.clone_from(&m.parent);
        }
        chain.reverse();
        Ok(chain)
    }

    /// The state a backup restores.
    ///
    /// # Errors
    /// As [`Catalog::chain`], or a state that could escape the target.
    pub fn state(&self, id: &str) -> Result<State, BackupError> {
        let mut state = State::new();
        for m in self.chain(id)? {
            manifest::apply(&mut state, m);
        }
        manifest::check_state(&state)
            .map_err(|e| BackupError::Corrupt(format!("backup {id} is refused: {e}")))?;
        Ok(state)
    }
}

/// Milliseconds of a duration, for stats.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
