// Over 400 lines: the pack format in one file (writing, the table, the index, reading), so it
// reads as its own specification; a fifth of it is tests.

//! Pack files (format 2): many blobs in one file, and the table of what is
//! where at its end.
//!
//! ```text
//! pack  = body || table
//! body  = blob_1 || blob_2 || … || blob_n       (plain repository)
//!       = age(blob_1 || blob_2 || … || blob_n)  (encrypted repository)
//! table = a zstd skippable frame:
//!         magic 0x184D2A5F (u32 LE) || payload length (u32 LE) || payload
//! payload = n × entry || n (u32 LE) || "ACPK"
//! entry = blob name (32 bytes) || stored length (u32 LE) || content length (u32 LE)
//! ```
//!
//! Blobs follow one another from offset 0 in the table's order, so an
//! offset is the sum of the stored lengths before it (offsets and lengths
//! count the blobs' own bytes: in an encrypted pack, the decrypted body's).
//! One age stream per pack, not per blob: age costs an X25519 exchange per
//! stream, which per 64 KiB chunk was most of an encrypted backup's time. A blob's name is the
//! BLAKE3 hash of its content (in an encrypted repository, the keyed hash
//! of that hash, as object names are). A pack is named by the BLAKE3 hash
//! of all its bytes, so `verify` sees a flipped byte anywhere in it; each
//! blob is checked on its own too (its seal, or age), so a restore that
//! reads one blob never trusts the others. Plain packs are a sequence of
//! zstd frames and skippable frames: `zstd -dc` of a pack prints its blobs'
//! contents one after another.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::BackupError;
use super::crypt::Cipher;
use super::repo::{Repo, io_err};

/// A pack is closed once it holds this many bytes.
pub(crate) const PACK_TARGET: u64 = 16 << 20;

const TABLE_MAGIC: [u8; 4] = 0x184D_2A5F_u32.to_le_bytes();
const TAG: &[u8; 4] = b"ACPK";
const ENTRY_LEN: usize = 40;
/// The count and tag after the entries.
const FOOTER_LEN: usize = 8;

/// A blob's name: 32 bytes.
pub(crate) type Name = [u8; 32];

/// A hex name as bytes, if it is one.
#[must_use]
pub(crate) fn name_of(hex: &str) -> Option<Name> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// Hex of a name.
#[must_use]
pub(crate) fn hex(name: &Name) -> String {
    blake3::Hash::from_bytes(*name).to_hex().to_string()
}

/// One blob of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: Name,
    pub offset: u64,
    pub stored: u32,
    pub plain: u32,
}

/// Writes to the pack file and hashes what it writes (the pack's name).
struct Tap {
    file: File,
    hasher: blake3::Hasher,
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Where blobs go: the file, or an age stream into it.
enum Body {
    Plain(Tap),
    Sealed(age::stream::StreamWriter<Tap>),
}

/// A pack being written in `tmp/`.
pub(crate) struct PackWriter {
    file: tempfile::NamedTempFile,
    body: Body,
    entries: Vec<Entry>,
    /// Bytes of blobs written so far.
    len: u64,
}

impl PackWriter {
    /// A new, empty pack under `tmp`, encrypted with `cipher` if given.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn new(tmp: &Path, cipher: Option<&Cipher>) -> Result<Self, BackupError> {
        let file = tempfile::Builder::new()
            .prefix("pack-")
            .tempfile_in(tmp)
            .map_err(io_err(tmp))?;
        let tap = Tap {
            file: file.as_file().try_clone().map_err(io_err(file.path()))?,
            hasher: blake3::Hasher::new(),
        };
        let body = match cipher {
            Some(c) => Body::Sealed(c.encrypt(tap).map_err(io_err(file.path()))?),
            None => Body::Plain(tap),
        };
        Ok(Self {
            file,
            body,
            entries: Vec::new(),
            len: 0,
        })
    }

    /// Appends a blob (its stored bytes) holding `plain` bytes of content.
    ///
    /// # Errors
    /// I/O errors, or a blob too large for a pack.
    pub(crate) fn add(&mut self, name: Name, stored: &[u8], plain: u64) -> Result<(), BackupError> {
        let too_big = || BackupError::Usage("a blob of 4 GiB or more cannot be packed".into());
        let entry = Entry {
            name,
            offset: self.len,
            stored: u32::try_from(stored.len()).map_err(|_| too_big())?,
            plain: u32::try_from(plain).map_err(|_| too_big())?,
        };
        match &mut self.body {
            Body::Plain(w) => w.write_all(stored),
            Body::Sealed(w) => w.write_all(stored),
        }
        .map_err(io_err(self.file.path()))?;
        self.len += stored.len() as u64;
        self.entries.push(entry);
        Ok(())
    }

    /// Bytes of blobs written so far.
    #[must_use]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Ends the body and writes the table: the finished pack in `tmp/`,
    /// and its name.
    ///
    /// # Errors
    /// I/O errors.
    fn close(self) -> Result<(tempfile::NamedTempFile, String), BackupError> {
        let path = self.file.path().to_path_buf();
        let mut tap = match self.body {
            Body::Plain(tap) => tap,
            Body::Sealed(w) => w.finish().map_err(io_err(&path))?,
        };
        let payload = u32::try_from(self.entries.len() * ENTRY_LEN + FOOTER_LEN)
            .map_err(|_| BackupError::Usage("too many blobs for one pack".into()))?;
        let mut table = Vec::with_capacity(8 + payload as usize);
        table.extend_from_slice(&TABLE_MAGIC);
        table.extend_from_slice(&payload.to_le_bytes());
        for e in &self.entries {
            table.extend_from_slice(&e.name);
            table.extend_from_slice(&e.stored.to_le_bytes());
            table.extend_from_slice(&e.plain.to_le_bytes());
        }
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        table.extend_from_slice(&count.to_le_bytes());
        table.extend_from_slice(TAG);
        tap.write_all(&table).map_err(io_err(&path))?;
        let name = tap.hasher.finalize().to_hex().to_string();
        Ok((self.file, name))
    }

    /// Writes the table and moves the pack to `packs/ab/<hash>`. Returns
    /// its path. The caller makes it durable (one `syncfs` before the
    /// manifest that names its blobs).
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn finish(self, repo: &Repo) -> Result<PathBuf, BackupError> {
        let (file, name) = self.close()?;
        let dest = repo.pack_path(&name);
        let dir = dest.parent().unwrap_or(repo.path());
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        file.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
        Ok(dest)
    }
}

/// Reads a pack's table: its blobs with their offsets, and where the body
/// ends. Checks that the table accounts for every byte of a plain body (an
/// encrypted body is checked as it is decrypted).
///
/// # Errors
/// Why the pack cannot be read, in words.
pub(crate) fn read_table(file: &File, encrypted: bool) -> Result<(Vec<Entry>, u64), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut footer = [0u8; FOOTER_LEN];
    let at = len
        .checked_sub(FOOTER_LEN as u64)
        .ok_or_else(|| format!("is too short ({len} bytes) to be a pack"))?;
    file.read_exact_at(&mut footer, at)
        .map_err(|e| e.to_string())?;
    if &footer[4..] != TAG {
        return Err("does not end with a pack table".into());
    }
    let count = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]) as usize;
    let payload = count
        .checked_mul(ENTRY_LEN)
        .and_then(|n| n.checked_add(FOOTER_LEN))
        .ok_or("has a damaged table")?;
    let start = len
        .checked_sub(8 + payload as u64)
        .ok_or_else(|| format!("names {count} blobs, more than it can hold"))?;
    let mut table = vec![0u8; 8 + payload];
    file.read_exact_at(&mut table, start)
        .map_err(|e| e.to_string())?;
    let declared = u32::from_le_bytes([table[4], table[5], table[6], table[7]]) as usize;
    if table[..4] != TABLE_MAGIC || declared != payload {
        return Err("has a damaged table header".into());
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset = 0u64;
    for raw in table[8..8 + count * ENTRY_LEN].chunks_exact(ENTRY_LEN) {
        let mut name = [0u8; 32];
        name.copy_from_slice(&raw[..32]);
        let stored = u32::from_le_bytes([raw[32], raw[33], raw[34], raw[35]]);
        let plain = u32::from_le_bytes([raw[36], raw[37], raw[38], raw[39]]);
        entries.push(Entry {
            name,
            offset,
            stored,
            plain,
        });
        offset += u64::from(stored);
    }
    if offset != start && !(encrypted && offset < start) {
        return Err(format!(
            "has a table for {offset} bytes of blobs, and {start} bytes before it"
        ));
    }
    Ok((entries, start))
}

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the pack with this number in [`Index::packs`].
    Packed { pack: usize, entry: Entry },
    /// A format-1 object file, `objects/ab/<name>`.
    Object,
}

/// A pack as the index knows it.
#[derive(Debug, Clone)]
pub(crate) struct Pack {
    /// Its hash (and file name).
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Where its body ends (its table starts).
    pub body: u64,
    pub entries: Vec<Entry>,
}

impl Pack {
    /// The path people see (`packs/ab/abcd…`).
    #[must_use]
    pub(crate) fn rel(&self) -> String {
        format!("packs/{}/{}", &self.name[..2], self.name)
    }
}

/// Every blob of a repository: the packs' tables and the format-1
/// objects, read once per run.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub packs: Vec<Pack>,
    blobs: HashMap<Name, Place>,
    /// Packs whose table cannot be read: `(packs/ab/…, why)`.
    pub damaged: Vec<(String, String)>,
    /// Format-1 objects, by name, with their sizes.
    pub objects: Vec<(Name, u64)>,
}

impl Index {
    /// Reads every pack table and lists the format-1 objects.
    ///
    /// # Errors
    /// I/O errors listing the directories.
    pub(crate) fn load(repo: &Repo) -> Result<Self, BackupError> {
        let mut index = Self::default();
        let encrypted = repo.encrypted();
        for (name, path) in list_two_level(&repo.path().join("packs"))? {
            let opened = File::open(&path).map_err(|e| e.to_string());
            let table = opened.and_then(|f| {
                let size = f.metadata().map_err(|e| e.to_string())?.len();
                read_table(&f, encrypted).map(|t| (size, t))
            });
            match table {
                Ok((size, (entries, body))) => index.packs.push(Pack {
                    name,
                    path,
                    size,
                    body,
                    entries,
                }),
                Err(why) => index
                    .damaged
                    .push((format!("packs/{}/{name}", &name[..2.min(name.len())]), why)),
            }
        }
        index.place_packed();
        for (name, path) in list_two_level(&repo.path().join("objects"))? {
            let Some(bytes) = name_of(&name) else {
                continue;
            };
            let size = fs::metadata(&path).map_or(0, |m| m.len());
            index.objects.push((bytes, size));
            index.blobs.entry(bytes).or_insert(Place::Object);
        }
        Ok(index)
    }

    /// The first pack (by name) holding a blob is where it is read from;
    /// a copy in another pack (left by an interrupted rewrite) is unused
    /// and goes with the next prune.
    fn place_packed(&mut self) {
        for (i, pack) in self.packs.iter().enumerate() {
            for e in &pack.entries {
                self.blobs
                    .entry(e.name)
                    .or_insert(Place::Packed { pack: i, entry: *e });
            }
        }
    }

    /// An index of these packs (in this order), as [`Index::load`] would
    /// read them.
    #[cfg(test)]
    pub(crate) fn of(packs: Vec<Pack>) -> Self {
        let mut index = Self {
            packs,
            ..Self::default()
        };
        index.place_packed();
        index
    }

    #[must_use]
    pub(crate) fn place(&self, name: &Name) -> Option<Place> {
        self.blobs.get(name).copied()
    }

    #[must_use]
    pub(crate) fn contains(&self, name: &Name) -> bool {
        self.blobs.contains_key(name)
    }
}

/// A byte range of a file, as a file of its own (an encrypted body,
/// without the table after it).
struct Window {
    file: File,
    len: u64,
    pos: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.len.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::other("seek before the start"))?;
        Ok(self.pos)
    }
}

/// The pack a reader has open: blobs of one file are read one after
/// another, mostly from the same pack, so it stays open (and an encrypted
/// one decrypting) until a blob from another is wanted.
#[derive(Default)]
pub(crate) struct Open {
    current: Option<(usize, Opened)>,
}

enum Opened {
    Plain(File),
    Sealed(Box<age::stream::StreamReader<BufReader<Window>>>),
}

impl Open {
    /// A blob's stored bytes (decrypted, in an encrypted repository).
    ///
    /// # Errors
    /// Why they cannot be read, in words.
    pub(crate) fn stored(
        &mut self,
        index: &Index,
        cipher: Option<&Cipher>,
        pack: usize,
        entry: &Entry,
    ) -> Result<Vec<u8>, String> {
        if self.current.as_ref().is_none_or(|(p, _)| *p != pack) {
            self.current = None;
            let p = &index.packs[pack];
            let file = File::open(&p.path).map_err(|e| e.to_string())?;
            let opened = match cipher {
                None => Opened::Plain(file),
                Some(c) => {
                    let window = Window {
                        file,
                        len: p.body,
                        pos: 0,
                    };
                    let reader = c
                        .decrypt_seekable(BufReader::with_capacity(64 << 10, window))
                        .map_err(|e| format!("cannot be decrypted: {e}"))?;
                    Opened::Sealed(Box::new(reader))
                }
            };
            self.current = Some((pack, opened));
        }
        let Some((_, opened)) = self.current.as_mut() else {
            unreachable!("opened above")
        };
        let mut stored = vec![0u8; entry.stored as usize];
        let read = match opened {
            Opened::Plain(f) => f.read_exact_at(&mut stored, entry.offset),
            Opened::Sealed(r) => r
                .seek(SeekFrom::Start(entry.offset))
                .and_then(|_| r.read_exact(&mut stored)),
        };
        if let Err(e) = read {
            self.current = None;
            return Err(e.to_string());
        }
        Ok(stored)
    }
}

/// The files of a two-level directory (`dir/ab/abcd…`), sorted by name;
/// nothing when `dir` does not exist.
fn list_two_level(dir: &Path) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let top = match fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for sub in top {
        let sub = sub.map_err(io_err(dir))?.path();
        if !sub.is_dir() {
            continue;
        }
        for item in fs::read_dir(&sub).map_err(io_err(&sub))? {
            let item = item.map_err(io_err(&sub))?;
            out.push((item.file_name().to_string_lossy().into_owned(), item.path()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_is_laid_out_as_documented_and_its_table_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::new(dir.path(), None).unwrap();
        w.add([1; 32], b"first blob", 100).unwrap();
        w.add([2; 32], b"second", 7).unwrap();
        let (file, name) = w.close().unwrap();
        let bytes = fs::read(file.path()).unwrap();
        assert_eq!(name, blake3::hash(&bytes).to_hex().to_string());
        // The layout the module documents, byte for byte.
        let mut expected = b"first blobsecond".to_vec();
        expected.extend_from_slice(&0x184D_2A5F_u32.to_le_bytes());
        expected.extend_from_slice(&88u32.to_le_bytes());
        for (n, stored, plain) in [(1u8, 10u32, 100u32), (2, 6, 7)] {
            expected.extend_from_slice(&[n; 32]);
            expected.extend_from_slice(&stored.to_le_bytes());
            expected.extend_from_slice(&plain.to_le_bytes());
        }
        expected.extend_from_slice(&2u32.to_le_bytes());
        expected.extend_from_slice(b"ACPK");
        assert_eq!(bytes, expected);
        let (entries, body) = read_table(file.as_file(), false).unwrap();
        assert_eq!(body, 16);
        assert_eq!(entries[1].offset, 10);
        assert_eq!((entries[1].stored, entries[1].plain), (6, 7));
        let path = dir.path().join("p");
        for pos in 16..bytes.len() {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x01;
            fs::write(&path, &bad).unwrap();
            // A flip in the table is refused, or changes a name (that
            // blob is then missing) or a content length (checked when the
            // blob is read).
            let read = read_table(&File::open(&path).unwrap(), false).map(|(e, _)| e);
            assert!(
                read.as_ref() != Ok(&entries),
                "a flip at byte {pos} of the table went unnoticed"
            );
        }
    }
}
