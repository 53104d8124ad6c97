//! Reading files that someone less trusted than acp can write: agents'
//! devlogs, files named with `--file`.
//!
//! The file is opened first and what was opened is checked, never the other
//! way round: a check of the path followed by an open of the same path
//! loses a race against an agent swapping a regular file for a link to
//! `.env`. So:
//!
//! - below a folder ([`read_beneath`]), every component is opened with
//!   `O_NOFOLLOW` relative to the one before (the folder itself included),
//!   so no link anywhere leads out of it;
//! - the file is opened `O_NONBLOCK` (a FIFO cannot wedge the reader) and
//!   `O_NOCTTY`;
//! - the opened descriptor must be a regular file, with one link, no larger
//!   than the limit by `fstat`; and at most limit + 1 bytes are read, since
//!   `/proc` files say they are empty and grow while read.
//!
//! These calls block: callers on the async runtime run them with
//! `spawn_blocking`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{FileType, Mode, OFlags};

/// Why an untrusted file was not read. Each says what it found; the caller
/// names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("is not there")]
    NotFound,
    #[error("is a symbolic link (or passes through one): links are not followed")]
    Link,
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("has {0} hard links: only a file of its own is read")]
    HardLinked(u64),
    #[error("is {len} bytes or more, over the {max}-byte limit")]
    TooBig { len: u64, max: usize },
    #[error("is not a plain path below its folder (no `..`, no absolute parts)")]
    NotBeneath,
    #[error("cannot be read: {0}")]
    Io(#[source] io::Error),
}

impl From<rustix::io::Errno> for ReadError {
    fn from(e: rustix::io::Errno) -> Self {
        match e {
            rustix::io::Errno::NOENT => Self::NotFound,
            // O_NOFOLLOW on a link: ELOOP; O_DIRECTORY|O_NOFOLLOW on a
            // link to a folder: ENOTDIR on some systems.
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::MLINK => {
                Self::Link
            }
            e => Self::Io(e.into()),
        }
    }
}

impl ReadError {
    /// Whether the file is simply not there (deleted meanwhile).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound)
    }
}

fn kind(t: FileType) -> &'static str {
    match t {
        FileType::Directory => "a folder",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "not a regular file",
    }
}

const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Checks the opened file: a regular file (of its own, if
/// `single_link`), no larger than `max` by its own account.
fn check_opened(fd: &OwnedFd, max: usize, single_link: bool) -> Result<u64, ReadError> {
    let stat = rustix::fs::fstat(fd)?;
    let t = FileType::from_raw_mode(stat.st_mode);
    if t != FileType::RegularFile {
        return Err(ReadError::NotRegular(kind(t)));
    }
    #[expect(
        clippy::useless_conversion,
        reason = "st_nlink is u32 on some targets, u64 on others"
    )]
    let links = u64::from(stat.st_nlink);
    if single_link && links > 1 {
        return Err(ReadError::HardLinked(links));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > max as u64 {
        return Err(ReadError::TooBig { len: size, max });
    }
    Ok(size)
}

/// Checks the opened file and reads at most `max` bytes of it.
fn read_opened(fd: OwnedFd, max: usize, single_link: bool) -> Result<Vec<u8>, ReadError> {
    let size = check_opened(&fd, max, single_link)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(max));
    File::from(fd)
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > max {
        return Err(ReadError::TooBig {
            len: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// Opens `dir` itself without following a link there.
///
/// # Errors
/// [`ReadError::Link`] if `dir` is a symbolic link, [`ReadError::NotFound`],
/// or I/O.
pub fn open_dir(dir: &Path) -> Result<OwnedFd, ReadError> {
    Ok(rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        DIR_FLAGS,
        Mode::empty(),
    )?)
}

/// Reads `rel` below `dir`, following no link on the way (`dir` itself
/// included), refusing anything but a regular file of its own over at
/// most `max` bytes.
///
/// # Errors
/// [`ReadError`] saying what was found instead.
pub fn read_beneath(dir: &Path, rel: &Path, max: usize) -> Result<Vec<u8>, ReadError> {
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Ok(p),
            _ => Err(ReadError::NotBeneath),
        })
        .collect::<Result<_, _>>()?;
    let Some((name, folders)) = parts.split_last() else {
        return Err(ReadError::NotBeneath);
    };
    let mut at = open_dir(dir)?;
    for folder in folders {
        at = rustix::fs::openat(&at, *folder, DIR_FLAGS, Mode::empty())?;
    }
    let fd = rustix::fs::openat(
        &at,
        *name,
        FILE_FLAGS.union(OFlags::NOFOLLOW),
        Mode::empty(),
    )?;
    read_opened(fd, max, true)
}

/// Reads the file a person named (links followed: they named it), refusing
/// anything but a regular file, and at most `max` bytes of it.
///
/// # Errors
/// [`ReadError`] saying what was found instead.
pub fn read_named(path: &Path, max: usize) -> Result<Vec<u8>, ReadError> {
    let fd = rustix::fs::openat(rustix::fs::CWD, path, FILE_FLAGS, Mode::empty())?;
    read_opened(fd, max, false)
}

/// Reads `path` without following a link at its end, refusing anything
/// but a regular file, and at most `max` bytes of it.
///
/// # Errors
/// [`ReadError`] saying what was found instead.
pub fn read_unlinked(path: &Path, max: usize) -> Result<Vec<u8>, ReadError> {
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        path,
        FILE_FLAGS.union(OFlags::NOFOLLOW),
        Mode::empty(),
    )?;
    read_opened(fd, max, false)
}

/// Copies the file a person named (links followed) into `out`, refusing
/// anything but a regular file and stopping past `max` bytes. Returns the
/// bytes copied.
///
/// # Errors
/// [`ReadError`] saying what was found instead; `out` may then hold part
/// of the file.
pub fn copy_named(path: &Path, max: usize, out: &mut impl io::Write) -> Result<u64, ReadError> {
    let fd = rustix::fs::openat(rustix::fs::CWD, path, FILE_FLAGS, Mode::empty())?;
    check_opened(&fd, max, false)?;
    let copied = io::copy(&mut File::from(fd).take(max as u64 + 1), out).map_err(ReadError::Io)?;
    if copied > max as u64 {
        return Err(ReadError::TooBig { len: copied, max });
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_fifos_and_oversize_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("devlogs");
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("a/ok.md"), "hello").unwrap();
        std::fs::write(tmp.path().join("secret"), "TOKEN").unwrap();
        symlink(tmp.path().join("secret"), dir.join("a/link.md")).unwrap();
        symlink(tmp.path(), dir.join("out")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("a/fifo.md"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();

        assert_eq!(
            read_beneath(&dir, Path::new("a/ok.md"), 5).unwrap(),
            b"hello"
        );
        assert!(matches!(
            read_beneath(&dir, Path::new("a/ok.md"), 4),
            Err(ReadError::TooBig { len: 5, max: 4 })
        ));
        assert!(matches!(
            read_beneath(&dir, Path::new("a/link.md"), 100),
            Err(ReadError::Link)
        ));
        assert!(matches!(
            read_beneath(&dir, Path::new("out/secret"), 100),
            Err(ReadError::Link)
        ));
        assert!(matches!(
            read_beneath(&dir, Path::new("a/fifo.md"), 100),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read_beneath(&dir, Path::new("../secret"), 100),
            Err(ReadError::NotBeneath)
        ));
        std::fs::hard_link(dir.join("a/ok.md"), dir.join("a/twin.md")).unwrap();
        assert!(matches!(
            read_beneath(&dir, Path::new("a/twin.md"), 100),
            Err(ReadError::HardLinked(2))
        ));
        // The folder itself may not be a link.
        let linked = tmp.path().join("linked");
        symlink(&dir, &linked).unwrap();
        assert!(matches!(
            read_beneath(&linked, Path::new("a/twin.md"), 100),
            Err(ReadError::Link)
        ));
        // A /proc file says it is empty: the read is bounded all the same.
        assert!(matches!(
            read_named(Path::new("/proc/self/environ"), 4),
            Err(ReadError::TooBig { len: 5, max: 4 })
        ));
        let mut out = Vec::new();
        assert!(matches!(
            copy_named(Path::new("/proc/self/environ"), 4, &mut out),
            Err(ReadError::TooBig { len: 5, max: 4 })
        ));
        assert!(matches!(
            read_named(Path::new("/dev/zero"), 4),
            Err(ReadError::NotRegular("a character device"))
        ));
    }
}
