//! One blob: the stored form of a small file's content or of one chunk of
//! a large file: one zstd frame with its checksum, then a 40-byte seal, a
//! zstd skippable frame (magic `0x184D2A5E`, length 32) holding the BLAKE3
//! hash of the frame before it. `zstd -d` skips the seal. The content hash
//! alone cannot see a flipped bit in the parts of a frame header that
//! decoders ignore (the unused bit, a larger window); the seal covers
//! every byte. In an encrypted repository the pack around the blobs is
//! encrypted ([`super::pack`]).
//!
//! Format 1 stored each blob as its own file in `objects/`: the same bytes
//! when plain, `age(zstd frame)` without a seal when encrypted.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use super::crypt::Cipher;

const SEAL_MAGIC: [u8; 4] = 0x184D_2A5E_u32.to_le_bytes();
pub(crate) const SEAL_LEN: usize = 8 + 32;

/// Decompressed bytes handled at a time (a chunk is 64 KiB on average).
const BUF: usize = 64 << 10;

/// Why a blob cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ObjectError {
    #[error("{0}")]
    Damaged(String),
    #[error("cannot write the restored content: {0}")]
    Write(io::Error),
}

/// The seal of a plain blob whose compressed frame hashed to `hash`.
fn seal(hash: &blake3::Hash) -> [u8; SEAL_LEN] {
    let mut seal = [0u8; SEAL_LEN];
    seal[..4].copy_from_slice(&SEAL_MAGIC);
    seal[4..8].copy_from_slice(&32u32.to_le_bytes());
    seal[8..].copy_from_slice(hash.as_bytes());
    seal
}

/// A zstd compressor that writes checksummed frames.
///
/// # Errors
/// zstd's, for a level it refuses.
pub(crate) fn compressor(level: i32) -> io::Result<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    Ok(c)
}

/// Encodes `content` into a blob.
///
/// # Errors
/// Compression errors.
pub(crate) fn encode(
    zstd: &mut zstd::bulk::Compressor<'static>,
    content: &[u8],
) -> io::Result<Vec<u8>> {
    let mut frame = zstd.compress(content)?;
    let seal = seal(&blake3::hash(&frame));
    frame.extend_from_slice(&seal);
    Ok(frame)
}

/// Decompresses one zstd frame from `input` into `out`: the bytes written
/// and their BLAKE3 hash.
fn inflate(
    input: impl Read,
    out: &mut dyn Write,
    what: &str,
) -> Result<(u64, blake3::Hash, impl Read), ObjectError> {
    let mut decoder = zstd::Decoder::new(input)
        .map_err(|e| ObjectError::Damaged(format!("{what}: {e}")))?
        .single_frame();
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    let mut n_total = 0u64;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ObjectError::Damaged(format!(
                    "{what} does not decompress: {e}"
                )));
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(ObjectError::Write)?;
        n_total += n as u64;
    }
    Ok((n_total, hasher.finalize(), decoder.finish()))
}

/// Decodes a blob held in memory into `out`: the content's length and
/// hash. `what` names it in messages.
///
/// # Errors
/// [`ObjectError`]: a broken seal, a bad frame, or a write error on `out`.
pub(crate) fn decode(
    stored: &[u8],
    out: &mut dyn Write,
    what: &str,
) -> Result<(u64, blake3::Hash), ObjectError> {
    let damaged = |why: String| ObjectError::Damaged(format!("{what} {why}"));
    let body = stored
        .len()
        .checked_sub(SEAL_LEN)
        .ok_or_else(|| damaged(format!("is too short ({} bytes)", stored.len())))?;
    let (frame, found) = stored.split_at(body);
    if found != seal(&blake3::hash(frame)) {
        return Err(damaged(
            "is damaged: its stored bytes do not match its seal".into(),
        ));
    }
    let (n, hash, mut rest) = inflate(frame, out, what)?;
    // Nothing may follow the frame.
    let mut extra = [0u8; 1];
    if rest.read(&mut extra).map_err(|e| damaged(e.to_string()))? != 0 {
        return Err(damaged("has bytes after its frame".into()));
    }
    Ok((n, hash))
}

/// Hashes what passes through, for checking a format-1 object's seal.
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

/// Streams a format-1 object file (any size) into `out`: the content's
/// length and hash. `what` names it in messages.
///
/// # Errors
/// As [`decode`].
pub(crate) fn decode_file(
    cipher: Option<&Cipher>,
    mut file: File,
    out: &mut dyn Write,
    what: &str,
) -> Result<(u64, blake3::Hash), ObjectError> {
    let damaged = |why: String| ObjectError::Damaged(format!("{what} {why}"));
    if let Some(c) = cipher {
        let plain = c
            .decrypt(file)
            .map_err(|e| damaged(format!("cannot be decrypted: {e}")))?;
        let (n, hash, _) = inflate(plain, out, what)?;
        return Ok((n, hash));
    }
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
    let (n, hash, mut rest) = inflate(reader, out, what)?;
    // Whatever the decoder left unread is part of the seal's hash.
    io::copy(&mut rest, &mut io::sink()).map_err(|e| damaged(e.to_string()))?;
    if *hasher.borrow().finalize().as_bytes() != expected {
        return Err(damaged(
            "is damaged: its stored bytes do not match its seal".into(),
        ));
    }
    Ok((n, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_decodes_to_its_content_and_any_flipped_bit_is_found() {
        let content = b"the same bytes, stored once".repeat(50);
        let mut zstd = compressor(3).unwrap();
        let stored = encode(&mut zstd, &content).unwrap();
        let mut out = Vec::new();
        let (n, hash) = decode(&stored, &mut out, "blob").unwrap();
        assert_eq!(
            (n, hash, &out),
            (content.len() as u64, blake3::hash(&content), &content)
        );
        for pos in 0..stored.len() {
            let mut bad = stored.clone();
            bad[pos] ^= 0x10;
            let found = decode(&bad, &mut io::sink(), "blob")
                .is_ok_and(|(_, h)| h == blake3::hash(&content));
            assert!(!found, "a flipped bit at byte {pos} went unnoticed");
        }
    }
}
