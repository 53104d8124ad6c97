//! File contents in and out of the repository: a small file is one blob,
//! a large one a list of chunks; each blob is stored once, in a pack.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::Sender;

use super::BackupError;
use super::blob::{self, ObjectError};
use super::chunk;
use super::manifest::Node;
use super::pack::{self, Index, Name, Open, PackWriter, Place};
use super::repo::{Repo, io_err};

/// What storing one file did.
#[derive(Debug, Clone)]
pub(crate) struct Put {
    /// BLAKE3 of the whole content.
    pub hash: String,
    pub size: u64,
    /// The chunks' hashes, for a chunked file.
    pub chunks: Option<Vec<String>>,
    /// Blobs this file added to the repository, and their stored bytes.
    pub new_blobs: u64,
    pub stored: u64,
}

/// Stores blobs for one backup: each blob once, whoever asks (files are
/// stored by several threads), into packs of about [`pack::PACK_TARGET`].
pub(crate) struct Writer<'a> {
    repo: &'a Repo,
    index: &'a Index,
    /// Blobs this run has stored (or is storing).
    claimed: Mutex<HashSet<Name>>,
    pack: Mutex<Option<PackWriter>>,
    /// Finished packs, for an early flush to disk.
    flush: Sender<PathBuf>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(repo: &'a Repo, index: &'a Index, flush: Sender<PathBuf>) -> Self {
        Self {
            repo,
            index,
            claimed: Mutex::new(HashSet::new()),
            pack: Mutex::new(None),
            flush,
        }
    }

    /// Reads, chunks (when large), hashes and stores a file. `advance`
    /// hears of each part read.
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub(crate) fn put_file(
        &self,
        src: &Path,
        zstd: &mut zstd::bulk::Compressor<'static>,
        advance: &dyn Fn(u64),
    ) -> Result<Put, BackupError> {
        let file = File::open(src).map_err(io_err(src))?;
        let mut head = Vec::new();
        let mut reader = file.take(chunk::CHUNKED_FROM);
        reader.read_to_end(&mut head).map_err(io_err(src))?;
        let file = reader.into_inner();
        if (head.len() as u64) < chunk::CHUNKED_FROM {
            let (new_blobs, stored) = self.put_blob(&head, zstd)?;
            advance(head.len() as u64);
            return Ok(Put {
                hash: blake3::hash(&head).to_hex().to_string(),
                size: head.len() as u64,
                chunks: None,
                new_blobs,
                stored,
            });
        }
        let mut put = Put {
            hash: String::new(),
            size: 0,
            chunks: Some(Vec::new()),
            new_blobs: 0,
            stored: 0,
        };
        let mut whole = blake3::Hasher::new();
        let mut chunks = Vec::new();
        for part in chunk::split(io::Cursor::new(head).chain(file)) {
            let part = part.map_err(io_err(src))?;
            whole.update(&part);
            let (new, stored) = self.put_blob(&part, zstd)?;
            put.new_blobs += new;
            put.stored += stored;
            put.size += part.len() as u64;
            chunks.push(blake3::hash(&part).to_hex().to_string());
            advance(part.len() as u64);
        }
        put.hash = whole.finalize().to_hex().to_string();
        put.chunks = Some(chunks);
        Ok(put)
    }

    /// Stores one blob unless the repository has it: `(1, stored bytes)`
    /// when it was added, `(0, 0)` when it was there.
    fn put_blob(
        &self,
        content: &[u8],
        zstd: &mut zstd::bulk::Compressor<'static>,
    ) -> Result<(u64, u64), BackupError> {
        let hash = blake3::hash(content).to_hex().to_string();
        let Some(name) = pack::name_of(&self.repo.object_name(&hash)) else {
            return Err(BackupError::Corrupt(format!("blob name of {hash}")));
        };
        if self.index.contains(&name) {
            return Ok((0, 0));
        }
        if !self.claimed.lock().is_ok_and(|mut c| c.insert(name)) {
            return Ok((0, 0));
        }
        let stored = blob::encode(zstd, content).map_err(io_err(self.repo.path()))?;
        let mut slot = self
            .pack
            .lock()
            .map_err(|_| BackupError::Corrupt("a backup thread failed".into()))?;
        if slot.is_none() {
            *slot = Some(PackWriter::new(
                &self.repo.path().join("tmp"),
                self.repo.cipher(),
            )?);
        }
        let Some(writer) = slot.as_mut() else {
            unreachable!("set above")
        };
        writer.add(name, &stored, content.len() as u64)?;
        if writer.len() >= pack::PACK_TARGET
            && let Some(full) = slot.take()
        {
            let path = full.finish(self.repo)?;
            let _ = self.flush.send(path);
        }
        Ok((1, stored.len() as u64))
    }

    /// Closes the last pack. Call once every file is stored.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn finish(self) -> Result<(), BackupError> {
        let last = self
            .pack
            .into_inner()
            .map_err(|_| BackupError::Corrupt("a backup thread failed".into()))?;
        if let Some(writer) = last.filter(|w| !w.is_empty()) {
            writer.finish(self.repo)?;
        }
        Ok(())
    }
}

/// Reads contents back: the repository's blobs, found through its index.
pub(crate) struct Reader<'a> {
    repo: &'a Repo,
    pub index: Index,
}

/// Counts and hashes what passes to `out`.
struct Tee<'a> {
    out: &'a mut dyn Write,
    hasher: blake3::Hasher,
    len: u64,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<'a> Reader<'a> {
    /// Reads the repository's index (every pack table).
    ///
    /// # Errors
    /// I/O errors listing it.
    pub(crate) fn new(repo: &'a Repo) -> Result<Self, BackupError> {
        Ok(Self {
            repo,
            index: Index::load(repo)?,
        })
    }

    /// The blob names a file's content needs, with their content hashes.
    #[must_use]
    pub(crate) fn blobs_of(&self, node: &Node) -> Vec<(Name, String)> {
        let Node::File { blake3, chunks, .. } = node else {
            return Vec::new();
        };
        let hashes = chunks.as_deref().unwrap_or(std::slice::from_ref(blake3));
        hashes
            .iter()
            .filter_map(|h| pack::name_of(&self.repo.object_name(h)).map(|n| (n, h.clone())))
            .collect()
    }

    /// Whether every blob a file needs is in the repository (not whether
    /// it is intact).
    #[must_use]
    pub(crate) fn has(&self, node: &Node) -> bool {
        self.blobs_of(node)
            .iter()
            .all(|(name, _)| self.index.contains(name))
    }

    /// Streams a file's content into `out`, checking every blob and the
    /// whole content against the manifest. `open` keeps the last pack
    /// open between calls (one per thread).
    ///
    /// # Errors
    /// What is damaged or missing, or a write error on `out`.
    pub(crate) fn read_file(
        &self,
        node: &Node,
        out: &mut dyn Write,
        open: &mut Open,
    ) -> Result<(), ObjectError> {
        let Node::File {
            size,
            blake3,
            chunks,
            ..
        } = node
        else {
            return Ok(());
        };
        let mut tee = Tee {
            out,
            hasher: blake3::Hasher::new(),
            len: 0,
        };
        match chunks {
            None => {
                self.read_blob(blake3, &mut tee, open)?;
            }
            Some(chunks) => {
                for (i, chunk) in chunks.iter().enumerate() {
                    self.read_blob(chunk, &mut tee, open).map_err(|e| match e {
                        ObjectError::Damaged(why) => ObjectError::Damaged(format!(
                            "chunk {} of {}: {why}",
                            i + 1,
                            chunks.len()
                        )),
                        other @ ObjectError::Write(_) => other,
                    })?;
                }
            }
        }
        let actual = tee.hasher.finalize().to_hex().to_string();
        if &actual != blake3 || tee.len != *size {
            return Err(ObjectError::Damaged(format!(
                "the content read back ({} bytes, hash {actual}) is not the {size} bytes with \
                 hash {blake3} the manifest names",
                tee.len
            )));
        }
        Ok(())
    }

    /// Streams one blob's content into `out` and checks it against its
    /// hash: its length.
    ///
    /// # Errors
    /// What is damaged or missing, or a write error on `out`.
    pub(crate) fn read_blob(
        &self,
        hash: &str,
        out: &mut dyn Write,
        open: &mut Open,
    ) -> Result<u64, ObjectError> {
        let object = self.repo.object_name(hash);
        let missing = || ObjectError::Damaged(format!("blob {hash} is missing"));
        let name = pack::name_of(&object).ok_or_else(missing)?;
        let (len, actual) = match self.index.place(&name).ok_or_else(missing)? {
            Place::Object => {
                let path = self.repo.object_path(hash);
                let file = File::open(&path).map_err(|e| {
                    ObjectError::Damaged(format!("object {hash} cannot be read: {e}"))
                })?;
                blob::decode_file(self.repo.cipher(), file, out, &format!("object {hash}"))?
            }
            Place::Packed { pack, entry } => {
                let what = format!("blob {hash} (in {})", self.index.packs[pack].rel());
                let stored = open
                    .stored(&self.index, self.repo.cipher(), pack, &entry)
                    .map_err(|e| ObjectError::Damaged(format!("{what}: {e}")))?;
                let (len, actual) = blob::decode(&stored, out, &what)?;
                if len != u64::from(entry.plain) {
                    return Err(ObjectError::Damaged(format!(
                        "{what} holds {len} bytes, its pack's table says {}",
                        entry.plain
                    )));
                }
                (len, actual)
            }
        };
        let actual = actual.to_hex().to_string();
        if actual != hash {
            return Err(ObjectError::Damaged(format!(
                "blob {hash} holds content with hash {actual}"
            )));
        }
        Ok(len)
    }
}
