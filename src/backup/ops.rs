// Over 400 lines: verify, drill, retention and the schedule share the catalog walk; a third of
// it is tests.

//! Verify, drills, the retention policy and the schedule ([`super::gc`]
//! applies the policy).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::blob::ObjectError;
use super::content::Reader;
use super::manifest::{Kind, Manifest, Node, State, Summary};
use super::pack::{Index, Name, Open, Place};
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

/// The kind `acp run` should take now, if any: full when the last full is
/// older than `full_every`, else differential or incremental on theirs.
/// `backups` are the repository's summaries, oldest first.
#[must_use]
pub fn due(backups: &[Summary], policy: &BackupConfig, now: jiff::Timestamp) -> Option<Kind> {
    // Age of the newest backup of one of `kinds`; `None` if there is none.
    let age = |kinds: &[Kind]| -> Option<Duration> {
        backups
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

    /// What the schedule reads of [`backup`].
    fn summary(kind: Kind, hours_ago: i64, now: jiff::Timestamp) -> Summary {
        Summary::from(&backup(kind, hours_ago, now))
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
        assert_eq!(due(&[], &p, now), Some(Kind::Full));
        let fresh = [summary(Kind::Full, 0, now)];
        assert_eq!(due(&fresh, &p, now), None);
        let hour = [summary(Kind::Full, 2, now)];
        assert_eq!(due(&hour, &p, now), Some(Kind::Incremental));
        let day = [
            summary(Kind::Full, 7, now),
            summary(Kind::Incremental, 0, now),
        ];
        assert_eq!(due(&day, &p, now), Some(Kind::Differential));
        let diffed = [
            summary(Kind::Full, 7, now),
            summary(Kind::Differential, 1, now),
        ];
        assert_eq!(due(&diffed, &p, now), Some(Kind::Incremental));
        let old = [
            summary(Kind::Full, 25, now),
            summary(Kind::Incremental, 0, now),
        ];
        assert_eq!(due(&old, &p, now), Some(Kind::Full));
        let mut off = p.clone();
        off.full_every = None;
        off.differential_every = None;
        off.incremental_every = None;
        assert_eq!(due(&[], &off, now), None);
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
