// Over 400 lines: both restores share the verified write of a state and its safety checks.

//! Restoring: into an empty directory, or in place through a verified
//! staging copy.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::blob::ObjectError;
use super::content::Reader;
use super::manifest::{Manifest, Node, State};
use super::pack::Open;
use super::repo::{Repo, io_err};
use super::scan::{Excluder, STORE_PATH};
use super::{BackupError, Catalog, Progress, Scope, millis};

/// What a restore wrote.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub id: String,
    pub created_at: String,
    pub target: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Files not restored (with `--partial`), with why.
    pub damaged: Vec<(String, String)>,
    pub duration_ms: u64,
}

/// Restored modes keep the permission bits only: a crafted backup cannot
/// plant setuid files.
const MODE_MASK: u32 = 0o777;

/// The bits a restored path may keep. The directories `acp init` makes
/// private (`config/`, `data/`, `devlogs/`, `backups/`, `agent_workspaces/`
/// and each inbox) stay the owner's only, and the store is 0600, whatever
/// the backup recorded: a root made by an older acp, or one someone opened
/// up, restores as private as `acp init` makes a new one.
fn mode_cap(rel: &str) -> u32 {
    if rel == STORE_PATH {
        return 0o600;
    }
    let inbox = rel
        .strip_prefix("agent_workspaces/")
        .and_then(|r| r.strip_suffix("/inbox"))
        .is_some_and(|agent| !agent.is_empty() && !agent.contains('/'));
    if inbox
        || matches!(
            rel,
            "config" | "data" | "devlogs" | "backups" | "agent_workspaces"
        )
    {
        0o700
    } else {
        MODE_MASK
    }
}

fn is_empty_dir(dir: &Path) -> Result<bool, BackupError> {
    if fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(BackupError::Usage(format!(
            "{} exists and is not a directory: restore into a new or empty directory",
            dir.display()
        )));
    }
    match fs::read_dir(dir) {
        Ok(mut d) => Ok(d.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(dir)(e)),
    }
}

fn set_mtime(file: &File, mtime_ns: i64) {
    let t = if mtime_ns >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(mtime_ns.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - std::time::Duration::from_nanos(mtime_ns.unsigned_abs())
    };
    let _ = file.set_modified(t);
}

/// Writes `state` under `dest` (which must not exist or be empty). Every
/// file's content is checked against its hash while it is written.
/// Without `partial`, any damage removes everything written and fails.
///
/// # Errors
/// [`BackupError::Damaged`] listing each damaged file, or I/O.
pub(crate) fn write_state(
    repo: &Repo,
    manifest: &Manifest,
    state: &State,
    dest: &Path,
    partial: bool,
    progress: &dyn Progress,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    // A link to a directory names that directory: restore into it.
    let resolved;
    let dest =
        if fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink()) && dest.is_dir() {
            resolved = fs::canonicalize(dest).map_err(io_err(dest))?;
            resolved.as_path()
        } else {
            dest
        };
    if !is_empty_dir(dest)? {
        let name = dest.file_name().map_or_else(
            || "restored".to_owned(),
            |n| format!("{}-restored", n.to_string_lossy()),
        );
        return Err(BackupError::Usage(format!(
            "{} is not empty, and a restore never mixes with what is there: restore into a new \
             or empty directory (for example --to {})",
            dest.display(),
            dest.with_file_name(name).display()
        )));
    }
    let existed = dest.exists();
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    let result = write_all(repo, manifest, state, dest, partial, progress, started);
    if result.is_err() {
        // Nothing half-restored is left behind.
        if existed {
            if let Ok(items) = fs::read_dir(dest) {
                for item in items.flatten() {
                    let p = item.path();
                    let _ = if p.is_dir() && !p.is_symlink() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                }
            }
        } else {
            let _ = fs::remove_dir_all(dest);
        }
    }
    result
}

fn write_all(
    repo: &Repo,
    manifest: &Manifest,
    state: &State,
    dest: &Path,
    partial: bool,
    progress: &dyn Progress,
    started: Instant,
) -> Result<RestoreReport, BackupError> {
    let mut report = RestoreReport {
        id: manifest.id.clone(),
        created_at: manifest.created_at.clone(),
        target: dest.display().to_string(),
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes: 0,
        damaged: Vec::new(),
        duration_ms: 0,
    };
    let total: u64 = state
        .values()
        .map(|n| match n {
            Node::File { size, .. } => *size,
            _ => 0,
        })
        .sum();
    let reader = Reader::new(repo)?;
    progress.start("restoring", total);
    // Parents sort before children; symlinks are made last, so nothing is
    // ever written through one (and `check_state` refused paths under them).
    let mut files = Vec::new();
    for (path, node) in state {
        match node {
            Node::Dir { .. } => {
                let target = dest.join(path);
                fs::create_dir(&target).map_err(io_err(&target))?;
                report.dirs += 1;
            }
            Node::File { .. } => files.push((path, node)),
            Node::Symlink { .. } => {}
        }
    }
    let files = spread(files);
    // File contents, one worker per core.
    let next = AtomicUsize::new(0);
    let outcome = Mutex::new(Tally::default());
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(files.len().max(1)) {
            scope.spawn(|| {
                let mut open = Open::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, node)) = files.get(i) else {
                        break;
                    };
                    if outcome.lock().map_or(true, |o| o.failure.is_some()) {
                        break;
                    }
                    let result =
                        write_file(&reader, &mut open, &dest.join(path), node, mode_cap(path));
                    let Ok(mut o) = outcome.lock() else { break };
                    match result {
                        Ok(None) => {
                            o.files += 1;
                            if let Node::File { size, .. } = node {
                                o.bytes += size;
                                progress.advance(*size);
                            }
                        }
                        Ok(Some(why)) => o.damaged.push(((*path).clone(), why)),
                        Err(e) => {
                            o.failure.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    let tally = outcome.into_inner().unwrap_or_default();
    if let Some(e) = tally.failure {
        return Err(e);
    }
    report.files = tally.files;
    report.bytes = tally.bytes;
    report.damaged = tally.damaged;
    report.damaged.sort();
    for (path, node) in state {
        if let Node::Symlink { target } = node {
            let link = dest.join(path);
            std::os::unix::fs::symlink(target, &link).map_err(io_err(&link))?;
            report.symlinks += 1;
        }
    }
    // Directory modes last, deepest first (a read-only directory would
    // refuse its own children).
    for (path, node) in state.iter().rev() {
        if let Node::Dir { mode } = node {
            let dir = dest.join(path);
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode & mode_cap(path)))
                .map_err(io_err(&dir))?;
        }
    }
    progress.finish();
    report.duration_ms = millis(started.elapsed());
    if !report.damaged.is_empty() && !partial {
        return Err(BackupError::Damaged {
            id: manifest.id.clone(),
            files: report.damaged,
        });
    }
    Ok(report)
}

/// Orders files so that the next few come from different directories:
/// workers creating files in one directory wait on its lock in turn.
fn spread<'a>(files: Vec<(&'a String, &'a Node)>) -> Vec<(&'a String, &'a Node)> {
    let mut by_dir: std::collections::BTreeMap<&str, std::collections::VecDeque<_>> =
        std::collections::BTreeMap::new();
    for (path, node) in files {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        by_dir.entry(dir).or_default().push_back((path, node));
    }
    let mut out = Vec::new();
    while !by_dir.is_empty() {
        by_dir.retain(|_, queue| {
            if let Some(file) = queue.pop_front() {
                out.push(file);
            }
            !queue.is_empty()
        });
    }
    out
}

/// What the file workers did.
#[derive(Default)]
struct Tally {
    files: u64,
    bytes: u64,
    damaged: Vec<(String, String)>,
    failure: Option<BackupError>,
}

/// Writes one file from its blobs, its mode within `cap`; `Ok(Some(why))`
/// when a blob is damaged or missing (the partial file is removed).
fn write_file(
    reader: &Reader<'_>,
    open: &mut Open,
    target: &Path,
    node: &Node,
    cap: u32,
) -> Result<Option<String>, BackupError> {
    let Node::File { mode, mtime_ns, .. } = node else {
        return Ok(None);
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(io_err(target))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    match reader.read_file(node, &mut out, open) {
        Ok(()) => {
            let file = out
                .into_inner()
                .map_err(|e| io_err(target)(e.into_error()))?;
            file.set_permissions(fs::Permissions::from_mode(mode & cap))
                .map_err(io_err(target))?;
            set_mtime(&file, *mtime_ns);
            Ok(None)
        }
        Err(ObjectError::Damaged(why)) => {
            drop(out);
            let _ = fs::remove_file(target);
            Ok(Some(why))
        }
        Err(ObjectError::Write(e)) => Err(io_err(target)(e)),
    }
}

/// Restores a backup into an empty directory.
///
/// # Errors
/// [`BackupError`]: unknown id, damaged backup, non-empty target, I/O.
pub fn restore_to(
    repo: &Repo,
    catalog: &Catalog,
    id: &str,
    dest: &Path,
    partial: bool,
    progress: &dyn Progress,
) -> Result<RestoreReport, BackupError> {
    let _lock = repo.lock(false)?;
    let manifest = catalog.find(id)?;
    let state = catalog.state(&manifest.id)?;
    write_state(repo, manifest, &state, dest, partial, progress)
}

/// Re-reads every restored file and compares it with the state.
///
/// # Errors
/// The list of differences.
pub(crate) fn check_copy(state: &State, dir: &Path) -> Result<(), Vec<(String, String)>> {
    let mut problems = Vec::new();
    for (path, node) in state {
        let p = dir.join(path);
        let ok = match node {
            Node::File { size, blake3, .. } => match hash_file(&p) {
                Ok((h, n)) if &h == blake3 && n == *size => Ok(()),
                Ok(_) => Err("content differs from the backup".to_owned()),
                Err(e) => Err(e.to_string()),
            },
            Node::Dir { .. } => {
                if p.is_dir() && !p.is_symlink() {
                    Ok(())
                } else {
                    Err("not a directory".into())
                }
            }
            Node::Symlink { target } => match fs::read_link(&p) {
                Ok(t) if t.as_os_str() == target.as_str() => Ok(()),
                _ => Err("symlink differs".into()),
            },
        };
        if let Err(why) = ok {
            problems.push((path.clone(), why));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

pub(super) fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), n_total))
}

/// What an in-place restore did.
#[derive(Debug, Clone, Serialize)]
pub struct InPlace {
    pub restore: RestoreReport,
    /// Where the replaced state was kept.
    pub replaced_kept_in: String,
    /// The backup paths swapped in.
    pub swapped: Vec<String>,
}

/// Where a backup path lives now: an agent inbox at its configured
/// workspace, anything else under the root.
fn live_path(scope: &Scope, rel: &str) -> PathBuf {
    if let Some(rest) = rel.strip_prefix("agent_workspaces/")
        && let Some((id, tail)) = rest.split_once('/')
        && tail == "inbox"
        && let Some((_, inbox)) = scope.inboxes.iter().find(|(agent, _)| agent == id)
    {
        return inbox.clone();
    }
    scope.root.join(rel)
}

fn move_path(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    fs::rename(from, to).map_err(io_err(from))
}

/// Restores a backup over the live state: into a staging directory under
/// the root first, verified, then swapped in path by path, the replaced
/// state kept in `.acp-replaced-<time>/`. The caller makes sure the
/// service is stopped.
///
/// # Errors
/// [`BackupError`]; nothing live is touched unless the staged copy
/// verified.
pub fn restore_in_place(
    scope: &Scope,
    repo: &Repo,
    catalog: &Catalog,
    id: &str,
    progress: &dyn Progress,
) -> Result<InPlace, BackupError> {
    let _lock = repo.lock(false)?;
    let manifest = catalog.find(id)?;
    let state = catalog.state(&manifest.id)?;
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let staging = scope.root.join(format!(".acp-restore-{stamp}"));
    let mut report = write_state(repo, manifest, &state, &staging, false, progress)?;
    if let Err(problems) = check_copy(&state, &staging) {
        let _ = fs::remove_dir_all(&staging);
        return Err(BackupError::Damaged {
            id: manifest.id.clone(),
            files: problems,
        });
    }
    report.target = scope.root.display().to_string();
    let aside = scope.root.join(format!(".acp-replaced-{stamp}"));
    let excluder = Excluder::new(scope);
    fs::create_dir_all(&aside).map_err(io_err(&aside))?;
    let mut swapped = Vec::new();
    for rel in &manifest.sources {
        let live = live_path(scope, rel);
        if fs::symlink_metadata(&live).is_ok() {
            move_path(&live, &aside.join(rel))?;
        }
        if rel == STORE_PATH {
            // The old store's WAL must never meet the restored store.
            for suffix in ["-wal", "-shm", "-journal"] {
                let side = PathBuf::from(format!("{}{suffix}", live.display()));
                if side.exists() {
                    move_path(&side, &aside.join(format!("{rel}{suffix}")))?;
                }
            }
        }
        let staged = staging.join(rel);
        if fs::symlink_metadata(&staged).is_ok() {
            move_path(&staged, &live)?;
        }
        // What backups leave out (.env, backup.exclude) was never in the
        // backup: it goes back where it was, not into the kept state.
        keep_excluded(&excluder, &aside.join(rel), rel, &live)?;
        swapped.push(rel.clone());
    }
    let _ = fs::remove_dir_all(&staging);
    // The live directories around what was swapped in (`data/` holds the
    // store but is not itself in a backup) become as private as `acp init`
    // makes them.
    for rel in ["config", "data", "devlogs", "backups", "agent_workspaces"] {
        let dir = scope.root.join(rel);
        if let Ok(meta) = fs::symlink_metadata(&dir)
            && meta.is_dir()
        {
            let mode = meta.permissions().mode() & mode_cap(rel);
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(io_err(&dir))?;
        }
    }
    Ok(InPlace {
        restore: report,
        replaced_kept_in: aside.display().to_string(),
        swapped,
    })
}

/// Moves the excluded paths under `old` (the replaced copy of backup path
/// `rel`) back to the same place under `live`.
fn keep_excluded(
    excluder: &Excluder,
    old: &Path,
    rel: &str,
    live: &Path,
) -> Result<(), BackupError> {
    let Ok(meta) = fs::symlink_metadata(old) else {
        return Ok(());
    };
    if excluder.skips(rel, live) {
        if fs::symlink_metadata(live).is_err() {
            move_path(old, live)?;
        }
        return Ok(());
    }
    if meta.is_dir() {
        let names: Vec<_> = fs::read_dir(old)
            .map_err(io_err(old))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        for name in names {
            let Some(text) = name.to_str() else { continue };
            keep_excluded(
                excluder,
                &old.join(&name),
                &format!("{rel}/{text}"),
                &live.join(&name),
            )?;
        }
    }
    Ok(())
}
