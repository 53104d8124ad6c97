// Over 400 lines: the repository format in one file, so it reads as its own specification.

//! The repository on disk (format 2):
//!
//! ```text
//! <repository>/
//!   acp-backup.json        marker: {"format":"acp-backup/2"}, plus
//!                          "encryption" and "recipient" when encrypted
//!   packs/ab/ab12…         blobs (file contents and chunks of large
//!                          files), each stored once, many to a file, with
//!                          a table at the end; named by the BLAKE3 hash of
//!                          the whole pack (see [`super::pack`])
//!   objects/ab/ab12…       format 1: one blob per file, named by the
//!                          BLAKE3 hash of the content (encrypted: by a
//!                          keyed hash); read, never written any more
//!   snapshots/<id>.<b3>.json[.age]
//!                          one manifest per backup; <b3> is the BLAKE3 hash
//!                          of the file itself, so any flipped byte shows
//!   tmp/                   packs and manifests being written
//!   lock                   held (flock) by whoever writes
//! ```
//!
//! A blob is a zstd frame and a seal, or age(zstd) ([`super::blob`]). A
//! file under [`super::chunk::CHUNKED_FROM`] bytes is one blob named by its
//! content's hash; a larger one is split into content-defined chunks
//! ([`super::chunk`]), and its manifest entry lists the chunks' hashes.
//!
//! A manifest is renamed into `snapshots/` only after every pack holding
//! its blobs is on disk (synced), so an interrupted backup is invisible.
//! A repository of format 1 (objects only) is read as it is; the first
//! backup written into it by this acp turns its marker to format 2 (an
//! older acp then refuses it rather than misreading it).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::BackupError;
use super::crypt::Cipher;
use super::manifest::{Kind, Manifest, Stats, Summary, is_hash};
use crate::config::BackupConfig;
use crate::lockfile;

/// The formats this acp reads; it writes the last.
const FORMATS: [&str; 2] = ["acp-backup/1", "acp-backup/2"];
const MARKER_FILE: &str = "acp-backup.json";

/// A plain repository's marker.
fn marker(format: &str) -> String {
    format!("{{\"format\":\"{format}\"}}\n")
}

/// An encrypted repository's marker.
fn encrypted_marker(format: &str, recipient: &str) -> String {
    format!(
        "{{\"format\":\"{format}\",\"encryption\":\"age-x25519\",\"recipient\":\"{recipient}\"}}\n"
    )
}

/// The format this acp writes.
fn current() -> &'static str {
    FORMATS[FORMATS.len() - 1]
}

/// How long a run waits for another (a scheduled backup, a prune) to
/// finish before giving up.
pub(crate) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    cipher: Option<Arc<Cipher>>,
    /// The marker's format.
    format: &'static str,
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
    Some(!FORMATS.iter().any(|f| text == marker(f)))
}

/// A manifest's `<id>.<blake3>.json[.age]` name: the id, the hash, and
/// whether it is sealed.
fn split_name(name: &str) -> Result<(&str, &str, bool), String> {
    let (stem, sealed) = match name.strip_suffix(".json.age") {
        Some(stem) => (Some(stem), true),
        None => (name.strip_suffix(".json"), false),
    };
    match stem.and_then(|stem| stem.split_once('.')) {
        Some((id, hash)) if is_hash(hash) => Ok((id, hash, sealed)),
        _ => Err("not named <id>.<blake3>.json".into()),
    }
}

/// Why a manifest whose hash is not its name's is refused.
fn changed(actual: &str, named: &str) -> String {
    format!("its content hash is {actual}, its name says {named}: the file was changed or damaged")
}

/// A manifest without its file list: serde skips the rest as it reads.
#[derive(serde::Deserialize)]
struct Head {
    format: String,
    id: String,
    kind: Kind,
    parent: Option<String>,
    created_at: String,
    stats: Stats,
}

impl Head {
    /// The header's share of [`Manifest::check`].
    fn check(&self) -> Result<(), String> {
        super::manifest::check_header(
            &self.format,
            &self.id,
            &self.created_at,
            self.kind,
            self.parent.as_ref(),
        )
    }
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
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
        let marker_path = root.join(MARKER_FILE);
        if !marker_path.exists() {
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
            if marker_path.exists() {
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
            for dir in ["packs", "snapshots", "tmp"] {
                fs::create_dir_all(root.join(dir)).map_err(io_err(root))?;
            }
            let text = cipher.as_ref().map_or_else(
                || marker(current()),
                |c| encrypted_marker(current(), &c.recipient()),
            );
            write_synced(&root.join("tmp").join(MARKER_FILE), text.as_bytes())?;
            fs::rename(root.join("tmp").join(MARKER_FILE), &marker_path)
                .map_err(io_err(&marker_path))?;
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
        let marker_path = root.join(MARKER_FILE);
        let format = match fs::read_to_string(&marker_path) {
            Ok(text) if text.contains("\"encryption\":\"age-x25519\"") => {
                check_encrypted_marker(&text, cipher.as_deref(), root, &marker_path)?
            }
            Ok(text) => {
                let Some(format) = FORMATS.iter().find(|f| text == marker(f)) else {
                    return Err(BackupError::Corrupt(format!(
                        "{} is damaged or from a newer acp (this one reads {})",
                        marker_path.display(),
                        FORMATS.join(" and ")
                    )));
                };
                if cipher.is_some() {
                    return Err(BackupError::Usage(format!(
                        "ACP_BACKUP_KEY is set but the repository at {} is not encrypted: unset \
                         the key, or set backup.repository to a new directory for encrypted \
                         backups",
                        root.display()
                    )));
                }
                *format
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BackupError::Usage(format!(
                    "no backup repository at {}: run `acp backup create` first, or set \
                     backup.repository",
                    root.display()
                )));
            }
            Err(e) => return Err(io_err(&marker_path)(e)),
        };
        for dir in ["snapshots", "tmp"] {
            fs::create_dir_all(root.join(dir)).map_err(io_err(root))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            cipher,
            format,
        })
    }

    /// Makes the repository one of the format this acp writes, before it
    /// writes into it: a format-1 marker becomes format 2 (the objects stay
    /// as they are and are read as before). Only under the exclusive lock.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn upgrade(&mut self) -> Result<(), BackupError> {
        fs::create_dir_all(self.root.join("packs")).map_err(io_err(&self.root))?;
        if self.format == current() {
            return Ok(());
        }
        let text = self.cipher.as_ref().map_or_else(
            || marker(current()),
            |c| encrypted_marker(current(), &c.recipient()),
        );
        let tmp = self.root.join("tmp").join(MARKER_FILE);
        write_synced(&tmp, text.as_bytes())?;
        let dest = self.root.join(MARKER_FILE);
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(&self.root)?;
        self.format = current();
        Ok(())
    }

    pub(crate) fn cipher(&self) -> Option<&Cipher> {
        self.cipher.as_deref()
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

    /// Where a format-1 object holding content with this hash is.
    pub(super) fn object_path(&self, hash: &str) -> PathBuf {
        let name = self.object_name(hash);
        self.root.join("objects").join(&name[..2]).join(&name)
    }

    /// Where the pack with this name is.
    pub(super) fn pack_path(&self, name: &str) -> PathBuf {
        self.root
            .join("packs")
            .join(&name[..2.min(name.len())])
            .join(name)
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

    /// The names of the manifests in `snapshots/`, oldest first (nothing
    /// is read).
    ///
    /// # Errors
    /// I/O errors reading the directory.
    pub(crate) fn manifest_names(&self) -> Result<Vec<String>, BackupError> {
        let dir = self.root.join("snapshots");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// One manifest's summary, read as a stream so its file list is never
    /// held: the same checks of name, hash, encryption and header as a
    /// whole read. For the schedule and the status, which need no more.
    ///
    /// # Errors
    /// Why the manifest cannot be used, in words.
    pub(crate) fn summary(&self, name: &str) -> Result<Summary, String> {
        let (id, hash, sealed) = split_name(name)?;
        let path = self.root.join("snapshots").join(name);
        let file = File::open(&path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut hashing = Hashing {
            inner: file,
            hasher: blake3::Hasher::new(),
            read: 0,
        };
        // A damaged file can fail to decrypt or to parse: the hash, checked
        // first below, then says why.
        let parsed = (|| -> Result<Head, String> {
            let mut plain: Box<dyn Read + '_> = match (sealed, &self.cipher) {
                (false, None) => Box::new(&mut hashing),
                (true, Some(c)) => c
                    .decrypt(&mut hashing)
                    .map_err(|e| format!("cannot be decrypted: {e}"))?,
                (true, None) => return Err("encrypted, and no ACP_BACKUP_KEY is set".into()),
                (false, Some(_)) => {
                    return Err("not encrypted, in an encrypted repository".into());
                }
            };
            let head: Head = serde_json::from_reader(io::BufReader::new(&mut plain))
                .map_err(|e| format!("not a manifest: {e}"))?;
            // Whatever the parser left, so the hash covers the whole file.
            io::copy(&mut plain, &mut io::sink())
                .map_err(|e| format!("cannot be decrypted: {e}"))?;
            Ok(head)
        })();
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| e.to_string())?;
        let actual = hashing.hasher.finalize().to_hex().to_string();
        if hashing.read != len || actual != hash {
            return Err(changed(&actual, hash));
        }
        let head = parsed?;
        if head.id != id {
            return Err(format!("names backup {} inside, {id} outside", head.id));
        }
        head.check()?;
        Ok(Summary {
            id: head.id,
            kind: head.kind,
            parent: head.parent,
            created_at: head.created_at,
            stats: head.stats,
        })
    }

    /// The manifest in `snapshots/` with this file name, read whole.
    pub(crate) fn load_named(&self, name: &str) -> Found {
        self.load(&self.root.join("snapshots").join(name), name)
    }

    fn load(&self, path: &Path, name: &str) -> Found {
        let damaged = |reason: String| Found::Damaged {
            file: format!("snapshots/{name}"),
            reason,
        };
        let (id, hash, sealed) = match split_name(name) {
            Ok(parts) => parts,
            Err(reason) => return damaged(reason),
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) => return damaged(e.to_string()),
        };
        let actual = blake3::hash(&bytes).to_hex().to_string();
        if actual != hash {
            return damaged(changed(&actual, hash));
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

    /// Makes every pack written so far durable (one `syncfs`). Call
    /// before [`Repo::commit`], and before deleting what a repack copied.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn sync_data(&self) -> Result<(), BackupError> {
        sync_fs(&self.root)
    }

    /// Commits a backup whose packs are synced: writes the manifest
    /// (temp file, fsync, rename, directory fsync). Returns its file name.
    ///
    /// # Errors
    /// I/O errors.
    pub fn commit(&self, manifest: &Manifest) -> Result<String, BackupError> {
        // Compact: a full backup's manifest lists every file, and
        // indentation would be a third of it (`jq .` shows it indented).
        let bytes = serde_json::to_vec(manifest).map_err(|e| BackupError::Io {
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
        let name = format!("{}.{hash}.{suffix}", manifest.id);
        let dest = self.root.join("snapshots").join(&name);
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(&self.root.join("snapshots"))?;
        Ok(name)
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

    /// Deletes a format-1 object (garbage collection).
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

    /// Deletes a pack (garbage collection).
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn remove_pack(&self, name: &str) -> Result<(), BackupError> {
        let path = self.pack_path(name);
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
) -> Result<&'static str, BackupError> {
    let Some(c) = cipher else {
        return Err(BackupError::Usage(format!(
            "the repository at {} is encrypted: set ACP_BACKUP_KEY (in .env or the environment) \
             to the AGE-SECRET-KEY-1... it was made with",
            root.display()
        )));
    };
    if let Some(format) = FORMATS
        .iter()
        .find(|f| text == encrypted_marker(f, &c.recipient()))
    {
        return Ok(format);
    }
    let well_formed = FORMATS.iter().any(|f| {
        let expected = encrypted_marker(f, &c.recipient());
        let prefix = encrypted_marker(f, "age1");
        text.starts_with(prefix.trim_end_matches("\"}\n"))
            && text.ends_with("\"}\n")
            && text.len() == expected.len()
    });
    if well_formed {
        Err(BackupError::Usage(format!(
            "ACP_BACKUP_KEY is not the key of the repository at {} ({}): set the key it was made \
             with",
            root.display(),
            text.trim()
        )))
    } else {
        Err(BackupError::Corrupt(format!(
            "{} is damaged or from a newer acp",
            marker.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(kind: Kind, parent: Option<&str>) -> Manifest {
        Manifest {
            format: super::super::manifest::FORMAT.into(),
            id: ulid::Ulid::generate().to_string(),
            kind,
            parent: parent.map(str::to_owned),
            created_at: "2026-12-05T08:00:00.000Z".into(),
            acp_version: String::new(),
            sources: vec!["config".into()],
            entries: (0..1000)
                .map(|i| super::super::Entry {
                    path: format!("config/f{i}"),
                    node: super::super::Node::File {
                        size: i,
                        mode: 0o600,
                        mtime_ns: 0,
                        blake3: "a".repeat(64),
                        chunks: None,
                    },
                })
                .collect(),
            deleted: vec![],
            stats: Stats {
                total_files: 1000,
                ..Stats::default()
            },
        }
    }

    #[test]
    fn a_summary_is_read_without_the_file_list_and_checked_like_a_whole_read() {
        for key in [None, Some(Cipher::generate().0)] {
            let tmp = tempfile::tempdir().unwrap();
            let mut config = BackupConfig::defaults(tmp.path());
            config.repository = tmp.path().join("repo");
            config.key = key.as_deref().map(crate::config::Secret::for_test);
            let repo = Repo::open_or_create(&config).unwrap();
            let full = manifest(Kind::Full, None);
            repo.commit(&full).unwrap();
            let names = repo.manifest_names().unwrap();
            assert_eq!(names.len(), 1);
            assert_eq!(repo.summary(&names[0]).unwrap(), Summary::from(&full));
            // One flipped byte anywhere, the file list included: refused,
            // as a whole read refuses it.
            let path = tmp.path().join("repo/snapshots").join(&names[0]);
            let mut bytes = fs::read(&path).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 1;
            fs::write(&path, &bytes).unwrap();
            let why = repo.summary(&names[0]).unwrap_err();
            assert!(why.contains("changed or damaged"), "{why}");
            assert!(matches!(repo.load(&path, &names[0]), Found::Damaged { .. }));
            // A manifest that says it is another backup is refused too.
            let other = manifest(Kind::Incremental, Some("x"));
            repo.commit(&other).unwrap();
            let name = repo.manifest_names().unwrap().pop().unwrap();
            let renamed = name.replacen(&other.id, &full.id, 1);
            fs::rename(
                tmp.path().join("repo/snapshots").join(&name),
                tmp.path().join("repo/snapshots").join(&renamed),
            )
            .unwrap();
            let why = repo.summary(&renamed).unwrap_err();
            assert!(why.contains("inside"), "{why}");
            assert!(repo.summary("notes.txt").is_err());
        }
    }

    #[test]
    fn a_new_backup_keeps_only_what_it_builds_on_but_knows_every_blob() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = BackupConfig::defaults(tmp.path());
        config.repository = tmp.path().join("repo");
        let repo = Repo::open_or_create(&config).unwrap();
        let mut ids: Vec<String> = Vec::new();
        let mut add = |kind: Kind, parent: Option<usize>, hash: char| {
            let parent = parent.map(|i: usize| ids[i].clone());
            let mut m = manifest(kind, parent.as_deref());
            // Ids one millisecond apart, so they sort as they were made.
            m.id = ulid::Ulid::from_parts(1_700_000_000_000 + ids.len() as u64, 0).to_string();
            m.entries.truncate(1);
            if let crate::backup::Node::File { blake3, .. } = &mut m.entries[0].node {
                *blake3 = hash.to_string().repeat(64);
            }
            repo.commit(&m).unwrap();
            ids.push(m.id);
        };
        add(Kind::Full, None, 'a');
        add(Kind::Incremental, Some(0), 'b');
        add(Kind::Full, None, 'c');
        add(Kind::Incremental, Some(2), 'd');
        add(Kind::Differential, Some(2), 'e');
        let (catalog, named) = crate::backup::Catalog::read_for_backup(&repo).unwrap();
        let kept: Vec<&str> = catalog.manifests.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(kept, [ids[2].as_str(), ids[4].as_str()]);
        assert_eq!(named.len(), 5, "every backup's blobs are known");
        let chain: Vec<&str> = catalog
            .chain(&ids[4])
            .unwrap()
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(chain, kept);
    }

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
