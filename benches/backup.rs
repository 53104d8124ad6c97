//! Backup benchmark against restic (Debian's package), in one run:
//!
//! 1. the same generated 1 GiB tree for every tool (the files the
//!    incremental rewrites get their first content back before each
//!    round): full backup, incremental after changing 1% of the files,
//!    restore, repository size (as `ls -l` adds it up and as `du` counts
//!    the disk blocks). Also a plain `tar | zstd` for context.
//! 2. a store of about 120 MB in acp's schema and hours of traffic
//!    ([`backup_store`]): what an hourly incremental stores, and the chunk
//!    sizes measured against each other.
//!
//! Prints markdown tables (copied into BENCHMARKS.md).
//!
//! Run: `make bench-backup` (installs restic when missing). Set
//! `ACP_BENCH_TREE_MIB` for another tree size, `ACP_BENCH_STORE_MB` for
//! another store size.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    reason = "sizes and times converted for display; main reads as one run"
)]

mod backup_store;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use acp::backup::{self, Catalog, Kind, Quiet, Repo};
use acp::config::{Config, Env};

const MIB: f64 = 1_048_576.0;

/// Incompressible bytes.
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

/// Text-like bytes (compress about 4:1).
fn text(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "agent", "message", "deliver", "inbox", "the", "swarm", "commit", "test", "fn", "let", "{",
        "}", "\n",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[usize::try_from(x % 13).unwrap_or(0)].as_bytes());
        out.push(b' ');
        if x.is_multiple_of(7) {
            out.extend_from_slice(&x.to_le_bytes()[..3]);
        }
    }
    out.truncate(len);
    out
}

/// A tree of about `mib` MiB: many small files, some medium, a few large;
/// half text, half incompressible. Returns the file paths, sorted.
fn generate(dir: &Path, mib: usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let scale = mib as f64 / 1024.0;
    let count = |n: f64| (n * scale).round().max(1.0) as usize;
    let mut seed = 1u64;
    let mut write = |rel: String, len: usize, files: &mut Vec<PathBuf>| {
        seed += 1;
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes = if seed.is_multiple_of(2) {
            text(len, seed)
        } else {
            noise(len, seed)
        };
        fs::write(&path, bytes).unwrap();
        files.push(path);
    };
    for i in 0..count(8000.0) {
        write(
            format!("src/m{:02}/f{i:05}.rs", i % 80),
            4096 + (i * 797) % 28_000,
            &mut files,
        );
    }
    for i in 0..count(200.0) {
        write(format!("assets/a{i:03}.bin"), 2 << 20, &mut files);
    }
    for i in 0..count(5.0) {
        write(format!("data/big{i}.dat"), 100 << 20, &mut files);
    }
    files.sort();
    files
}

/// A directory's size: the files' lengths added up (as `ls -l` shows
/// them), and the disk blocks they take (as `du` counts them).
fn sizes(path: &Path) -> (u64, u64) {
    let (mut apparent, mut blocks) = (0, 0);
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                apparent += m.len();
                blocks += m.blocks() * 512;
            }
        }
    }
    (apparent, blocks)
}

fn du(path: &Path) -> u64 {
    sizes(path).0
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn restic(repo: &Path) -> Command {
    let mut cmd = Command::new("restic");
    cmd.arg("--repo")
        .arg(repo)
        .arg("--quiet")
        .env("RESTIC_PASSWORD", "bench")
        .env("RESTIC_CACHE_DIR", repo.with_extension("cache"));
    cmd
}

struct Row {
    tool: &'static str,
    full: Duration,
    incremental: Duration,
    restore: Duration,
    size: u64,
    on_disk: u64,
}

#[derive(Clone, Copy)]
enum Tool {
    Restic,
    Acp,
    AcpEncrypted,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Self::Restic => "restic",
            Self::Acp => "acp",
            Self::AcpEncrypted => "acp (age-encrypted)",
        }
    }
}

/// Flushes dirty pages, so one step's writes are not paid by the next.
fn settle() {
    run(&mut Command::new("sync"));
}

/// Gives the 1% their first content back, so every round starts from the
/// same tree. (Without this, each tool backed up the tree as the round
/// before it had left it: the tool after restic found a changed file of
/// 100 MiB of text turned into noise, and its repository looked 9%
/// larger than restic's for it.)
fn reset(originals: &[(PathBuf, Vec<u8>)]) {
    for (path, bytes) in originals {
        fs::write(path, bytes).unwrap();
    }
}

/// Rewrites the 1% with new content.
fn change(files: &[PathBuf], seed: u64) {
    for (i, f) in files.iter().enumerate() {
        let len = fs::metadata(f).unwrap().len();
        fs::write(f, noise(usize::try_from(len).unwrap(), seed + i as u64)).unwrap();
    }
}

/// One tool: full backup into a fresh repository, incremental after
/// changing 1%, restore of the latest into a fresh directory.
fn round(
    tool: Tool,
    root: &Path,
    originals: &[(PathBuf, Vec<u8>)],
    scratch: &Path,
    seed: u64,
    key: &str,
) -> Row {
    let changed: Vec<PathBuf> = originals.iter().map(|(p, _)| p.clone()).collect();
    reset(originals);
    let repo_dir = scratch.join(format!("repo-{seed}"));
    let dest = scratch.join(format!("restore-{seed}"));
    let tree = root.join("tree");
    let mut env = Env::new();
    env.insert(
        "ACP_BACKUP_REPOSITORY".into(),
        repo_dir.display().to_string(),
    );
    if matches!(tool, Tool::AcpEncrypted) {
        env.insert("ACP_BACKUP_KEY".into(), key.into());
    }
    let config = Config::load(root, &env).unwrap();
    let scope = acp::app::backup_scope(&config);
    let backup_once = |kind: Kind| match tool {
        Tool::Restic => run(restic(&repo_dir).arg("backup").arg(&tree)),
        Tool::Acp | Tool::AcpEncrypted => {
            backup::create(&scope, kind, &Quiet).unwrap();
        }
    };
    if matches!(tool, Tool::Restic) {
        run(restic(&repo_dir).arg("init"));
    }
    settle();
    let full = timed(|| backup_once(Kind::Full));
    change(&changed, seed);
    settle();
    let incremental = timed(|| backup_once(Kind::Incremental));
    settle();
    let restore = timed(|| match tool {
        Tool::Restic => run(restic(&repo_dir)
            .args(["restore", "latest", "--target"])
            .arg(&dest)),
        Tool::Acp | Tool::AcpEncrypted => {
            let repo = Repo::open(&config.backup).unwrap();
            let catalog = Catalog::read(&repo).unwrap();
            backup::restore_to(&repo, &catalog, "latest", &dest, false, &Quiet).unwrap();
        }
    });
    let (size, on_disk) = sizes(&repo_dir);
    let _ = fs::remove_dir_all(&dest);
    let _ = fs::remove_dir_all(&repo_dir);
    let _ = fs::remove_dir_all(repo_dir.with_extension("cache"));
    Row {
        tool: tool.name(),
        full,
        incremental,
        restore,
        size,
        on_disk,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Repetitions of each tool's round, interleaved; medians are reported.
const REPEATS: u64 = 3;

fn main() {
    if Command::new("restic").arg("version").output().is_err() {
        eprintln!("restic is not installed: run `make bench-backup`, which installs it");
        std::process::exit(2);
    }
    let mib: usize = std::env::var("ACP_BENCH_TREE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let scratch =
        tempfile::tempdir_in(std::env::var("ACP_BENCH_DIR").unwrap_or_else(|_| "target".into()))
            .unwrap();
    let root = scratch.path().join("root");
    acp::app::init(&root, 2).unwrap();
    let cfg = root.join("config/acp.toml");
    let text =
        fs::read_to_string(&cfg)
            .unwrap()
            .replacen("include = []", "include = [\"tree\"]", 1);
    fs::write(&cfg, text).unwrap();
    let tree = root.join("tree");
    let start = Instant::now();
    let files = generate(&tree, mib);
    let bytes = du(&tree);
    eprintln!(
        "generated {} files, {:.0} MiB in {:.1?}",
        files.len(),
        bytes as f64 / MIB,
        start.elapsed()
    );
    // 1% of the files, spread over every size class.
    let changed: Vec<PathBuf> = files.iter().step_by(100).cloned().collect();
    let changed_bytes: u64 = changed.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    let originals: Vec<(PathBuf, Vec<u8>)> = changed
        .iter()
        .map(|f| (f.clone(), fs::read(f).unwrap()))
        .collect();

    let (key, _) = backup::Cipher::generate();
    let tools = [Tool::Restic, Tool::Acp, Tool::AcpEncrypted];
    let mut all: Vec<Vec<Row>> = tools.iter().map(|_| Vec::new()).collect();
    for rep in 0..REPEATS {
        for (t, tool) in tools.iter().enumerate() {
            let seed = 1_000_000 * (rep + 1) + 100_000 * t as u64;
            all[t].push(round(*tool, &root, &originals, scratch.path(), seed, &key));
        }
    }
    let rows: Vec<Row> = all
        .into_iter()
        .map(|runs| Row {
            tool: runs[0].tool,
            full: median(runs.iter().map(|r| r.full).collect()),
            incremental: median(runs.iter().map(|r| r.incremental).collect()),
            restore: median(runs.iter().map(|r| r.restore).collect()),
            size: runs[0].size,
            on_disk: runs[0].on_disk,
        })
        .collect();
    reset(&originals);

    settle();
    let tarball = scratch.path().join("tree.tar.zst");
    let tar = timed(|| {
        run(Command::new("sh").arg("-c").arg(format!(
            "tar -C {} -cf - tree | zstd -q -3 -T0 -o {}",
            root.display(),
            tarball.display()
        )));
    });

    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "Tree: {} files, {:.0} MiB (half text, half incompressible); incremental after rewriting {} files ({:.0} MiB). Medians of {REPEATS} interleaved runs; `sync` before each timed step; warm page cache.\n",
        files.len(),
        bytes as f64 / MIB,
        changed.len(),
        changed_bytes as f64 / MIB
    );
    println!(
        "| tool | full backup | incremental (1% changed) | restore | repository | on disk (du) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.1} MiB | {:.1} MiB |",
            r.tool,
            secs(r.full),
            secs(r.incremental),
            secs(r.restore),
            r.size as f64 / MIB,
            r.on_disk as f64 / MIB
        );
    }
    println!(
        "| tar \\| zstd -3 -T0 (full only) | {:.2} s | - | - | {:.0} MiB |",
        secs(tar),
        fs::metadata(&tarball).unwrap().len() as f64 / MIB
    );
    let restic = &rows[0];
    println!("\n| acp / restic | full | incremental | restore | size | on disk |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &rows[1..] {
        println!(
            "| {} | {:.2}× | {:.2}× | {:.2}× | {:.3}× | {:.3}× |",
            r.tool,
            secs(r.full) / secs(restic.full),
            secs(r.incremental) / secs(restic.incremental),
            secs(r.restore) / secs(restic.restore),
            r.size as f64 / restic.size as f64,
            r.on_disk as f64 / restic.on_disk as f64
        );
    }
    println!("\n(ratios under 1 mean acp is faster or smaller)\n");
    backup_store::run_all(scratch.path(), &key);
}
