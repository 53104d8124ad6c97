//! Splitting large files into content-defined chunks (`FastCDC`, the 2020
//! variant of the `fastcdc` crate), so a file that changes a little shares
//! most of its chunks with its last version.
//!
//! The sizes were picked by measurement (`make bench-backup`, BENCHMARKS.md
//! "Choosing the chunk size"): a 122 MB store in acp's schema, then hours
//! of traffic (200 messages, each in its own transactions, with and
//! without deleting as many old ones). SQLite rewrites 4 KiB pages in
//! place, so each changed page costs about one chunk. Smaller chunks store
//! less data per changed page but list more hashes in every manifest that
//! names the file (about 80 bytes each), and the list grows with the file
//! while an hour's changes do not. 16/64/256 KiB stored 0.74 to 0.98% of
//! the store per hourly incremental, everything counted; 4/16/64 and
//! 16/32/128 KiB 0.1 point less at that size, with four and two times the
//! hashes, which a store of 1 GB would make the costlier; restic's 1 MiB
//! chunks 2.9 to 3.7%.

use std::io::Read;

/// Files of this size or more are chunked; smaller ones are one blob.
pub(crate) const CHUNKED_FROM: u64 = 512 << 10;

/// Chunk sizes: no chunk is smaller (but a file's last), the average, and
/// no chunk is larger. Even numbers, as fastcdc 5 requires.
pub(crate) const MIN: usize = 16 << 10;
pub(crate) const AVG: usize = 64 << 10;
pub(crate) const MAX: usize = 256 << 10;

/// The chunks of what `source` reads, in order.
pub(crate) fn split<R: Read>(source: R) -> impl Iterator<Item = Result<Vec<u8>, std::io::Error>> {
    fastcdc::v2020::StreamCDC::new(source, MIN, AVG, MAX)
        .map(|c| c.map(|c| c.data).map_err(std::io::Error::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn a_page_changed_in_place_changes_about_one_chunk() {
        let before = noise(4 << 20, 3);
        let mut after = before.clone();
        // One 4 KiB page rewritten in the middle.
        after[2_000_000..2_004_096].copy_from_slice(&noise(4096, 9));
        let chunks =
            |data: &[u8]| -> Vec<Vec<u8>> { split(data).collect::<Result<_, _>>().unwrap() };
        let (a, b) = (chunks(&before), chunks(&after));
        assert_eq!(a.concat(), before);
        assert_eq!(b.concat(), after);
        assert!(a.iter().all(|c| c.len() <= MAX));
        let new = b.iter().filter(|c| !a.contains(c)).count();
        assert!((1..=2).contains(&new), "{new} chunks changed");
        assert!(a.len() > 30 && a.len() < 130, "{} chunks of 4 MiB", a.len());
    }
}
