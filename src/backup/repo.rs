//! The repository on disk:
//!
//! ```text
//! <repository>/
//!   acp-backup.json        marker: {"format":"acp-backup/1"}
//!   objects/ab/ab12…       one zstd frame per distinct file content, named
//!                          by the BLAKE3 hash of the content
//!   snapshots/<id>.<b3>.json
//!                          one manifest per backup; <b3> is the BLAKE3 hash
//!                          of the file itself, so any flipped byte shows
//!   tmp/                   objects and manifests being written
//!   lock                   held (flock) by whoever writes
//! ```
//!
//! A manifest is renamed into `snapshots/` only after every object it
//! names is on disk (synced), so an interrupted backup is invisible.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::BackupError;
use super::manifest::{Manifest, is_hash};

/// The marker file's exact content.
const MARKER: &str = "{\"format\":\"acp-backup/1\"}\n";
const MARKER_FILE: &str = "acp-backup.json";

/// How long a run waits for another (a scheduled backup, a prune) to
/// finish before giving up.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Read and write size for streaming file content.
const CHUNK: usize = 1 << 20;

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

/// A manifest as found in `snapshots/`, or why it cannot be used.
#[derive(Debug, Clone)]
pub enum Found {
    Ok(Box<Manifest>),
    Damaged { file: String, reason: String },
}

/// The lock a reader or writer holds for its whole run.
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Repo {
    /// Opens an existing repository, or creates one where nothing (or an
    /// empty directory) is.
    ///
    /// # Errors
    /// [`BackupError`] if the directory holds something else.
    pub fn open_or_create(root: &Path) -> Result<Self, BackupError> {
        let marker = root.join(MARKER_FILE);
        if !marker.exists() {
            let empty = match fs::read_dir(root) {
                Ok(mut d) => d.next().is_none(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) => return Err(io_err(root)(e)),
            };
            if !empty {
                return Err(BackupError::Usage(format!(
                    "{} is not empty and is not an acp backup repository (no {MARKER_FILE}): set backup.repository to an empty or new directory",
                    root.display()
                )));
            }
            for dir in ["objects", "snapshots", "tmp"] {
                fs::create_dir_all(root.join(dir)).map_err(io_err(root))?;
            }
            write_synced(&root.join("tmp").join(MARKER_FILE), MARKER.as_bytes())?;
            fs::rename(root.join("tmp").join(MARKER_FILE), &marker).map_err(io_err(&marker))?;
            sync_dir(root)?;
        }
        Self::open(root)
    }

    /// Opens an existing repository.
    ///
    /// # Errors
    /// [`BackupError::Usage`] if there is none.
    pub fn open(root: &Path) -> Result<Self, BackupError> {
        let marker = root.join(MARKER_FILE);
        match fs::read_to_string(&marker) {
            Ok(text) if text == MARKER => {}
            Ok(_) => {
                return Err(BackupError::Corrupt(format!(
                    "{} is damaged or from another version (expected {})",
                    marker.display(),
                    MARKER.trim()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BackupError::Usage(format!(
                    "no backup repository at {}: run `acp backup create` first, or set backup.repository",
                    root.display()
                )));
            }
            Err(e) => return Err(io_err(&marker)(e)),
        }
        for dir in ["objects", "snapshots", "tmp"] {
            fs::create_dir_all(root.join(dir)).map_err(io_err(root))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Takes the repository lock: exclusive for create and prune, shared
    /// for readers. Waits up to [`LOCK_WAIT`] for another run to finish.
    ///
    /// # Errors
    /// [`BackupError::Busy`] or I/O.
    pub fn lock(&self, exclusive: bool) -> Result<RepoLock, BackupError> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            let got = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match got {
                Ok(()) => return Ok(RepoLock { _file: file }),
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(_) => return Err(BackupError::Busy(self.root.display().to_string())),
            }
        }
    }

    fn object_path(&self, hash: &str) -> PathBuf {
        self.root.join("objects").join(&hash[..2]).join(hash)
    }

    /// Whether an object is present (not whether it is intact).
    #[must_use]
    pub fn has_object(&self, hash: &str) -> bool {
        self.object_path(hash).exists()
    }

    /// Reads, hashes and compresses a file into the repository. Returns
    /// the content hash, the bytes read, and the compressed bytes written
    /// (0 when the object was already there).
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn put_file(&self, src: &Path, level: i32) -> Result<(String, u64, u64), BackupError> {
        let mut input = File::open(src).map_err(io_err(src))?;
        let tmp = tempfile::Builder::new()
            .prefix("obj-")
            .tempfile_in(self.root.join("tmp"))
            .map_err(io_err(&self.root))?;
        let mut encoder = zstd::Encoder::new(tmp.as_file(), level).map_err(io_err(tmp.path()))?;
        encoder.include_checksum(true).map_err(io_err(tmp.path()))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(src)(e)),
            };
            hasher.update(&buf[..n]);
            encoder.write_all(&buf[..n]).map_err(io_err(tmp.path()))?;
            size += n as u64;
        }
        encoder.finish().map_err(io_err(tmp.path()))?;
        let hash = hasher.finalize().to_hex().to_string();
        let dest = self.object_path(&hash);
        if dest.exists() {
            return Ok((hash, size, 0));
        }
        let stored = tmp.as_file().metadata().map_err(io_err(tmp.path()))?.len();
        let dir = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        // Synced in one go (syncfs) before the manifest is written.
        tmp.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
        Ok((hash, size, stored))
    }

    /// Streams an object's content into `out`, checking its hash and size.
    /// Returns why it is unusable, if it is.
    ///
    /// # Errors
    /// A description of the damage (missing, undecodable, wrong hash or
    /// size), or a write error on `out` (as [`ObjectError::Write`]).
    pub fn read_object(
        &self,
        hash: &str,
        size: u64,
        out: &mut dyn Write,
    ) -> Result<(), ObjectError> {
        let path = self.object_path(hash);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ObjectError::Damaged(format!("object {hash} is missing")));
            }
            Err(e) => return Err(ObjectError::Damaged(format!("object {hash}: {e}"))),
        };
        let mut decoder = zstd::Decoder::new(file)
            .map_err(|e| ObjectError::Damaged(format!("object {hash}: {e}")))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut n_total = 0u64;
        loop {
            let n = match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ObjectError::Damaged(format!(
                        "object {hash} does not decompress: {e}"
                    )));
                }
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(ObjectError::Write)?;
            n_total += n as u64;
        }
        let actual = hasher.finalize().to_hex().to_string();
        if actual != hash {
            return Err(ObjectError::Damaged(format!(
                "object {hash} holds content with hash {actual}"
            )));
        }
        if n_total != size {
            return Err(ObjectError::Damaged(format!(
                "object {hash} holds {n_total} bytes, the manifest says {size}"
            )));
        }
        Ok(())
    }

    /// Every manifest in `snapshots/`, sorted by id (oldest first), with
    /// the damaged ones described.
    ///
    /// # Errors
    /// I/O errors reading the directory.
    pub fn manifests(&self) -> Result<Vec<Found>, BackupError> {
        let dir = self.root.join("snapshots");
        let mut found = Vec::new();
        for item in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let item = item.map_err(io_err(&dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            found.push((name.clone(), Self::load(&item.path(), &name)));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().map(|(_, f)| f).collect())
    }

    /// The newest intact manifest (reads only as many as it must).
    ///
    /// # Errors
    /// I/O errors reading the directory.
    pub fn latest(&self) -> Result<Option<Manifest>, BackupError> {
        let dir = self.root.join("snapshots");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names.iter().rev() {
            if let Found::Ok(m) = Self::load(&dir.join(name), name) {
                return Ok(Some(*m));
            }
        }
        Ok(None)
    }

    fn load(path: &Path, name: &str) -> Found {
        let damaged = |reason: String| Found::Damaged {
            file: format!("snapshots/{name}"),
            reason,
        };
        let Some((id, hash)) = name
            .strip_suffix(".json")
            .and_then(|stem| stem.split_once('.'))
        else {
            return damaged("not named <id>.<blake3>.json".into());
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) => return damaged(e.to_string()),
        };
        let actual = blake3::hash(&bytes).to_hex().to_string();
        if !is_hash(hash) || actual != hash {
            return damaged(format!(
                "its content hash is {actual}, its name says {hash}: the file was changed or damaged"
            ));
        }
        let manifest: Manifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => return damaged(format!("not a manifest: {e}")),
        };
        if manifest.id != id {
            return damaged(format!("names backup {} inside, {id} outside", manifest.id));
        }
        if let Err(reason) = manifest.check() {
            return damaged(reason);
        }
        Found::Ok(Box::new(manifest))
    }

    /// Commits a backup: syncs every object written so far, then writes the
    /// manifest (temp file, fsync, rename, directory fsync).
    ///
    /// # Errors
    /// I/O errors.
    pub fn commit(&self, manifest: &Manifest) -> Result<(), BackupError> {
        sync_fs(&self.root)?;
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Io {
            path: "manifest".into(),
            source: io::Error::other(e),
        })?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let tmp = self.root.join("tmp").join(format!("{}.json", manifest.id));
        write_synced(&tmp, &bytes)?;
        let dest = self
            .root
            .join("snapshots")
            .join(format!("{}.{hash}.json", manifest.id));
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(&self.root.join("snapshots"))
    }

    /// Removes a backup's manifest (the backup disappears at once; its
    /// objects go with the next garbage collection).
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_manifest(&self, id: &str) -> Result<(), BackupError> {
        let dir = self.root.join("snapshots");
        for item in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let item = item.map_err(io_err(&dir))?;
            if item
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{id}."))
            {
                fs::remove_file(item.path()).map_err(io_err(&item.path()))?;
            }
        }
        sync_dir(&dir)
    }

    /// Every object in the repository with its stored size.
    ///
    /// # Errors
    /// I/O errors.
    pub fn objects(&self) -> Result<HashMap<String, u64>, BackupError> {
        let mut out = HashMap::new();
        let dir = self.root.join("objects");
        for sub in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let sub = sub.map_err(io_err(&dir))?.path();
            if !sub.is_dir() {
                continue;
            }
            for item in fs::read_dir(&sub).map_err(io_err(&sub))? {
                let item = item.map_err(io_err(&sub))?;
                let name = item.file_name().to_string_lossy().into_owned();
                let len = item.metadata().map_or(0, |m| m.len());
                out.insert(name, len);
            }
        }
        Ok(out)
    }

    /// Deletes an object (garbage collection).
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_object(&self, hash: &str) -> Result<(), BackupError> {
        if !is_hash(hash) {
            // A stray file in objects/: never ours to judge by name alone.
            let path = self
                .root
                .join("objects")
                .join(&hash[..2.min(hash.len())])
                .join(hash);
            return fs::remove_file(&path).map_err(io_err(&path));
        }
        let path = self.object_path(hash);
        fs::remove_file(&path).map_err(io_err(&path))
    }

    /// Empties `tmp/` (left by interrupted runs). Only under the
    /// exclusive lock.
    pub fn clean_tmp(&self) {
        if let Ok(dir) = fs::read_dir(self.root.join("tmp")) {
            for item in dir.flatten() {
                let _ = fs::remove_file(item.path());
            }
        }
    }

    /// A scratch file path under `tmp/` (same filesystem as the objects).
    #[must_use]
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.root.join("tmp").join(name)
    }

    /// Total bytes of the repository's files.
    #[must_use]
    pub fn size(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(dir) = fs::read_dir(p) else { return 0 };
            dir.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map_or(0, |m| m.len()),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.root)
    }
}

/// Why an object cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{0}")]
    Damaged(String),
    #[error("cannot write the restored content: {0}")]
    Write(io::Error),
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// fsyncs a directory, so renames in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Flushes everything written on the repository's filesystem (one
/// `syncfs` instead of an fsync per object).
#[cfg(target_os = "linux")]
fn sync_fs(root: &Path) -> Result<(), BackupError> {
    let dir = File::open(root).map_err(io_err(root))?;
    rustix::fs::syncfs(&dir).map_err(|e| io_err(root)(e.into()))
}

/// Elsewhere: a full `sync`.
#[cfg(not(target_os = "linux"))]
fn sync_fs(_root: &Path) -> Result<(), BackupError> {
    rustix::fs::sync();
    Ok(())
}
