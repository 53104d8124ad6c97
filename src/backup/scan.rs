// Over 400 lines: the walk, the store capture and the parallel store of one backup are one
// pipeline.

//! Taking a backup: walk the sources, store what changed (large files as
//! chunks, each blob once, in packs), sync, commit.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::blob;
use super::content::{Put, Writer};
use super::manifest::{self, FORMAT, Kind, Manifest, Node, State, Stats};
use super::pack::Index;
use super::repo::{Repo, io_err};
use super::{BackupError, Catalog, Progress, Scope, millis};

/// Where the store sits in a backup.
pub(crate) const STORE_PATH: &str = "data/acp.db";

/// What `create` did.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub manifest: Manifest,
    /// The manifest's file name in `snapshots/`.
    pub file: String,
    /// Why the kind differs from the one asked for, if it does.
    pub note: Option<String>,
    /// Paths left out (not UTF-8, sockets, devices, unreadable), with why.
    pub skipped: Vec<(String, String)>,
}

/// One directory tree (or the store) the backup covers.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// Path inside the backup.
    pub rel: String,
    /// Where it lives now.
    pub abs: PathBuf,
}

/// The sources of a scope (the store is handled apart).
#[must_use]
pub fn sources(scope: &Scope) -> Vec<Source> {
    let root = &scope.root;
    let mut out = vec![
        Source {
            rel: "config".into(),
            abs: root.join("config"),
        },
        Source {
            rel: "devlogs".into(),
            abs: root.join("devlogs"),
        },
        // People's inboxes as files (the store holds their record too).
        Source {
            rel: "data/people".into(),
            abs: root.join("data").join("people"),
        },
    ];
    for (id, inbox) in &scope.inboxes {
        out.push(Source {
            rel: format!("agent_workspaces/{id}/inbox"),
            abs: inbox.clone(),
        });
    }
    for rel in &scope.settings.include {
        out.push(Source {
            rel: rel.clone(),
            abs: root.join(rel),
        });
    }
    // A source inside another is covered by it.
    let rels: Vec<String> = out.iter().map(|s| s.rel.clone()).collect();
    out.retain(|s| {
        !rels
            .iter()
            .any(|r| r != &s.rel && s.rel.starts_with(&format!("{r}/")))
    });
    out.dedup_by(|a, b| a.rel == b.rel);
    out
}

/// Whether a backup path is left out: secrets (`.env`, `.env.*` but the
/// example), `backup.exclude`, and the repository itself.
pub(super) struct Excluder {
    exclude: Vec<String>,
    repository: PathBuf,
}

impl Excluder {
    pub(super) fn new(scope: &Scope) -> Self {
        Self {
            exclude: scope.settings.exclude.clone(),
            repository: scope.settings.repository.clone(),
        }
    }

    pub(super) fn skips(&self, rel: &str, abs: &Path) -> bool {
        // The live store is only ever read through the online backup API.
        if rel == STORE_PATH || rel.starts_with("data/acp.db-") {
            return true;
        }
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if name == ".env" || (name.starts_with(".env.") && name != ".env.example") {
            return true;
        }
        if abs == self.repository {
            return true;
        }
        self.exclude
            .iter()
            .any(|e| rel == e || (rel.starts_with(e.as_str()) && rel[e.len()..].starts_with('/')))
    }
}

fn mode(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// A file whose content must be read.
struct Job {
    rel: String,
    abs: PathBuf,
    mode: u32,
    mtime_ns: i64,
}

struct Walk<'a> {
    base: &'a State,
    excluder: Excluder,
    state: State,
    jobs: Vec<Job>,
    skipped: Vec<(String, String)>,
    pending_bytes: u64,
}

impl Walk<'_> {
    fn visit(&mut self, rel: &str, abs: &Path) {
        if self.excluder.skips(rel, abs) {
            return;
        }
        let meta = match fs::symlink_metadata(abs) {
            Ok(m) => m,
            // Gone since the directory was listed: not part of the state.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.skipped.push((rel.to_owned(), e.to_string()));
                return;
            }
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            self.state
                .insert(rel.to_owned(), Node::Dir { mode: mode(&meta) });
            let items = match fs::read_dir(abs) {
                Ok(d) => d,
                Err(e) => {
                    self.skipped.push((rel.to_owned(), e.to_string()));
                    return;
                }
            };
            let mut names: Vec<_> = items.flatten().map(|e| e.file_name()).collect();
            names.sort();
            for name in names {
                let Some(text) = name.to_str() else {
                    self.skipped.push((
                        format!("{rel}/{}", name.to_string_lossy()),
                        "the name is not UTF-8: rename it to back it up".into(),
                    ));
                    continue;
                };
                let child = format!("{rel}/{text}");
                if manifest::check_path(&child).is_err() {
                    self.skipped.push((child, "a name acp cannot store".into()));
                    continue;
                }
                self.visit(&child, &abs.join(&name));
            }
        } else if kind.is_symlink() {
            match fs::read_link(abs).map(|t| t.to_str().map(str::to_owned)) {
                Ok(Some(target)) if !target.is_empty() => {
                    self.state.insert(rel.to_owned(), Node::Symlink { target });
                }
                Ok(_) => self
                    .skipped
                    .push((rel.to_owned(), "the link target is not UTF-8".into())),
                Err(e) => self.skipped.push((rel.to_owned(), e.to_string())),
            }
        } else if kind.is_file() {
            let (m, t) = (mode(&meta), mtime_ns(&meta));
            // Unchanged size and modification time: the content is the
            // parent's (as restic and rsync judge it), not read again.
            if let Some(Node::File {
                size,
                mtime_ns,
                blake3,
                chunks,
                ..
            }) = self.base.get(rel)
                && *size == meta.len()
                && *mtime_ns == t
            {
                self.state.insert(
                    rel.to_owned(),
                    Node::File {
                        size: *size,
                        mode: m,
                        mtime_ns: t,
                        blake3: blake3.clone(),
                        chunks: chunks.clone(),
                    },
                );
                return;
            }
            self.pending_bytes += meta.len();
            self.jobs.push(Job {
                rel: rel.to_owned(),
                abs: abs.to_path_buf(),
                mode: m,
                mtime_ns: t,
            });
        } else {
            self.skipped.push((
                rel.to_owned(),
                "not a file, directory or symlink (a socket, pipe or device)".into(),
            ));
        }
    }
}

/// Copies the live store through SQLite's online backup API (consistent
/// even while `acp run` writes), into a scratch file in the repository.
fn snapshot_store(db: &Path, scratch: &Path) -> Result<(), BackupError> {
    use rusqlite::backup::{Backup, StepResult};
    use rusqlite::{Connection, OpenFlags};
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(std::time::Duration::from_secs(30))?;
    let mut dst = Connection::open(scratch)?;
    {
        let backup = Backup::new(&src, &mut dst)?;
        // All pages in one step: one consistent read transaction, never
        // restarted by a concurrent writer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => {
                    return Err(BackupError::Usage(
                        "the store stayed locked for 60 s: try again when acp is less busy".into(),
                    ));
                }
            }
        }
    }
    dst.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Captures the store consistently into a scratch file and queues it as
/// `data/acp.db`; returns the scratch file to delete afterwards.
fn capture_store(
    scope: &Scope,
    repo: &Repo,
    id: &str,
    created_at: jiff::Timestamp,
    walk: &mut Walk<'_>,
) -> Result<Option<PathBuf>, BackupError> {
    let db = &scope.store;
    if !db.exists() {
        return Ok(None);
    }
    let scratch = repo.scratch(&format!("store-{id}.db"));
    snapshot_store(db, &scratch)?;
    let meta = fs::metadata(db).map_err(io_err(db))?;
    // The store's directory is private, as `acp init` makes it.
    walk.state
        .entry("data".into())
        .or_insert(Node::Dir { mode: 0o700 });
    walk.pending_bytes += fs::metadata(&scratch).map_or(0, |m| m.len());
    walk.jobs.push(Job {
        rel: STORE_PATH.into(),
        abs: scratch.clone(),
        mode: mode(&meta),
        mtime_ns: i64::try_from(created_at.as_nanosecond()).unwrap_or(i64::MAX),
    });
    Ok(Some(scratch))
}

/// Picks the parent and base state for the kind asked.
fn plan(catalog: &Catalog, kind: Kind) -> (Kind, Option<String>, State, Option<String>) {
    let parent = match kind {
        Kind::Full => None,
        Kind::Incremental => catalog.manifests.last(),
        Kind::Differential => catalog
            .manifests
            .iter()
            .rev()
            .find(|m| m.kind == Kind::Full),
    };
    let Some(parent) = parent else {
        let note = (kind != Kind::Full).then(|| {
            format!("no earlier backup for this {kind} backup to build on: took a full backup")
        });
        return (Kind::Full, None, State::new(), note);
    };
    match catalog.state(&parent.id) {
        Ok(state) => (kind, Some(parent.id.clone()), state, None),
        Err(e) => (
            Kind::Full,
            None,
            State::new(),
            Some(format!(
                "the {kind} backup's parent is unusable ({e}): took a full backup"
            )),
        ),
    }
}

/// Takes a backup of the scope into its repository.
///
/// # Errors
/// [`BackupError`]: the repository is busy or unusable, or I/O failed.
pub fn create(scope: &Scope, kind: Kind, progress: &dyn Progress) -> Result<Created, BackupError> {
    let started = Instant::now();
    let mut repo = Repo::open_or_create(&scope.settings)?;
    let _lock = repo.lock(true)?;
    repo.clean_tmp();
    repo.upgrade()?;
    progress.step("scanning");
    let (catalog, named) = Catalog::read_for_backup(&repo)?;
    let index = super::gc::trusted_index(&repo, !catalog.damaged.is_empty(), &named)?;
    drop(named);
    let (kind, parent, base, note) = plan(&catalog, kind);
    let created_at = jiff::Timestamp::now();
    let id = ulid::Ulid::generate().to_string();

    let mut walk = Walk {
        base: &base,
        excluder: Excluder::new(scope),
        state: State::new(),
        jobs: Vec::new(),
        skipped: Vec::new(),
        pending_bytes: 0,
    };
    let mut covered = Vec::new();
    for source in sources(scope) {
        if !source.abs.exists() {
            continue;
        }
        // The directories above a source, so the state is a tree.
        let parts: Vec<&str> = source.rel.split('/').collect();
        for i in 1..parts.len() {
            let rel = parts[..i].join("/");
            let abs = scope.root.join(&rel);
            let mode = fs::metadata(&abs).map_or(0o755, |m| mode(&m));
            walk.state.entry(rel).or_insert(Node::Dir { mode });
        }
        walk.visit(&source.rel, &source.abs);
        covered.push(source.rel);
    }

    progress.step("copying the store");
    let store_file = capture_store(scope, &repo, &id, created_at, &mut walk)?;
    if store_file.is_some() {
        covered.push(STORE_PATH.into());
    }

    let scanned = started.elapsed();
    let stored = store_files(
        &repo,
        &index,
        scope.settings.zstd_level,
        &walk.jobs,
        walk.pending_bytes,
        progress,
    )?;
    let read = started.elapsed();
    if let Some(scratch) = store_file {
        let _ = fs::remove_file(scratch);
    }
    let mut stats = record(&mut walk.state, &walk.jobs, stored);
    let (entries, deleted) = manifest::diff(&base, &walk.state);
    stats.deleted = deleted.len() as u64;
    // The packs are made durable before the clock stops, so the
    // duration a backup reports includes its flush to disk.
    progress.step("syncing");
    repo.sync_data()?;
    stats.duration_ms = millis(started.elapsed());
    let manifest = Manifest {
        format: FORMAT.into(),
        id,
        kind,
        parent,
        created_at: format!("{created_at:.3}"),
        acp_version: env!("CARGO_PKG_VERSION").into(),
        sources: covered,
        entries,
        deleted,
        stats,
    };
    progress.step("committing");
    let file = repo.commit(&manifest)?;
    tracing::debug!(
        id = %manifest.id,
        scan_ms = millis(scanned),
        store_ms = millis(read.saturating_sub(scanned)),
        sync_and_commit_ms = millis(started.elapsed().saturating_sub(read)),
        "backup phases"
    );
    Ok(Created {
        manifest,
        file,
        note,
        skipped: walk.skipped,
    })
}

/// Puts the stored files into the state and counts what was done.
fn record(state: &mut State, jobs: &[Job], stored: Vec<Option<Put>>) -> Stats {
    let mut counts = Stats::default();
    for (job, result) in jobs.iter().zip(stored) {
        let Some(put) = result else {
            continue; // vanished while backing up
        };
        counts.changed_files += 1;
        counts.changed_bytes += put.size;
        counts.new_objects += put.new_blobs;
        counts.stored_bytes += put.stored;
        state.insert(
            job.rel.clone(),
            Node::File {
                size: put.size,
                mode: job.mode,
                mtime_ns: job.mtime_ns,
                blake3: put.hash,
                chunks: put.chunks,
            },
        );
    }
    for node in state.values() {
        if let Node::File { size, .. } = node {
            counts.total_files += 1;
            counts.total_bytes += size;
        }
    }
    counts
}

/// One result per job (`None` for a file that vanished). Files are read
/// by one worker per core; finished packs are flushed to disk on a side
/// thread while the workers go on, so the final `syncfs` has little left
/// to wait for.
fn store_files(
    repo: &Repo,
    index: &Index,
    level: i32,
    jobs: &[Job],
    total: u64,
    progress: &dyn Progress,
) -> Result<Vec<Option<Put>>, BackupError> {
    progress.start("backing up", total);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Put>>> = Mutex::new(vec![None; jobs.len()]);
    let failure: Mutex<Option<BackupError>> = Mutex::new(None);
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let (flush, flushes) = std::sync::mpsc::channel::<std::path::PathBuf>();
    let writer = Writer::new(repo, index, flush);
    let finished = std::thread::scope(|outer| {
        outer.spawn(move || {
            for path in flushes {
                if let Ok(f) = fs::File::open(&path) {
                    let _ = f.sync_data();
                }
            }
        });
        std::thread::scope(|scope| {
            for _ in 0..workers.min(jobs.len().max(1)) {
                let (next, results, failure, writer) = (&next, &results, &failure, &writer);
                scope.spawn(move || work(writer, jobs, level, next, results, failure, progress));
            }
        });
        // Closing the last pack ends the flusher (the writer holds its
        // channel); a failed run leaves its pack in `tmp/`, where it is
        // deleted.
        if failure.lock().map_or(true, |f| f.is_some()) {
            drop(writer);
            Ok(())
        } else {
            writer.finish()
        }
    });
    progress.finish();
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(e);
    }
    finished?;
    Ok(results.into_inner().unwrap_or_default())
}

/// One worker: takes the next job until none is left or one failed.
fn work(
    writer: &Writer<'_>,
    jobs: &[Job],
    level: i32,
    next: &AtomicUsize,
    results: &Mutex<Vec<Option<Put>>>,
    failure: &Mutex<Option<BackupError>>,
    progress: &dyn Progress,
) {
    let fail = |e: BackupError| {
        if let Ok(mut f) = failure.lock() {
            f.get_or_insert(e);
        }
    };
    let mut zstd = match blob::compressor(level) {
        Ok(z) => z,
        Err(e) => {
            return fail(BackupError::Io {
                path: "zstd".into(),
                source: e,
            });
        }
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(job) = jobs.get(i) else { break };
        if failure.lock().map_or(true, |f| f.is_some()) {
            break;
        }
        match writer.put_file(&job.abs, &mut zstd, &|n| progress.advance(n)) {
            Ok(put) => {
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(put);
                }
            }
            Err(BackupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => fail(e),
        }
    }
}
