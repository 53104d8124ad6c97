// Over 400 lines: the repository format in one file, so it reads as its own specification.

//! The repository on disk:
//!
//! ```text
//! <repository>/
//!   acp-backup.json        marker: {"format":"acp-backup/1"}, plus
//!                          "encryption" and "recipient" when encrypted
//!   objects/ab/ab12…       one zstd frame per distinct file content, named
//!                          by the BLAKE3 hash of the content, then a
//!                          40-byte skippable frame sealing the stored bytes
//!                          (encrypted: age(zstd), named by a keyed hash)
//!   snapshots/<id>.<b3>.json[.age]
//!                          one manifest per backup; <b3> is the BLAKE3 hash
//!                          of the file itself, so any flipped byte shows
//!   tmp/                   objects and manifests being written
//!   lock                   held (flock) by whoever writes
//! ```
//!
//! A manifest is renamed into `snapshots/` only after every object it
//! names is on disk (synced), so an interrupted backup is invisible.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use std::sync::Arc;

use super::BackupError;
use super::crypt::Cipher;
use super::manifest::{Manifest, is_hash};
use crate::config::BackupConfig;
use crate::lockfile;

/// The marker file's exact content.
const MARKER: &str = "{\"format\":\"acp-backup/1\"}\n";
const MARKER_FILE: &str = "acp-backup.json";

/// How long a run waits for another (a scheduled backup, a prune) to
/// finish before giving up.
pub(crate) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Read and write size for streaming file content.
const CHUNK: usize = 1 << 20;

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    cipher: Option<Arc<Cipher>>,
}

fn encrypted_marker(recipient: &str) -> String {
    format!(
        "{{\"format\":\"acp-backup/1\",\"encryption\":\"age-x25519\",\"recipient\":\"{recipient}\"}}\n"
    )
}

/// The cipher the config's key gives, if any.
fn cipher_of(config: &BackupConfig) -> Result<Option<Arc<Cipher>>, BackupError> {
    config
        .key
        .as_ref()
        .map(|k| {
            Cipher::from_key(k.expose())
                .map(Arc::new)
                .map_err(BackupError::Usage)
        })
        .transpose()
}

/// Whether the repository at `root` exists and is plain (`Some(false)`) or
/// encrypted (`Some(true)`); `None` when there is none yet. Needs no key.
#[must_use]
pub(crate) fn is_encrypted(root: &Path) -> Option<bool> {
    let text = fs::read_to_string(root.join(MARKER_FILE)).ok()?;
    Some(text != MARKER)
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
    _held: lockfile::Held,
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
    pub(crate) fn open_or_create(config: &BackupConfig) -> Result<Self, BackupError> {
        let root = config.repository.as_path();
        let cipher = cipher_of(config)?;
        let marker = root.join(MARKER_FILE);
        if !marker.exists() {
            // Two processes may create it at once (`acp run`'s first
            // scheduled backup and `acp backup create`): one creates, under
            // a lock in `tmp/`, and the other then finds it made.
            let tmp = root.join("tmp");
            fs::create_dir_all(&tmp).map_err(io_err(root))?;
            let _creating = lockfile::acquire(
                &tmp.join("create.lock"),
                lockfile::Mode::Exclusive,
                std::time::Duration::from_secs(60),
            )
            .map_err(|e| BackupError::Usage(format!("cannot create the repository: {e}")))?;
            if marker.exists() {
                return Self::open(config);
            }
            let empty = match fs::read_dir(root) {
                Ok(d) => d.flatten().all(|e| e.file_name() == "tmp"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) => return Err(io_err(root)(e)),
            };
            if !empty {
                let _ = fs::remove_file(tmp.join("create.lock"));
                let _ = fs::remove_dir(&tmp);
                return Err(BackupError::Usage(format!(
                    "{} is not empty and is not an acp backup repository (no {MARKER_FILE}): set \
                     backup.repository to an empty or new directory",
                    root.display()
                )));
            }
            for dir in ["objects", "snapshots", "tmp"] {
                fs::create_dir_all(root.join(dir)).map_err(io_err(root))?;
            }
            let text = cipher
                .as_ref()
                .map_or_else(|| MARKER.to_owned(), |c| encrypted_marker(&c.recipient()));
            write_synced(&root.join("tmp").join(MARKER_FILE), text.as_bytes())?;
            fs::rename(root.join("tmp").join(MARKER_FILE), &marker).map_err(io_err(&marker))?;
            sync_dir(root)?;
        }
        Self::open(config)
    }

    /// Opens an existing repository.
    ///
    /// # Errors
    /// [`BackupError::Usage`] if there is none.
    pub fn open(config: &BackupConfig) -> Result<Self, BackupError> {
        let root = config.repository.as_path();
        let cipher = cipher_of(config)?;
        let marker = root.join(MARKER_FILE);
        match fs::read_to_string(&marker) {
            Ok(text) if text == MARKER => {
                if cipher.is_some() {
                    return Err(BackupError::Usage(format!(
                        "ACP_BACKUP_KEY is set but the repository at {} is not encrypted: unset \
                         the key, or set backup.repository to a new directory for encrypted \
                         backups",
                        root.display()
                    )));
                }
            }
            Ok(text) if text.contains("\"encryption\":\"age-x25519\"") => {
                check_encrypted_marker(&text, cipher.as_deref(), root, &marker)?;
            }
            Ok(_) => {
                return Err(BackupError::Corrupt(format!(
                    "{} is damaged or from another version (expected {})",
                    marker.display(),
                    MARKER.trim()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BackupError::Usage(format!(
                    "no backup repository at {}: run `acp backup create` first, or set \
                     backup.repository",
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
            cipher,
        })
    }

    /// Whether the repository is encrypted.
    #[must_use]
    pub fn encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The file name of the object holding content with this hash.
    #[must_use]
    pub(crate) fn object_name(&self, hash: &str) -> String {
        self.cipher
            .as_ref()
            .map_or_else(|| hash.to_owned(), |c| c.object_name(hash))
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
        let mode = if exclusive {
            lockfile::Mode::Exclusive
        } else {
            lockfile::Mode::Shared
        };
        match lockfile::acquire(&self.root.join("lock"), mode, LOCK_WAIT) {
            Ok(held) => Ok(RepoLock { _held: held }),
            Err(lockfile::LockError::Busy { .. }) => {
                Err(BackupError::Busy(self.root.display().to_string()))
            }
            Err(lockfile::LockError::Io { path, source }) => Err(BackupError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub(super) fn object_path(&self, hash: &str) -> PathBuf {
        let name = self.object_name(hash);
        self.root.join("objects").join(&name[..2]).join(&name)
    }

    /// Whether an object is present (not whether it is intact).
    #[must_use]
    pub(crate) fn has_object(&self, hash: &str) -> bool {
        self.object_path(hash).exists()
    }

    /// Reads, hashes and compresses a file into the repository. Returns
    /// the content hash, the bytes read, and the compressed bytes written
    /// (0 when the object was already there).
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub(crate) fn put_file(
        &self,
        src: &Path,
        level: i32,
    ) -> Result<(String, u64, u64), BackupError> {
        let mut input = File::open(src).map_err(io_err(src))?;
        let tmp = tempfile::Builder::new()
            .prefix("obj-")
            .tempfile_in(self.root.join("tmp"))
            .map_err(io_err(&self.root))?;
        let sink = match &self.cipher {
            Some(c) => Sink::Sealed(c.encrypt(tmp.as_file()).map_err(io_err(tmp.path()))?),
            None => Sink::Plain {
                file: tmp.as_file(),
                hasher: Box::default(),
            },
        };
        let mut encoder = zstd::Encoder::new(sink, level).map_err(io_err(tmp.path()))?;
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
        encoder
            .finish()
            .and_then(Sink::finish)
            .map_err(io_err(tmp.path()))?;
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
    pub(crate) fn read_object(
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
        let mut seal = None;
        let input: Box<dyn Read> = if let Some(c) = &self.cipher {
            c.decrypt(file).map_err(|e| {
                ObjectError::Damaged(format!("object {hash} cannot be decrypted: {e}"))
            })?
        } else {
            let (reader, check) = open_sealed(file, hash)?;
            seal = Some(check);
            Box::new(reader)
        };
        let mut decoder = zstd::Decoder::new(input)
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
        if let Some(seal) = seal {
            // Whatever the decoder left unread is part of the seal's hash.
            io::copy(&mut decoder.finish(), &mut io::sink())
                .map_err(|e| ObjectError::Damaged(format!("object {hash}: {e}")))?;
            if *seal.hasher.borrow().finalize().as_bytes() != seal.expected {
                return Err(ObjectError::Damaged(format!(
                    "object {hash} is damaged: its stored bytes do not match its seal"
                )));
            }
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
            found.push((name.clone(), self.load(&item.path(), &name)));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().map(|(_, f)| f).collect())
    }

    /// The file name of the newest manifest, if any (nothing is read).
    ///
    /// # Errors
    /// I/O errors reading the directory.
    pub(crate) fn newest_name(&self) -> Result<Option<String>, BackupError> {
        let dir = self.root.join("snapshots");
        Ok(fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .max())
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
            if let Found::Ok(m) = self.load(&dir.join(name), name) {
                return Ok(Some(*m));
            }
        }
        Ok(None)
    }

    fn load(&self, path: &Path, name: &str) -> Found {
        let damaged = |reason: String| Found::Damaged {
            file: format!("snapshots/{name}"),
            reason,
        };
        let (stem, sealed) = match name.strip_suffix(".json.age") {
            Some(stem) => (Some(stem), true),
            None => (name.strip_suffix(".json"), false),
        };
        let Some((id, hash)) = stem.and_then(|stem| stem.split_once('.')) else {
            return damaged("not named <id>.<blake3>.json".into());
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) => return damaged(e.to_string()),
        };
        let actual = blake3::hash(&bytes).to_hex().to_string();
        if !is_hash(hash) || actual != hash {
            return damaged(format!(
                "its content hash is {actual}, its name says {hash}: the file was changed or \
                 damaged"
            ));
        }
        let bytes = match (sealed, &self.cipher) {
            (false, None) => bytes,
            (true, Some(c)) => {
                let mut plain = Vec::new();
                match c
                    .decrypt(bytes.as_slice())
                    .and_then(|mut r| r.read_to_end(&mut plain).map_err(|e| e.to_string()))
                {
                    Ok(_) => plain,
                    Err(e) => return damaged(format!("cannot be decrypted: {e}")),
                }
            }
            (true, None) => return damaged("encrypted, and no ACP_BACKUP_KEY is set".into()),
            (false, Some(_)) => {
                return damaged("not encrypted, in an encrypted repository".into());
            }
        };
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

    /// Makes every object written so far durable (one `syncfs`). Call
    /// before [`Repo::commit`].
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn sync_objects(&self) -> Result<(), BackupError> {
        sync_fs(&self.root)
    }

    /// Commits a backup whose objects are synced: writes the manifest
    /// (temp file, fsync, rename, directory fsync).
    ///
    /// # Errors
    /// I/O errors.
    pub fn commit(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Io {
            path: "manifest".into(),
            source: io::Error::other(e),
        })?;
        let (bytes, suffix) = match &self.cipher {
            Some(c) => (
                c.encrypt_bytes(&bytes).map_err(io_err(&self.root))?,
                "json.age",
            ),
            None => (bytes, "json"),
        };
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.{suffix}", manifest.id));
        write_synced(&tmp, &bytes)?;
        let dest = self
            .root
            .join("snapshots")
            .join(format!("{}.{hash}.{suffix}", manifest.id));
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(&self.root.join("snapshots"))
    }

    /// Removes a backup's manifest (the backup disappears at once; its
    /// objects go with the next garbage collection).
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn remove_manifest(&self, id: &str) -> Result<(), BackupError> {
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
    pub(crate) fn remove_object(&self, name: &str) -> Result<(), BackupError> {
        let path = self
            .root
            .join("objects")
            .join(&name[..2.min(name.len())])
            .join(name);
        fs::remove_file(&path).map_err(io_err(&path))
    }

    /// Empties `tmp/` (left by interrupted runs). Only under the
    /// exclusive lock.
    pub(crate) fn clean_tmp(&self) {
        if let Ok(dir) = fs::read_dir(self.root.join("tmp")) {
            for item in dir.flatten() {
                // Files from interrupted writes, directories from an
                // interrupted drill.
                let path = item.path();
                let _ = if item.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
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
pub(crate) enum ObjectError {
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

/// Checks an encrypted repository's marker against the key.
fn check_encrypted_marker(
    text: &str,
    cipher: Option<&Cipher>,
    root: &Path,
    marker: &Path,
) -> Result<(), BackupError> {
    let Some(c) = cipher else {
        return Err(BackupError::Usage(format!(
            "the repository at {} is encrypted: set ACP_BACKUP_KEY (in .env or the environment) \
             to the AGE-SECRET-KEY-1... it was made with",
            root.display()
        )));
    };
    if text == encrypted_marker(&c.recipient()) {
        return Ok(());
    }
    let prefix = "{\"format\":\"acp-backup/1\",\"encryption\":\"age-x25519\",\"recipient\":\"age1";
    let well_formed = text.starts_with(prefix)
        && text.ends_with("\"}\n")
        && text.len() == encrypted_marker(&c.recipient()).len();
    if well_formed {
        Err(BackupError::Usage(format!(
            "ACP_BACKUP_KEY is not the key of the repository at {} ({}): set the key it was made \
             with",
            root.display(),
            text.trim()
        )))
    } else {
        Err(BackupError::Corrupt(format!(
            "{} is damaged",
            marker.display()
        )))
    }
}

/// A plain object ends with a zstd skippable frame (magic, length 32, then
/// the BLAKE3 hash of the compressed frame before it). `zstd -d` skips it.
/// The content hash alone cannot see a flipped bit in the parts of a zstd
/// frame header that decoders ignore (the unused bit, a larger window); the
/// seal covers every byte. Encrypted objects need none: age authenticates
/// every byte it wrote.
const SEAL_MAGIC: [u8; 4] = 0x184D_2A5E_u32.to_le_bytes();
const SEAL_LEN: usize = 8 + 32;

/// The seal of a plain object whose compressed frame hashed to `hash`.
fn seal(hash: &blake3::Hash) -> [u8; SEAL_LEN] {
    let mut seal = [0u8; SEAL_LEN];
    seal[..4].copy_from_slice(&SEAL_MAGIC);
    seal[4..8].copy_from_slice(&32u32.to_le_bytes());
    seal[8..].copy_from_slice(hash.as_bytes());
    seal
}

/// What the zstd encoder writes into: the file (hashed, for its seal), or
/// age's stream writer, which must be finished to write its last chunk.
enum Sink<'a> {
    Plain {
        file: &'a File,
        hasher: Box<blake3::Hasher>,
    },
    Sealed(age::stream::StreamWriter<&'a File>),
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain { file, hasher } => {
                let n = file.write(buf)?;
                hasher.update(&buf[..n]);
                Ok(n)
            }
            Self::Sealed(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain { file, .. } => file.flush(),
            Self::Sealed(w) => w.flush(),
        }
    }
}

impl Sink<'_> {
    fn finish(self) -> io::Result<()> {
        match self {
            Self::Plain { mut file, hasher } => file.write_all(&seal(&hasher.finalize())),
            Self::Sealed(w) => w.finish().map(|_| ()),
        }
    }
}

/// Hashes what passes through, for checking a plain object's seal.
struct Hashing<R> {
    inner: R,
    hasher: Rc<RefCell<blake3::Hasher>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

/// What a plain object's stored bytes must hash to, and their running hash.
struct SealCheck {
    expected: [u8; 32],
    hasher: Rc<RefCell<blake3::Hasher>>,
}

/// Opens a plain object: checks the seal's shape and returns a reader of
/// the zstd frame that hashes what it reads, and the check to make after.
fn open_sealed(
    mut file: File,
    hash: &str,
) -> Result<(Hashing<io::Take<File>>, SealCheck), ObjectError> {
    let damaged = |why: String| ObjectError::Damaged(format!("object {hash} {why}"));
    let len = file
        .metadata()
        .map_err(|e| damaged(format!("cannot be read: {e}")))?
        .len();
    let body = len
        .checked_sub(SEAL_LEN as u64)
        .ok_or_else(|| damaged(format!("is too short ({len} bytes) to be an acp object")))?;
    let mut found = [0u8; SEAL_LEN];
    file.seek(SeekFrom::Start(body))
        .and_then(|_| file.read_exact(&mut found))
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .map_err(|e| damaged(format!("cannot be read: {e}")))?;
    let mut expected = [0u8; 32];
    expected.copy_from_slice(&found[8..]);
    if found != seal(&blake3::Hash::from_bytes(expected)) {
        return Err(damaged("has a damaged seal (its last 40 bytes)".into()));
    }
    let hasher = Rc::new(RefCell::new(blake3::Hasher::new()));
    let reader = Hashing {
        inner: file.take(body),
        hasher: Rc::clone(&hasher),
    };
    Ok((reader, SealCheck { expected, hasher }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_processes_creating_one_repository_both_get_it() {
        let tmp = tempfile::tempdir().unwrap();
        let config = BackupConfig::defaults(tmp.path());
        std::thread::scope(|s| {
            let made: Vec<_> = (0..4)
                .map(|_| s.spawn(|| Repo::open_or_create(&config).map(|_| ())))
                .collect();
            for m in made {
                m.join().unwrap().unwrap();
            }
        });
        // A directory holding something else is still refused.
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("notes.txt"), "mine").unwrap();
        let mut config = BackupConfig::defaults(other.path());
        config.repository = other.path().to_path_buf();
        assert!(matches!(
            Repo::open_or_create(&config),
            Err(BackupError::Usage(_))
        ));
        assert!(!other.path().join("tmp").exists());
    }
}
