// Over 400 lines: each test is one backup story from set-up to the user's checks.

//! Backups on real files: round trips through every kind and point in
//! time, SIGKILL mid-backup, flipped bytes, crafted archives, backups under
//! load, in-place restores, retention and the doctor.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Root, stderr, stdout, wait_until};

/// What a path holds, as a user would compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    File { mode: u32, hash: String, len: u64 },
    Dir { mode: u32 },
    Link(PathBuf),
}

/// Every path under `rels` of `root` (the backup's view of a tree).
pub(crate) fn tree(root: &Path, rels: &[&str]) -> BTreeMap<String, Item> {
    fn walk(base: &Path, rel: &str, out: &mut BTreeMap<String, Item>) {
        let path = base.join(rel);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if meta.file_type().is_symlink() {
            out.insert(rel.into(), Item::Link(fs::read_link(&path).unwrap()));
        } else if meta.is_dir() {
            out.insert(rel.into(), Item::Dir { mode });
            for e in fs::read_dir(&path).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                walk(base, &format!("{rel}/{name}"), out);
            }
        } else {
            let bytes = fs::read(&path).unwrap();
            out.insert(
                rel.into(),
                Item::File {
                    mode,
                    hash: blake3::hash(&bytes).to_hex().to_string(),
                    len: bytes.len() as u64,
                },
            );
        }
    }
    let mut out = BTreeMap::new();
    for rel in rels {
        walk(root, rel, &mut out);
    }
    out
}

/// Incompressible bytes (xorshift), so compression cannot hide work.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
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

pub(crate) fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn create(root: &Root, kind: &str) -> Value {
    json(&root.run(&["backup", "create", "--kind", kind, "--json"]))["backup"].clone()
}

pub(crate) fn restore(root: &Root, args: &[&str], to: &Path) -> Output {
    let mut all = vec!["backup", "restore"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--to", to.to_str().unwrap()]);
    root.run(&all)
}

/// A moment after the backup just taken and before the next one: backups
/// record their time to the millisecond, so the clock is let run into the
/// next millisecond before anything else happens.
fn moment_after() -> jiff::Timestamp {
    let t = jiff::Timestamp::now();
    while jiff::Timestamp::now().as_millisecond() <= t.as_millisecond() {
        std::hint::spin_loop();
    }
    t
}

/// A root whose backups include `notes/`.
pub(crate) fn root_with_notes() -> Root {
    let root = Root::new(2);
    root.edit_config("include = []", "include = [\"notes\"]");
    fs::create_dir_all(root.path().join("notes")).unwrap();
    root
}

const VIEW: &[&str] = &["config", "devlogs", "notes", "agent_workspaces"];

#[test]
fn every_kind_and_every_point_in_time_restores_byte_for_byte() {
    let root = root_with_notes();
    let notes = root.path().join("notes");
    let at = |rel: &str| notes.join(rel);
    fs::create_dir_all(at("ünïcödé/文件")).unwrap();
    fs::create_dir_all(at("empty-dir")).unwrap();
    fs::write(at("ünïcödé/文件/説明.txt"), "naïve café ☕").unwrap();
    fs::write(at("empty.txt"), "").unwrap();
    fs::write(at("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(at("script.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(at("secret.txt"), "only me").unwrap();
    fs::set_permissions(at("secret.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::create_dir(at("private")).unwrap();
    fs::set_permissions(at("private"), fs::Permissions::from_mode(0o700)).unwrap();
    let big = noise(100 << 20, 7);
    fs::write(at("big.bin"), &big).unwrap();
    symlink("ünïcödé/文件/説明.txt", at("link-rel")).unwrap();
    symlink("/etc/hostname", at("link-abs")).unwrap();
    symlink("nowhere", at("dangling")).unwrap();
    fs::write(at(".env"), "TOKEN=never-backed-up").unwrap();
    fs::write(root.path().join(".env"), "DISCORD_TOKEN=secret").unwrap();
    let out = root.run(&["send", "--to", "Agent-1", "first message"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let without_env = |mut t: BTreeMap<String, Item>| {
        t.remove("notes/.env");
        t
    };
    let mut expected = Vec::new();
    let mut after = Vec::new();
    let mut backups = Vec::new();
    let mut step = |kind: &str, backups: &mut Vec<Value>| {
        let b = create(&root, kind);
        expected.push(without_env(tree(root.path(), VIEW)));
        after.push(moment_after());
        backups.push(b);
    };

    step("full", &mut backups);
    assert_eq!(backups[0]["kind"], "full");
    // Change: content, mode, a new file.
    fs::write(at("secret.txt"), "changed").unwrap();
    fs::set_permissions(at("script.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::create_dir(at("new")).unwrap();
    fs::write(at("new/a.txt"), "a").unwrap();
    step("incremental", &mut backups);
    // The 100 MB file did not change, so it was not read again.
    let stats = &backups[1]["stats"];
    assert!(
        stats["changed_bytes"].as_u64().unwrap() < 1 << 20,
        "an incremental backup re-read unchanged data: {stats}"
    );
    assert_eq!(backups[1]["parent"], backups[0]["id"]);
    // Change again, then a differential (against the full).
    fs::write(at("empty.txt"), "not empty any more").unwrap();
    fs::write(root.path().join("devlogs/day-1.md"), "# Day 1").unwrap();
    step("differential", &mut backups);
    assert_eq!(backups[2]["parent"], backups[0]["id"]);
    // Delete: a whole subtree, a file, a symlink.
    fs::remove_dir_all(at("ünïcödé")).unwrap();
    fs::remove_file(at("new/a.txt")).unwrap();
    fs::remove_file(at("link-rel")).unwrap();
    step("incremental", &mut backups);
    assert_eq!(backups[3]["parent"], backups[2]["id"]);
    assert!(backups[3]["deleted"].as_u64().unwrap() >= 3);

    let scratch = tempfile::tempdir().unwrap();
    for (i, b) in backups.iter().enumerate() {
        let id = b["id"].as_str().unwrap();
        // By id, and by a point in time after it (before the next one).
        let at_time = after[i].to_string();
        for (n, args) in [vec![id], vec!["--at", at_time.as_str()]]
            .iter()
            .enumerate()
        {
            let dest = scratch.path().join(format!("{i}-{n}"));
            let out = restore(&root, args, &dest);
            assert!(out.status.success(), "restore {args:?}: {}", stderr(&out));
            assert_eq!(
                tree(&dest, VIEW),
                expected[i],
                "backup {i} ({}) restored by {args:?} differs",
                b["kind"]
            );
            assert!(!dest.join(".env").exists() && !dest.join("notes/.env").exists());
            let db = rusqlite::Connection::open(dest.join("data/acp.db")).unwrap();
            let check: String = db
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
            let messages: i64 = db
                .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
                .unwrap();
            assert_eq!(messages, 1);
        }
    }
    // The big file, literally byte for byte, from the last backup.
    assert_eq!(
        fs::read(scratch.path().join("3-0/notes/big.bin")).unwrap(),
        big
    );

    // Before the first backup there is nothing to restore; into a
    // non-empty directory nothing is restored either.
    let out = restore(
        &root,
        &["--at", "2001-01-01T00:00:00Z"],
        &scratch.path().join("x"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no backup was taken at or before"));
    let out = restore(&root, &["latest"], &scratch.path().join("0-0"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let file = scratch.path().join("0-0/notes/empty.txt");
    let out = restore(&root, &["latest"], &file);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );

    let verify = root.run(&["backup", "verify", "--all"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    let list = json(&root.run(&["backup", "list", "--json"]));
    assert_eq!(list["backups"].as_array().unwrap().len(), 4);
}

/// The repository's files (objects, manifests, marker).
pub(crate) fn repo_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if fs::metadata(&p).unwrap().len() > 0 {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_flipped_byte_anywhere_is_found_and_a_damaged_backup_is_refused() {
    let root = root_with_notes();
    let notes = root.path().join("notes");
    for i in 0..5 {
        fs::write(
            notes.join(format!("f{i}.txt")),
            format!("file {i}").repeat(100),
        )
        .unwrap();
    }
    root.run(&["send", "--to", "Agent-2", "hello"]);
    create(&root, "full");
    fs::write(notes.join("f1.txt"), "changed").unwrap();
    create(&root, "incremental");
    let repo = root.path().join("backups");
    let files = repo_files(&repo);
    // The marker, two manifests, and each backup's pack.
    assert!(files.len() >= 5, "{files:?}");

    // One random bit in every file; and in one blob of a pack, a bit of
    // each byte of the zstd frame header (where decoders ignore some bits)
    // and of the seal at its end, and of the pack's table.
    let mut seed = 12345u64;
    let mut flips = Vec::new();
    for file in &files {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        flips.push((file, seed >> 33, seed % 8));
    }
    let pack = files
        .iter()
        .find(|f| f.starts_with(repo.join("packs")))
        .unwrap();
    let blob = &pack_table(pack)[0];
    let (start, end) = (blob.offset, blob.offset + blob.stored);
    let len = fs::metadata(pack).unwrap().len();
    let table = len - 8 - 40 * pack_table(pack).len() as u64 - 8;
    for pos in (start..start + 16).chain(end - 40..end).chain(table..len) {
        for bit in [pos % 8, 4] {
            flips.push((pack, pos, bit));
        }
    }
    for (file, pos, bit) in flips {
        let original = fs::read(file).unwrap();
        let pos = usize::try_from(pos).unwrap() % original.len();
        let mut damaged = original.clone();
        damaged[pos] ^= 1 << bit;
        fs::write(file, &damaged).unwrap();
        let out = root.run(&["backup", "verify", "--all"]);
        assert_ne!(
            out.status.code(),
            Some(0),
            "a flipped bit {bit} at byte {pos} of {} went unnoticed:\n{}",
            file.display(),
            stdout(&out)
        );
        fs::write(file, &original).unwrap();
    }
    assert!(root.run(&["backup", "verify", "--all"]).status.success());

    // Damage one file's object: restore refuses, naming the file, and
    // leaves nothing; --partial restores the rest.
    let list = json(&root.run(&["backup", "list", "--json"]));
    let latest = list["backups"][1]["id"].as_str().unwrap().to_owned();
    let f3 = blake3::hash(format!("file {}", 3).repeat(100).as_bytes())
        .to_hex()
        .to_string();
    let (pack, blob) = find_blob(&repo, &f3).unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    let mid = usize::try_from(blob.offset + blob.stored / 2).unwrap();
    bytes[mid] ^= 0xff;
    fs::write(&pack, bytes).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("r");
    let out = restore(&root, &[&latest], &dest);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("notes/f3.txt"), "{}", stderr(&out));
    assert!(!dest.exists(), "a refused restore leaves nothing behind");
    let out = restore(&root, &[&latest, "--partial"], &dest);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("NOT RESTORED notes/f3.txt"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        fs::read_to_string(dest.join("notes/f1.txt")).unwrap(),
        "changed"
    );
    assert!(!dest.join("notes/f3.txt").exists());
    let verify = json(
        &root
            .run(&["backup", "verify", "--all", "--json"])
            .tap_ok_or_exit1(),
    );
    assert_eq!(verify["ok"], false);
}

/// One blob of a pack, as its table says (the layout docs/backups.md
/// documents).
#[derive(Debug, Clone)]
pub(crate) struct PackBlob {
    pub name: String,
    pub offset: u64,
    pub stored: u64,
}

/// A pack's table, read as a person would with the documented layout.
pub(crate) fn pack_table(pack: &Path) -> Vec<PackBlob> {
    let bytes = fs::read(pack).unwrap();
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
    let end = bytes.len();
    assert_eq!(
        &bytes[end - 4..],
        b"ACPK",
        "{} is not a pack",
        pack.display()
    );
    let count = usize::try_from(u32_at(end - 8)).unwrap();
    let entries = end - 8 - 40 * count;
    assert_eq!(
        &bytes[entries - 8..entries - 4],
        &0x184D_2A5F_u32.to_le_bytes()
    );
    let mut offset = 0;
    (0..count)
        .map(|i| {
            let at = entries + 40 * i;
            let blob = PackBlob {
                name: blake3::Hash::from_bytes(bytes[at..at + 32].try_into().unwrap())
                    .to_hex()
                    .to_string(),
                offset,
                stored: u32_at(at + 32),
            };
            offset += blob.stored;
            blob
        })
        .collect()
}

/// Every pack of a repository.
pub(crate) fn packs(repo: &Path) -> Vec<PathBuf> {
    repo_files(&repo.join("packs"))
}

/// The pack holding the blob with this name, and where in it.
pub(crate) fn find_blob(repo: &Path, name: &str) -> Option<(PathBuf, PackBlob)> {
    packs(repo).into_iter().find_map(|p| {
        pack_table(&p)
            .into_iter()
            .find(|b| b.name == name)
            .map(|b| (p, b))
    })
}

/// `verify` exits 1 on damage; its JSON is still wanted.
trait ExitOne {
    fn tap_ok_or_exit1(self) -> Output;
}
impl ExitOne for Output {
    fn tap_ok_or_exit1(mut self) -> Output {
        assert_eq!(self.status.code(), Some(1), "{}", stderr(&self));
        self.status = std::process::Command::new("true").status().unwrap();
        self
    }
}

/// Writes a manifest as acp would (named by its own hash) and returns its id.
fn plant(repo: &Path, entries: &Value) -> String {
    let id = "01M8AAAAAAAAAAAAAAAAAAAAAA".to_owned();
    let manifest = serde_json::json!({
        "format": "acp-backup/1", "id": id, "kind": "full", "parent": null,
        "created_at": "2026-11-25T00:00:00Z", "acp_version": "0.1.0",
        "sources": ["notes"], "entries": entries, "deleted": [],
        "stats": {"total_files": 0, "total_bytes": 0, "changed_files": 0, "changed_bytes": 0,
                  "new_objects": 0, "stored_bytes": 0, "deleted": 0, "duration_ms": 0}
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let hash = blake3::hash(&bytes).to_hex().to_string();
    for e in fs::read_dir(repo.join("snapshots")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_str().unwrap().starts_with(&id) {
            fs::remove_file(p).unwrap();
        }
    }
    fs::write(
        repo.join("snapshots").join(format!("{id}.{hash}.json")),
        bytes,
    )
    .unwrap();
    id
}

#[test]
fn crafted_backups_cannot_write_outside_the_target() {
    let root = root_with_notes();
    fs::write(root.path().join("notes/x.txt"), "payload").unwrap();
    create(&root, "full");
    let repo = root.path().join("backups");
    let payload = blake3::hash(b"payload").to_hex().to_string();
    let file = |path: &str| serde_json::json!({"path": path, "type": "file", "size": 7, "mode": 420, "mtime_ns": 0, "blake3": payload});
    let dir = |path: &str| serde_json::json!({"path": path, "type": "dir", "mode": 493});
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().to_str().unwrap().to_owned();
    let cases = [
        (
            "path traversal",
            serde_json::json!([dir("notes"), file("notes/../../escaped.txt")]),
        ),
        (
            "absolute path",
            serde_json::json!([file(&format!("{outside_path}/abs.txt"))]),
        ),
        (
            "symlink escape",
            serde_json::json!([dir("notes"), {"path": "notes/link", "type": "symlink", "target": outside_path}, file("notes/link/pwned.txt")]),
        ),
        (
            "file without its directory",
            serde_json::json!([file("nowhere/x.txt")]),
        ),
    ];
    let scratch = tempfile::tempdir().unwrap();
    for (name, entries) in cases {
        let id = plant(&repo, &entries);
        let dest = scratch.path().join("target");
        let out = restore(&root, &[&id], &dest);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("refused") || text.contains("damaged"),
            "{name}: {text}"
        );
        assert!(!dest.exists(), "{name}: the target was written");
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            0,
            "{name}: wrote outside the target"
        );
        assert!(!scratch.path().join("escaped.txt").exists());
    }
}

/// Where a kill lands, as `acp backup create --progress json` shows it.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// A step starts (scanning, copying the store, syncing, committing).
    Step(&'static str),
    /// The files being stored have reached this percent of their bytes.
    Stored(u64),
}

impl KillAt {
    fn matches(self, line: &Value) -> bool {
        match self {
            Self::Step(phase) => line["event"] == "phase" && line["phase"] == phase,
            Self::Stored(percent) => {
                line["event"] == "progress"
                    && line["phase"] == "backing up"
                    && line["percent"].as_u64().unwrap() >= percent
            }
        }
    }
}

/// Runs `acp backup create` and SIGKILLs it as soon as its progress shows
/// it has reached `at`. Returns whether the kill happened (the backup may
/// have finished first).
fn create_killed_at(root: &Root, kind: &str, at: KillAt) -> bool {
    use std::io::BufRead;
    let mut child = root
        .acp()
        .args(["backup", "create", "--kind", kind, "--progress", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut reached = false;
    for line in lines {
        let line = line.unwrap();
        if serde_json::from_str::<Value>(&line).is_ok_and(|l| at.matches(&l)) {
            reached = true;
            break;
        }
    }
    if reached {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    reached && status.code().is_none()
}

#[test]
fn a_backup_killed_at_any_moment_leaves_the_repository_valid() {
    let root = root_with_notes();
    let notes = root.path().join("notes");
    for d in 0..20 {
        fs::create_dir(notes.join(format!("d{d}"))).unwrap();
        for f in 0..100 {
            fs::write(notes.join(format!("d{d}/f{f}")), noise(2000, d * 1000 + f)).unwrap();
        }
    }
    fs::write(notes.join("big.bin"), noise(40 << 20, 99)).unwrap();
    create(&root, "full");

    // Every phase once, then kills while files are stored, until at least
    // three landed before the commit (or a generous deadline passes).
    let points = [
        KillAt::Step("scanning"),
        KillAt::Step("copying the store"),
        KillAt::Stored(0),
        KillAt::Stored(50),
        KillAt::Step("syncing"),
        KillAt::Step("committing"),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut killed_mid_run = 0;
    let mut round = 0usize;
    while round < points.len() || killed_mid_run < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {killed_mid_run} of {round} kills landed mid-backup"
        );
        let n = u64::try_from(round).unwrap();
        let at = *points.get(round).unwrap_or(&KillAt::Stored(n * 37 % 100));
        // New content each round, so killed runs are writing objects.
        for d in 0..20 {
            fs::write(
                notes.join(format!("d{d}/f{round}")),
                noise(3000, 1_000_000 + n * 100 + d),
            )
            .unwrap();
        }
        fs::write(notes.join("big.bin"), noise(40 << 20, 1000 + n)).unwrap();
        let before = json(&root.run(&["backup", "list", "--json"]))["backups"]
            .as_array()
            .unwrap()
            .len();
        let kind = if n.is_multiple_of(2) {
            "full"
        } else {
            "incremental"
        };
        let killed = create_killed_at(&root, kind, at);
        let after = json(&root.run(&["backup", "list", "--json"]));
        let now = after["backups"].as_array().unwrap().len();
        // Killed: either it committed just before, or it is invisible.
        if killed && now == before {
            killed_mid_run += 1;
        }
        assert!(after["damaged"].as_array().unwrap().is_empty(), "{after}");
        let verify = root.run(&["backup", "verify", "--all"]);
        assert!(
            verify.status.success(),
            "round {round} ({at:?}): {}",
            stdout(&verify)
        );
        round += 1;
    }
    // The next backup completes and restores the live tree exactly.
    create(&root, "incremental");
    let dest = tempfile::tempdir().unwrap();
    let out = restore(&root, &["latest"], &dest.path().join("r"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(&dest.path().join("r"), &["notes"]),
        tree(root.path(), &["notes"])
    );
}

#[test]
fn backups_taken_while_messages_flow_restore_a_consistent_store() {
    let root = Root::new(3);
    root.fast();
    let service = root.service();
    let sender = {
        let path = root.path().to_path_buf();
        std::thread::spawn(move || {
            for i in 0..60 {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
                    .args([
                        "--root",
                        path.to_str().unwrap(),
                        "broadcast",
                        &format!("message {i}"),
                    ])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        })
    };
    // Backups one after another while the sender runs (and at least two,
    // however fast it was); the pause only spaces them out.
    let mut ids = Vec::new();
    let mut during = 0;
    while !sender.is_finished() || ids.len() < 2 {
        if !sender.is_finished() {
            during += 1;
        }
        ids.push(
            create(&root, "incremental")["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        // Pacing, not a wait: spaces the backups out between messages.
        std::thread::sleep(Duration::from_millis(30));
    }
    sender.join().unwrap();
    drop(service);
    assert!(during >= 2, "only {during} backups started during the load");
    let scratch = tempfile::tempdir().unwrap();
    let mut last_count = 0;
    for (i, id) in ids.iter().enumerate() {
        let dest = scratch.path().join(i.to_string());
        let out = restore(&root, &[id], &dest);
        assert!(out.status.success(), "{}", stderr(&out));
        let db = rusqlite::Connection::open(dest.join("data/acp.db")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // Every stored message has its three deliveries: never half a commit.
        let messages: i64 = db
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        let deliveries: i64 = db
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(deliveries, messages * 3, "backup {i}");
        assert!(messages >= last_count, "backups go forward in time");
        last_count = messages;
        // The restored directory is a working root.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
            .args(["--root", dest.to_str().unwrap(), "status", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_in_place_restore_swaps_only_after_verifying_and_keeps_the_replaced_state() {
    let root = Root::new(2);
    root.fast();
    fs::write(root.path().join("devlogs/keep.md"), "before").unwrap();
    let out = root.run(&["send", "--to", "Agent-1", "before the backup"]);
    assert!(out.status.success());
    let backup = create(&root, "full");
    let expected = tree(root.path(), &["config", "devlogs", "agent_workspaces"]);

    // Later work, then a mistake to undo.
    fs::write(
        root.path().join("devlogs/keep.md"),
        "overwritten by mistake",
    )
    .unwrap();
    fs::write(root.path().join("devlogs/later.md"), "after").unwrap();
    let out = root.run(&["send", "--to", "Agent-2", "after the backup"]);
    assert!(out.status.success());
    // A secret backups never hold stays where it is.
    fs::write(root.path().join("devlogs/.env"), "WEBHOOK=secret").unwrap();

    // Not while the service runs.
    let service = root.service();
    let out = root.run(&["backup", "restore", "latest", "--in-place"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stop `acp run` first"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(root.path().join("devlogs/keep.md")).unwrap(),
        "overwritten by mistake"
    );
    let (status, _) = service.terminate();
    assert!(status.success());

    let out = root.run(&[
        "backup",
        "restore",
        backup["id"].as_str().unwrap(),
        "--in-place",
        "--json",
    ]);
    let done = json(&out);
    let mut live = tree(root.path(), &["config", "devlogs", "agent_workspaces"]);
    assert!(
        live.remove("devlogs/.env").is_some(),
        "the excluded secret was moved away"
    );
    assert_eq!(live, expected);
    assert_eq!(
        fs::read_to_string(root.path().join("devlogs/.env")).unwrap(),
        "WEBHOOK=secret"
    );
    let aside = PathBuf::from(done["replaced_kept_in"].as_str().unwrap());
    assert_eq!(
        fs::read_to_string(aside.join("devlogs/later.md")).unwrap(),
        "after",
        "the replaced state is kept"
    );
    // The store is the backup's: one message, and the restore is audited.
    let status = json(&root.run(&["status", "--json"]));
    let total: u64 = status["queue"]["delivered"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 1, "{status}");
    let audit = json(&root.run(&["audit", "--json"]));
    assert_eq!(audit[0]["action"], "backup.restore", "{audit}");
    // And acp works on it: a new message is delivered.
    let out = root.run(&["send", "--to", "Agent-2", "after the restore", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn prune_keeps_the_policy_and_every_chain_it_needs() {
    let root = root_with_notes();
    root.edit_config("keep_last = 24", "keep_last = 2")
        .edit_config("keep_daily = 7", "keep_daily = 0")
        .edit_config("keep_weekly = 4", "keep_weekly = 0");
    let notes = root.path().join("notes");
    fs::write(notes.join("base.txt"), "base").unwrap();
    let full = create(&root, "full");
    fs::write(notes.join("short-lived.bin"), noise(100_000, 5)).unwrap();
    let i1 = create(&root, "incremental");
    fs::remove_file(notes.join("short-lived.bin")).unwrap();
    let i2 = create(&root, "incremental");
    fs::write(notes.join("base.txt"), "diff").unwrap();
    let diff = create(&root, "differential");
    fs::write(notes.join("last.txt"), "last").unwrap();
    let last = create(&root, "incremental");
    let size_before = json(&root.run(&["backup", "list", "--json"]))["repository_bytes"]
        .as_u64()
        .unwrap();

    let dry = json(&root.run(&["backup", "prune", "--dry-run", "--json"]));
    assert_eq!(dry["removed"].as_array().unwrap().len(), 2);
    let pruned = json(&root.run(&["backup", "prune", "--json"]));
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let kept: Vec<String> = pruned["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    // The newest two, plus the full backup the differential builds on.
    assert_eq!(kept, [id(&full), id(&diff), id(&last)]);
    let removed: Vec<&str> = pruned["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(removed, [id(&i1), id(&i2)]);
    assert!(pruned["objects_removed"].as_u64().unwrap() >= 1, "{pruned}");
    let size_after = json(&root.run(&["backup", "list", "--json"]))["repository_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        size_after < size_before - 90_000,
        "{size_before} -> {size_after}"
    );
    assert!(root.run(&["backup", "verify", "--all"]).status.success());
    let dest = tempfile::tempdir().unwrap();
    let out = restore(&root, &[&id(&last)], &dest.path().join("r"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(dest.path().join("r/notes/last.txt")).unwrap(),
        "last"
    );
    assert_eq!(
        fs::read_to_string(dest.path().join("r/notes/base.txt")).unwrap(),
        "diff"
    );
}

#[test]
fn acp_run_takes_the_scheduled_backup_and_doctor_and_drill_report_health() {
    let root = Root::new(2);
    // A fresh root: no backups yet, so doctor warns but does not fail.
    let out = root.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("WARN  backups         no backups yet"),
        "{text}"
    );
    assert!(text.contains("ok    inboxes"), "{text}");

    // The service takes a full backup at once (none exists yet).
    let service = root.service();
    // Done when the service says so (the log line follows the commit and
    // the prune after it).
    wait_until(Duration::from_secs(30), || {
        fs::read_to_string(root.path().join("service.log"))
            .is_ok_and(|log| log.contains("scheduled backup taken"))
    });
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    let list = json(&root.run(&["backup", "list", "--json"]));
    assert_eq!(list["backups"][0]["kind"], "full");

    let doctor = json(&root.run(&["doctor", "--json"]));
    let backups = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "backups")
        .unwrap()
        .clone();
    assert_eq!(backups["level"], "ok", "{doctor}");

    let drill = json(&root.run(&["backup", "drill", "--json"]));
    assert_eq!(drill["ok"], true);
    assert_eq!(drill["drill"]["store_integrity"], "ok");
    assert!(drill["drill"]["files"].as_u64().unwrap() >= 3, "{drill}");

    // A broken inbox is a failure with the fix.
    let inbox = root.inbox("Agent-2");
    fs::remove_dir(&inbox).unwrap();
    fs::write(&inbox, "in the way").unwrap();
    let out = root.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FAIL  inboxes"), "{}", stdout(&out));

    // So is a broken config, named with its key.
    root.edit_config("max_attempts = 5", "max_attempts = -1");
    let out = root.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL  config") && text.contains("delivery.max_attempts"),
        "{text}"
    );
}

/// The pid of the `acp backup scheduled` child working for `root`.
fn scheduled_child(root: &Path) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let here = args.contains(&root.as_os_str().as_encoded_bytes())
            && args
                .windows(2)
                .any(|w| w == [b"backup".as_slice(), b"scheduled"]);
        here.then_some(pid)
    })
}

#[test]
fn a_scheduled_backup_runs_in_a_child_and_its_death_is_reported() {
    let root = Root::new(2);
    // A repository with no backup in it: the schedule wants a full one.
    create(&root, "full");
    for manifest in fs::read_dir(root.path().join("backups/snapshots")).unwrap() {
        fs::remove_file(manifest.unwrap().path()).unwrap();
    }
    // Another backup holds the repository, so the child waits for it.
    let lock = fs::File::open(root.path().join("backups/lock")).unwrap();
    lock.lock().unwrap();
    let service = root.service();
    let mut child = None;
    wait_until(Duration::from_secs(30), || {
        child = scheduled_child(root.path());
        child.is_some()
    });
    // The child is the one that grows with the files it backs up: the
    // service's own memory stays out of it. It dies (as if out of memory).
    let status = std::process::Command::new("kill")
        .args(["-KILL", &child.unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let audit = || -> Value { json(&root.run(&["audit", "--json"])) };
    wait_until(Duration::from_secs(30), || {
        audit().as_array().unwrap().iter().any(|r| {
            r["actor"] == "schedule"
                && r["action"] == "backup.create"
                && r["outcome"] == "error"
                && r["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("killed by signal 9"))
        })
    });
    // The service goes on, says what happened, and the next look (the
    // lock is free now) takes the backup.
    drop(lock);
    assert!(root.run(&["status"]).status.success());
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("scheduled backup failed") && log.contains("killed by signal 9"),
        "{log}"
    );
}

#[test]
fn an_encrypted_repository_hides_content_and_needs_its_key() {
    let root = root_with_notes();
    let secret_text = "the launch code is 0000";
    fs::write(root.path().join("notes/plan.txt"), secret_text.repeat(50)).unwrap();
    let keygen = root.run(&["backup", "keygen", "--json"]);
    let key = json(&keygen)["ACP_BACKUP_KEY"].as_str().unwrap().to_owned();
    assert!(key.starts_with("AGE-SECRET-KEY-1"));
    fs::write(root.path().join(".env"), format!("ACP_BACKUP_KEY={key}\n")).unwrap();

    let full = create(&root, "full");
    fs::write(root.path().join("notes/plan.txt"), "changed").unwrap();
    create(&root, "incremental");
    let repo = root.path().join("backups");
    let plain_hash = blake3::hash(secret_text.repeat(50).as_bytes())
        .to_hex()
        .to_string();
    for file in repo_files(&repo) {
        let bytes = fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("launch code"),
            "{} holds plaintext",
            file.display()
        );
        assert!(
            !text.contains("plan.txt"),
            "{} names a file",
            file.display()
        );
        assert!(
            !file.to_string_lossy().contains(&plain_hash),
            "an object named by its plain hash"
        );
    }

    // With the key: verify and restore, byte for byte.
    assert!(root.run(&["backup", "verify", "--all"]).status.success());
    let dest = tempfile::tempdir().unwrap();
    let out = restore(
        &root,
        &[full["id"].as_str().unwrap()],
        &dest.path().join("r"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(dest.path().join("r/notes/plan.txt")).unwrap(),
        secret_text.repeat(50)
    );

    // A flipped byte in an encrypted pack is found.
    let object = packs(&repo)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let original = fs::read(&object).unwrap();
    let mut damaged = original.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x40;
    fs::write(&object, damaged).unwrap();
    let out = root.run(&["backup", "verify", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    fs::write(&object, original).unwrap();

    // Without the key, or with another: a clear refusal.
    fs::write(root.path().join(".env"), "").unwrap();
    let out = root.run(&["backup", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is encrypted: set ACP_BACKUP_KEY"),
        "{}",
        stderr(&out)
    );
    let other = json(&root.run(&["backup", "keygen", "--json"]))["ACP_BACKUP_KEY"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::write(
        root.path().join(".env"),
        format!("ACP_BACKUP_KEY={other}\n"),
    )
    .unwrap();
    let out = root.run(&["backup", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not the key of the repository"),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["backup", "create"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no backup is taken with the wrong key"
    );
}

#[test]
fn a_lost_machine_is_rebuilt_from_the_repository_alone() {
    let old = Root::new(2);
    let out = old.run(&["send", "--to", "Agent-1", "remember me"]);
    assert!(out.status.success());
    old.run(&["roles", "set", "Agent-2", "Reviewer"]);
    create(&old, "full");
    let repo = old.path().join("backups");

    // A new machine: no root, only the repository (say, on a NAS).
    let new_machine = tempfile::tempdir().unwrap();
    let root = new_machine.path().join("swarm");
    let acp = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .env("ACP_BACKUP_REPOSITORY", &repo)
            .env_remove("ACP_BACKUP_KEY")
            .output()
            .unwrap()
    };
    let out = acp(&[
        "backup",
        "restore",
        "latest",
        "--to",
        root.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = acp(&["roles", "list", "--json"]);
    assert!(stdout(&out).contains("Reviewer"), "{}", stdout(&out));
    let out = acp(&["inbox", "list", "--agent", "Agent-1", "--json"]);
    assert!(stdout(&out).contains("remember me"), "{}", stdout(&out));
    assert_eq!(
        fs::read_dir(root.join("agent_workspaces/Agent-1/inbox"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn a_backup_from_any_door_is_audited_and_announced() {
    let root = root_with_notes();
    let newest_audit =
        |root: &Root| -> Value { json(&root.run(&["audit", "--json", "--limit", "1"]))[0].clone() };

    // From the command line.
    let from_cli = create(&root, "full");
    let row = newest_audit(&root);
    assert_eq!(row["action"], "backup.create", "{row}");
    assert_eq!(row["outcome"], "ok", "{row}");
    assert_eq!(row["target"], from_cli["id"], "{row}");
    assert!(row["actor"].as_str().unwrap().starts_with("cli:"), "{row}");

    // Through the core, the way `/backup create` and the schedule call
    // it: the same audit row, and the event in the process that took it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (event, id) = runtime.block_on(async {
        let app = acp::app::App::open(root.config()).unwrap();
        let mut events = app.events().subscribe();
        let created = app
            .backups()
            .create(
                acp::app::BackupKind::Incremental,
                "discord:600000000000000001:alice",
                std::sync::Arc::new(acp::app::Quiet),
            )
            .await
            .unwrap();
        (events.recv().await.unwrap(), created.manifest.id)
    });
    assert!(
        matches!(&event, acp::app::Event::BackupTaken { id: taken, .. } if *taken == id),
        "{event:?}"
    );
    let row = newest_audit(&root);
    assert_eq!(row["action"], "backup.create", "{row}");
    assert_eq!(row["actor"], "discord:600000000000000001:alice", "{row}");
    assert_eq!(row["target"], id.as_str(), "{row}");

    // A failed one is audited as an error, with why.
    let file = root.path().join("not-a-directory");
    fs::write(&file, "").unwrap();
    let out = root
        .acp()
        .env("ACP_BACKUP_REPOSITORY", &file)
        .args(["backup", "create"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let row = newest_audit(&root);
    assert_eq!(row["action"], "backup.create", "{row}");
    assert_eq!(row["outcome"], "error", "{row}");
    assert!(!row["detail"].as_str().unwrap().is_empty(), "{row}");
}
