//! Prune: the retention policy applied, then what no kept backup uses
//! collected (packs deleted or rewritten, format-1 objects deleted); and
//! the same collection of what no backup at all names, before a backup.

use std::collections::HashSet;

use serde::Serialize;

use super::manifest::{Manifest, Node};
use super::ops::keep_set;
use super::pack::{self, Index, Name, Open, PackWriter, Place};
use super::repo::Repo;
use super::{BackupError, Catalog};
use crate::config::BackupConfig;

/// What `prune` removed.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub kept: Vec<String>,
    pub removed: Vec<String>,
    /// Blobs no kept backup uses that left the repository: format-1
    /// objects, and blobs of packs deleted or rewritten.
    pub objects_removed: u64,
    /// Packs deleted whole (nothing in them was used).
    pub packs_removed: u64,
    /// Packs rewritten without their unused blobs.
    pub packs_rewritten: u64,
    pub bytes_freed: u64,
    /// Set when damaged manifests or packs stopped some of the cleanup.
    pub warning: Option<String>,
}

/// What garbage collection will do.
#[derive(Debug, Default, PartialEq, Eq)]
struct Gc {
    /// Format-1 objects nobody uses: name and size.
    objects: Vec<(Name, u64)>,
    /// Packs nothing in which is used.
    delete: Vec<usize>,
    /// Packs mostly unused: their used blobs move to new packs.
    rewrite: Vec<usize>,
    /// Blobs that leave the repository.
    blobs: u64,
    /// Bytes that leave it (a rewritten pack's unused part).
    bytes: u64,
}

/// Plans the collection: a blob is used when a kept backup names it and
/// it is read from this place (the first pack holding it; a copy
/// elsewhere is unused). A pack whose used blobs fill less than half of
/// it is rewritten; one with none is deleted.
fn plan_gc(index: &Index, live: &HashSet<Name>) -> Gc {
    let mut gc = Gc::default();
    for &(name, size) in &index.objects {
        if !live.contains(&name) || index.place(&name) != Some(Place::Object) {
            gc.objects.push((name, size));
            gc.blobs += 1;
            gc.bytes += size;
        }
    }
    for (i, p) in index.packs.iter().enumerate() {
        let used: Vec<&pack::Entry> = p
            .entries
            .iter()
            .filter(|e| {
                live.contains(&e.name)
                    && matches!(index.place(&e.name), Some(Place::Packed { pack, .. }) if pack == i)
            })
            .collect();
        let used_bytes: u64 = used.iter().map(|e| u64::from(e.stored)).sum();
        let dropped = (p.entries.len() - used.len()) as u64;
        if used.is_empty() {
            gc.delete.push(i);
            gc.blobs += dropped;
            gc.bytes += p.size;
        } else if used_bytes * 2 < p.size {
            gc.rewrite.push(i);
            gc.blobs += dropped;
            gc.bytes += p.size - used_bytes;
        }
    }
    gc
}

/// The blobs the kept backups use.
fn live_blobs<'m>(repo: &Repo, kept: impl Iterator<Item = &'m Manifest>) -> HashSet<Name> {
    kept.flat_map(|m| blobs_of(repo, m)).collect()
}

/// The blobs one backup names (each small file's, each chunk of a large
/// one).
pub(crate) fn blobs_of<'m>(repo: &'m Repo, m: &'m Manifest) -> impl Iterator<Item = Name> + 'm {
    m.entries
        .iter()
        .filter_map(|e| match &e.node {
            Node::File { blake3, chunks, .. } => {
                Some(chunks.as_deref().unwrap_or(std::slice::from_ref(blake3)))
            }
            _ => None,
        })
        .flatten()
        .filter_map(|h| pack::name_of(&repo.object_name(h)))
}

/// The index a backup builds on: first, what no backup names (packs and
/// objects left by an interrupted backup, perhaps not all on disk after a
/// power cut) is deleted, so a new backup never counts on it; every pack
/// left was synced before the manifest naming it was written. Nothing is
/// deleted while a manifest is damaged. Under the exclusive lock.
///
/// # Errors
/// I/O errors.
pub(crate) fn trusted_index(
    repo: &Repo,
    damaged: bool,
    named: &HashSet<Name>,
) -> Result<Index, BackupError> {
    let index = Index::load(repo)?;
    if damaged {
        return Ok(index);
    }
    let gc = plan_gc(&index, named);
    let unreadable = !index.damaged.is_empty() && named.iter().all(|n| index.contains(n));
    if gc.delete.is_empty() && gc.objects.is_empty() && !unreadable {
        return Ok(index);
    }
    for &i in &gc.delete {
        repo.remove_pack(&index.packs[i].name)?;
    }
    if unreadable {
        for (rel, _) in &index.damaged {
            repo.remove_pack(rel.rsplit('/').next().unwrap_or(rel))?;
        }
    }
    for (name, _) in &gc.objects {
        repo.remove_object(&pack::hex(name))?;
    }
    Index::load(repo)
}

/// Applies the retention policy, then deletes what no kept backup uses:
/// format-1 objects, and packs, rewriting the mostly unused ones first.
///
/// # Errors
/// [`BackupError`].
pub fn prune(
    repo: &Repo,
    policy: &BackupConfig,
    dry_run: bool,
) -> Result<PruneReport, BackupError> {
    let _lock = repo.lock(true)?;
    let catalog = Catalog::read(repo)?;
    let keep = keep_set(&catalog.manifests, policy);
    let mut report = PruneReport {
        kept: Vec::new(),
        removed: Vec::new(),
        objects_removed: 0,
        packs_removed: 0,
        packs_rewritten: 0,
        bytes_freed: 0,
        warning: None,
    };
    for m in &catalog.manifests {
        if keep.contains(&m.id) {
            report.kept.push(m.id.clone());
        } else {
            report.removed.push(m.id.clone());
        }
    }
    if !dry_run {
        for id in &report.removed {
            repo.remove_manifest(id)?;
        }
    }
    if !catalog.damaged.is_empty() {
        report.warning = Some(format!(
            "{} damaged manifest(s) (see `acp backup verify --all`): unused data was kept, \
             since a damaged manifest may still name it",
            catalog.damaged.len()
        ));
        return Ok(report);
    }
    let index = Index::load(repo)?;
    let live = live_blobs(
        repo,
        catalog.manifests.iter().filter(|m| keep.contains(&m.id)),
    );
    let gc = plan_gc(&index, &live);
    report.objects_removed = gc.blobs;
    report.packs_removed = gc.delete.len() as u64;
    report.packs_rewritten = gc.rewrite.len() as u64;
    report.bytes_freed = gc.bytes;
    // A pack whose table cannot be read holds nothing the index knows: it
    // goes only when every used blob is found elsewhere.
    let unreadable: Vec<&(String, String)> = index.damaged.iter().collect();
    let all_found = live.iter().all(|n| index.contains(n));
    if !unreadable.is_empty() && !all_found {
        report.warning = Some(format!(
            "{} pack(s) cannot be read (see `acp backup verify --all`) and some backups need \
             data that is nowhere else: they were kept",
            unreadable.len()
        ));
    }
    if dry_run {
        return Ok(report);
    }
    let written = rewrite(repo, &index, &live, &gc.rewrite)?;
    for &i in gc.delete.iter().chain(&gc.rewrite) {
        // A rewrite can make a pack identical to one left by an earlier,
        // interrupted rewrite (same bytes, same name): that one stays.
        if !written.contains(&index.packs[i].path) {
            repo.remove_pack(&index.packs[i].name)?;
        }
    }
    if all_found {
        for (rel, _) in unreadable {
            repo.remove_pack(rel.rsplit('/').next().unwrap_or(rel))?;
            report.packs_removed += 1;
        }
    }
    for (name, _) in &gc.objects {
        repo.remove_object(&pack::hex(name))?;
    }
    repo.sync_data()?;
    repo.clean_tmp();
    Ok(report)
}

/// Copies the used blobs of `packs` into new packs, and makes them
/// durable: only then may the old ones go. Returns the new packs' paths.
fn rewrite(
    repo: &Repo,
    index: &Index,
    live: &HashSet<Name>,
    packs: &[usize],
) -> Result<HashSet<std::path::PathBuf>, BackupError> {
    let mut written = HashSet::new();
    if packs.is_empty() {
        return Ok(written);
    }
    let tmp = repo.path().join("tmp");
    let mut writer = PackWriter::new(&tmp, repo.cipher())?;
    let mut open = Open::default();
    for &i in packs {
        let p = &index.packs[i];
        for e in &p.entries {
            let here =
                matches!(index.place(&e.name), Some(Place::Packed { pack, .. }) if pack == i);
            if !live.contains(&e.name) || !here {
                continue;
            }
            // The stored bytes are copied as they are (a damaged blob
            // stays damaged, and verify still finds it).
            let stored = open
                .stored(index, repo.cipher(), i, e)
                .map_err(|why| BackupError::Corrupt(format!("{} {why}", p.rel())))?;
            writer.add(e.name, &stored, u64::from(e.plain))?;
            if writer.len() >= pack::PACK_TARGET {
                written.insert(writer.finish(repo)?);
                writer = PackWriter::new(&tmp, repo.cipher())?;
            }
        }
    }
    if !writer.is_empty() {
        written.insert(writer.finish(repo)?);
    }
    repo.sync_data()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(name: &str, blobs: &[(u8, u32)]) -> pack::Pack {
        let mut offset = 0;
        let entries: Vec<pack::Entry> = blobs
            .iter()
            .map(|&(n, stored)| {
                let e = pack::Entry {
                    name: [n; 32],
                    offset,
                    stored,
                    plain: stored,
                };
                offset += u64::from(stored);
                e
            })
            .collect();
        pack::Pack {
            name: name.repeat(64),
            path: std::path::PathBuf::from(name),
            size: offset + 48,
            body: offset,
            entries,
        }
    }

    #[test]
    fn collection_deletes_unused_packs_and_rewrites_mostly_unused_ones() {
        let index = Index::of(vec![
            // Mostly used: stays.
            pack("a", &[(1, 900), (2, 100)]),
            // Mostly unused: rewritten.
            pack("b", &[(3, 100), (4, 900)]),
            // Unused: deleted.
            pack("c", &[(5, 500)]),
            // Only a second copy of a used blob (read from "a"): deleted.
            pack("d", &[(1, 900)]),
        ]);
        let live: HashSet<Name> = [[1; 32], [3; 32]].into_iter().collect();
        let gc = plan_gc(&index, &live);
        assert_eq!(gc.rewrite, [1]);
        assert_eq!(gc.delete, [2, 3]);
        // 4, 5 and the copy of 1 in "d" leave; 2 stays, in "a".
        assert_eq!(gc.blobs, 3);
        assert_eq!(gc.bytes, (1048 - 100) + 548 + 948);
        // Nothing used: everything goes; everything used: nothing does.
        assert_eq!(plan_gc(&index, &HashSet::new()).delete, [0, 1, 2, 3]);
        let all: HashSet<Name> = (1..=5).map(|n| [n; 32]).collect();
        let gc = plan_gc(&index, &all);
        assert_eq!((gc.delete, gc.rewrite), (vec![3], vec![]));
    }
}
