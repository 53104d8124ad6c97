// Over 400 lines: verify, prune, drill and the schedule share the catalog walk; a third of it is
// tests.

//! Verify, prune, drills and the schedule.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::blob::ObjectError;
use super::content::Reader;
use super::manifest::{Kind, Manifest, Node, State};
use super::pack::{self, Index, Name, Open, PackWriter, Place};
use super::repo::Repo;
use super::restore::{check_copy, hash_file, write_state};
use super::scan::{STORE_PATH, sources};
use super::{BackupError, Catalog, Progress, Scope, millis};
use crate::config::BackupConfig;

/// Which backups `verify` checks.
#[derive(Debug, Clone)]
pub enum Which {
    All,
    One(String),
}

/// One backup's verification.
#[derive(Debug, Clone, Serialize)]
pub struct BackupCheck {
    pub id: String,
    pub kind: Option<Kind>,
    pub created_at: Option<String>,
    pub files: u64,
    /// `(path, what is wrong)`; empty when the backup is intact.
    pub problems: Vec<(String, String)>,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub backups: Vec<BackupCheck>,
    pub objects_read: u64,
    pub bytes_read: u64,
    pub duration_ms: u64,
}

impl VerifyReport {
    #[must_use]
    pub fn ok(&self) -> bool {
        self.backups.iter().all(|b| b.problems.is_empty())
    }
}

/// Re-reads and re-hashes every blob the chosen backups need (each
/// chunk of a large file, each small file), hashes every pack they use
/// whole, and checks every manifest.
///
/// # Errors
/// [`BackupError`] if the repository cannot be opened or read.
pub fn verify(
    repo: &Repo,
    which: &Which,
    progress: &dyn Progress,
) -> Result<VerifyReport, BackupError> {
    let started = Instant::now();
    let _lock = repo.lock(false)?;
    let catalog = Catalog::read(repo)?;
    let reader = Reader::new(repo)?;
    let mut report = VerifyReport {
        backups: Vec::new(),
        objects_read: 0,
        bytes_read: 0,
        duration_ms: 0,
    };
    let chosen: Vec<&Manifest> = match which {
        Which::All => {
            for (file, reason) in &catalog.damaged {
                report.backups.push(BackupCheck {
                    id: file.clone(),
                    kind: None,
                    created_at: None,
                    files: 0,
                    problems: vec![(file.clone(), reason.clone())],
                });
            }
            catalog.manifests.iter().collect()
        }
        Which::One(id) => vec![catalog.find(id)?],
    };
    let states: Vec<(&Manifest, Result<State, String>)> = chosen
        .into_iter()
        .map(|m| (m, catalog.state(&m.id).map_err(|e| e.to_string())))
        .collect();
    let total = states
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .flat_map(|s| s.values())
        .map(|n| {
            if let Node::File { size, .. } = n {
                *size
            } else {
                0
            }
        })
        .sum();
    progress.start("verifying", total);
    // Each blob and each pack is read once, however many backups share it.
    let mut seen = Seen::default();
    for (m, state) in states {
        let mut check = BackupCheck {
            id: m.id.clone(),
            kind: Some(m.kind),
            created_at: Some(m.created_at.clone()),
            files: 0,
            problems: Vec::new(),
        };
        match state {
            Err(e) => check.problems.push(("(chain)".into(), e)),
            Ok(state) => {
                let mut packs = BTreeSet::new();
                for (path, node) in &state {
                    let Node::File { size, .. } = node else {
                        continue;
                    };
                    check.files += 1;
                    if let Some(why) = seen.file(&reader, node, &mut report, &mut packs) {
                        check.problems.push((path.clone(), why));
                    }
                    progress.advance(*size);
                }
                for pack in packs {
                    if let Some((rel, why)) = seen.pack(&reader.index, pack) {
                        check.problems.push((rel, why));
                    }
                }
            }
        }
        report.backups.push(check);
    }
    progress.finish();
    report.duration_ms = millis(started.elapsed());
    Ok(report)
}

/// What `verify` found of each blob and pack it read.
#[derive(Default)]
struct Seen {
    blobs: HashMap<Name, Option<String>>,
    packs: HashMap<usize, Option<(String, String)>>,
    open: Open,
}

impl Seen {
    /// Checks a file's blobs (each read once); notes the packs they are in.
    /// Returns the first problem.
    fn file(
        &mut self,
        reader: &Reader<'_>,
        node: &Node,
        report: &mut VerifyReport,
        packs: &mut BTreeSet<usize>,
    ) -> Option<String> {
        let blobs = reader.blobs_of(node);
        let count = blobs.len();
        let mut problem = None;
        for (i, (name, hash)) in blobs.into_iter().enumerate() {
            if let Some(Place::Packed { pack, .. }) = reader.index.place(&name) {
                packs.insert(pack);
            }
            let open = &mut self.open;
            let verdict = self.blobs.entry(name).or_insert_with(|| {
                report.objects_read += 1;
                match reader.read_blob(&hash, &mut std::io::sink(), open) {
                    Ok(n) => {
                        report.bytes_read += n;
                        None
                    }
                    Err(ObjectError::Damaged(why)) => Some(why),
                    Err(ObjectError::Write(e)) => Some(e.to_string()),
                }
            });
            if let (None, Some(why)) = (&problem, verdict) {
                problem = Some(if count > 1 {
                    format!("chunk {} of {count}: {why}", i + 1)
                } else {
                    why.clone()
                });
            }
        }
        problem
    }

    /// Hashes a whole pack (once) against its name.
    fn pack(&mut self, index: &Index, pack: usize) -> Option<(String, String)> {
        self.packs
            .entry(pack)
            .or_insert_with(|| {
                let p = &index.packs[pack];
                let actual = std::fs::File::open(&p.path).and_then(|mut f| {
                    let mut hasher = blake3::Hasher::new();
                    std::io::copy(&mut f, &mut hasher)?;
                    Ok(hasher.finalize().to_hex().to_string())
                });
                match actual {
                    Ok(h) if h == p.name => None,
                    Ok(h) => Some((
                        p.rel(),
                        format!(
                            "its bytes hash to {h}, its name says {}: the pack was changed or \
                             damaged",
                            p.name
                        ),
                    )),
                    Err(e) => Some((p.rel(), format!("cannot be read: {e}"))),
                }
            })
            .clone()
    }
}

/// How many files of a state have no data in the repository (their blobs
/// are missing; whether present blobs are intact is `verify`'s work).
///
/// # Errors
/// I/O errors reading the repository's index.
pub fn missing_files(repo: &Repo, state: &State) -> Result<usize, BackupError> {
    let reader = Reader::new(repo)?;
    Ok(state.values().filter(|n| !reader.has(n)).count())
}

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

/// The backups a retention policy keeps, closed over their parents.
#[must_use]
pub(crate) fn keep_set(manifests: &[Manifest], policy: &BackupConfig) -> BTreeSet<String> {
    let tz = jiff::tz::TimeZone::system();
    let newest_first: Vec<&Manifest> = manifests.iter().rev().collect();
    let mut keep: BTreeSet<String> = newest_first
        .iter()
        .take(policy.keep_last as usize)
        .map(|m| m.id.clone())
        .collect();
    let mut bucketed = |limit: u32, bucket: &dyn Fn(jiff::civil::Date) -> (i16, i16, i8)| {
        let mut seen = HashSet::new();
        for m in &newest_first {
            if seen.len() >= limit as usize {
                break;
            }
            let Ok(t) = m.time() else { continue };
            if seen.insert(bucket(t.to_zoned_datetime(tz.clone()).date())) {
                keep.insert(m.id.clone());
            }
        }
    };
    bucketed(policy.keep_daily, &|d| (d.year(), d.day_of_year(), 0));
    bucketed(policy.keep_weekly, &|d| {
        let w = d.iso_week_date();
        (w.year(), i16::from(w.week()), 0)
    });
    // Never break a chain a kept backup depends on.
    let by_id: HashMap<&str, &Manifest> = manifests.iter().map(|m| (m.id.as_str(), m)).collect();
    let roots: Vec<String> = keep.iter().cloned().collect();
    for id in roots {
        let mut next = by_id.get(id.as_str()).and_then(|m| m.parent.clone());
        while let Some(p) = next {
            next = by_id.get(p.as_str()).and_then(|m| m.parent.clone());
            keep.insert(p);
        }
    }
    keep
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
    kept.flat_map(|m| m.entries.iter())
        .filter_map(|e| match &e.node {
            Node::File { blake3, chunks, .. } => Some(
                chunks
                    .as_deref()
                    .unwrap_or(std::slice::from_ref(blake3))
                    .iter()
                    .filter_map(|h| pack::name_of(&repo.object_name(h)))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The index a backup builds on: first, what no backup names (packs and
/// objects left by an interrupted backup, perhaps not all on disk after a
/// power cut) is deleted, so a new backup never counts on it; every pack
/// left was synced before the manifest naming it was written. Nothing is
/// deleted while a manifest is damaged. Under the exclusive lock.
///
/// # Errors
/// I/O errors.
pub(crate) fn trusted_index(repo: &Repo, catalog: &Catalog) -> Result<Index, BackupError> {
    let index = Index::load(repo)?;
    if !catalog.damaged.is_empty() {
        return Ok(index);
    }
    let named = live_blobs(repo, catalog.manifests.iter());
    let gc = plan_gc(&index, &named);
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

/// The kind `acp run` should take now, if any: full when the last full is
/// older than `full_every`, else differential or incremental on theirs.
#[must_use]
pub fn due(catalog: &Catalog, policy: &BackupConfig, now: jiff::Timestamp) -> Option<Kind> {
    due_from(&catalog.manifests, policy, now)
}

fn due_from(manifests: &[Manifest], policy: &BackupConfig, now: jiff::Timestamp) -> Option<Kind> {
    // Age of the newest backup of one of `kinds`; `None` if there is none.
    let age = |kinds: &[Kind]| -> Option<Duration> {
        manifests
            .iter()
            .rev()
            .find(|m| kinds.contains(&m.kind))
            .and_then(|m| m.time().ok())
            .map(|t| Duration::from_millis(u64::try_from((now - t).as_millis()).unwrap_or(0)))
    };
    let is_due = |age: Option<Duration>, every: Option<Duration>| match (age, every) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(e)) => a >= e,
    };
    let all = [Kind::Full, Kind::Differential, Kind::Incremental];
    if is_due(age(&[Kind::Full]), policy.full_every) {
        return Some(Kind::Full);
    }
    if is_due(
        age(&[Kind::Full, Kind::Differential]),
        policy.differential_every,
    ) {
        return Some(Kind::Differential);
    }
    if is_due(age(&all), policy.incremental_every) {
        return Some(Kind::Incremental);
    }
    None
}

/// A disaster-recovery drill's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    pub backup: String,
    pub kind: Kind,
    pub created_at: String,
    /// How old the newest backup is: the data a disaster now would lose.
    pub rpo_seconds: u64,
    /// How long restoring and verifying took: the recovery time.
    pub rto_ms: u64,
    pub files: u64,
    pub bytes: u64,
    /// Live files that changed since the backup (expected: recent work).
    pub changed_since: Vec<String>,
    /// Restored files that are in the backup but not live any more.
    pub missing_live: Vec<String>,
    pub store_integrity: String,
}

/// Restores the latest backup into a temporary directory, verifies it,
/// checks the restored store, and compares it with the live state.
///
/// # Errors
/// [`BackupError`] if there is no backup or it cannot be restored.
pub fn drill(scope: &Scope, progress: &dyn Progress) -> Result<Drill, BackupError> {
    let repo = Repo::open(&scope.settings)?;
    let _lock = repo.lock(false)?;
    let catalog = Catalog::read(&repo)?;
    let latest = catalog.find("latest")?;
    let started = Instant::now();
    // On the repository's disk (not a small /tmp): what a real recovery
    // would read and write.
    let scratch = tempfile::Builder::new()
        .prefix("drill-")
        .tempdir_in(repo.path().join("tmp"))
        .map_err(|e| BackupError::Io {
            path: repo.path().join("tmp").display().to_string(),
            source: e,
        })?;
    let dest = scratch.path().join("root");
    let state = catalog.state(&latest.id)?;
    let restored = write_state(&repo, latest, &state, &dest, false, progress)?;
    check_copy(&state, &dest).map_err(|files| BackupError::Damaged {
        id: latest.id.clone(),
        files,
    })?;
    let store_integrity = if dest.join(STORE_PATH).exists() {
        let conn = rusqlite::Connection::open(dest.join(STORE_PATH))?;
        conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?
    } else {
        "no store in the backup".into()
    };
    let rto_ms = millis(started.elapsed());
    let (changed_since, missing_live) = compare_live(scope, &state);
    let age = jiff::Timestamp::now() - latest.time().map_err(BackupError::Corrupt)?;
    Ok(Drill {
        backup: latest.id.clone(),
        kind: latest.kind,
        created_at: latest.created_at.clone(),
        rpo_seconds: u64::try_from(age.as_secs()).unwrap_or(0),
        rto_ms,
        files: restored.files,
        bytes: restored.bytes,
        changed_since,
        missing_live,
        store_integrity,
    })
}

/// Compares a backup state with the live files (the store aside: it
/// changes with every message).
fn compare_live(scope: &Scope, state: &State) -> (Vec<String>, Vec<String>) {
    let mut changed = Vec::new();
    let mut missing = Vec::new();
    let sources = sources(scope);
    for (path, node) in state {
        let Node::File { size, blake3, .. } = node else {
            continue;
        };
        if path == STORE_PATH {
            continue;
        }
        let Some(source) = sources
            .iter()
            .find(|s| path == &s.rel || path.starts_with(&format!("{}/", s.rel)))
        else {
            continue;
        };
        let live = source
            .abs
            .join(Path::new(&path[source.rel.len()..].trim_start_matches('/')));
        match hash_file(&live) {
            Ok((h, n)) if &h == blake3 && n == *size => {}
            Ok(_) => changed.push(path.clone()),
            Err(_) => missing.push(path.clone()),
        }
    }
    (changed, missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::{FORMAT, Stats};

    fn backup(kind: Kind, hours_ago: i64, now: jiff::Timestamp) -> Manifest {
        let t = now - jiff::SignedDuration::from_hours(hours_ago);
        Manifest {
            format: FORMAT.into(),
            id: ulid::Ulid::from_parts(u64::try_from(t.as_millisecond()).unwrap(), 1).to_string(),
            kind,
            parent: (kind != Kind::Full).then(|| "x".into()),
            created_at: format!("{t:.3}"),
            acp_version: String::new(),
            sources: vec![],
            entries: vec![],
            deleted: vec![],
            stats: Stats::default(),
        }
    }

    fn policy() -> BackupConfig {
        let mut p = BackupConfig::defaults(std::path::Path::new("/r"));
        p.full_every = Some(Duration::from_secs(24 * 3600));
        p.differential_every = Some(Duration::from_secs(6 * 3600));
        p.incremental_every = Some(Duration::from_secs(3600));
        p
    }

    #[test]
    fn the_schedule_takes_the_biggest_kind_that_is_due() {
        let now = jiff::Timestamp::now();
        let p = policy();
        assert_eq!(due_from(&[], &p, now), Some(Kind::Full));
        let fresh = [backup(Kind::Full, 0, now)];
        assert_eq!(due_from(&fresh, &p, now), None);
        let hour = [backup(Kind::Full, 2, now)];
        assert_eq!(due_from(&hour, &p, now), Some(Kind::Incremental));
        let day = [
            backup(Kind::Full, 7, now),
            backup(Kind::Incremental, 0, now),
        ];
        assert_eq!(due_from(&day, &p, now), Some(Kind::Differential));
        let diffed = [
            backup(Kind::Full, 7, now),
            backup(Kind::Differential, 1, now),
        ];
        assert_eq!(due_from(&diffed, &p, now), Some(Kind::Incremental));
        let old = [
            backup(Kind::Full, 25, now),
            backup(Kind::Incremental, 0, now),
        ];
        assert_eq!(due_from(&old, &p, now), Some(Kind::Full));
        let mut off = p.clone();
        off.full_every = None;
        off.differential_every = None;
        off.incremental_every = None;
        assert_eq!(due_from(&[], &off, now), None);
    }

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

    #[test]
    fn retention_keeps_days_weeks_and_the_chains_they_need() {
        let now = jiff::Timestamp::now();
        let mut p = policy();
        p.keep_last = 1;
        p.keep_daily = 2;
        p.keep_weekly = 0;
        // Oldest first: a full 10 days ago, then incrementals on its chain.
        let mut all = vec![backup(Kind::Full, 240, now)];
        for hours in [72, 50, 49, 26, 25, 2, 1] {
            let mut m = backup(Kind::Incremental, hours, now);
            m.parent = Some(all.last().unwrap().id.clone());
            all.push(m);
        }
        let keep = keep_set(&all, &p);
        // Every backup is on one chain: keeping the newest keeps them all.
        assert_eq!(keep.len(), all.len());
        // Independent fulls: only the policy's picks stay.
        let fulls: Vec<Manifest> = [240, 72, 50, 49, 26, 25, 2, 1]
            .iter()
            .map(|h| backup(Kind::Full, *h, now))
            .collect();
        let keep = keep_set(&fulls, &p);
        assert!(keep.contains(&fulls[7].id), "the newest");
        assert!(keep.len() <= 3, "{keep:?}");
        assert!(!keep.contains(&fulls[0].id), "the oldest goes");
    }
}
