// Over 400 lines: each test is one backup story from set-up to the user's checks.

//! Backups of format 2 on real files: large files (the store first) in
//! content-defined chunks, blobs in packs, damage found chunk by chunk,
//! packs rewritten by prune, and repositories of format 1 still restored.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backup::{
    create, find_blob, json, noise, pack_table, packs, restore, root_with_notes, tree,
};
use crate::support::{Root, stderr, stdout};

/// The manifest of a backup in a plain repository, as `jq` would read it.
fn manifest(repo: &Path, id: &str) -> Value {
    let file = fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(id))
        .unwrap();
    serde_json::from_slice(&fs::read(file).unwrap()).unwrap()
}

/// A manifest's entry for `path`.
fn entry<'a>(manifest: &'a Value, path: &str) -> &'a Value {
    manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not in the backup"))
}

/// Grows the store by `rows` messages of about 2 KB each, in acp's own
/// schema, through SQLite (the way acp writes, one transaction).
fn grow_store(root: &Root, rows: usize) {
    let out = root.run(&[
        "send",
        "--to",
        "Agent-2",
        "the first message makes the store",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = rusqlite::Connection::open(root.path().join("data/acp.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for i in 0..rows {
        let at = 1_700_000_000_000 + u64::try_from(i).unwrap();
        let id = ulid::Ulid::from_parts(at, i as u128).to_string();
        let words = ["deliver", "the", "report", "agent", "fix", "test", "merge"];
        let body: Vec<&str> = (0..300).map(|w| words[(i * 7 + w * 13) % 7]).collect();
        tx.execute(
            "INSERT INTO messages (id, sender, recipient, kind, priority, body, tags, \
             created_at, reply_to, via) VALUES (?1, 'Agent-1', 'Agent-2', 'agent_to_agent', 0, \
             ?2, '[]', ?3, NULL, 'auto')",
            rusqlite::params![
                id,
                format!("{i} {}", body.join(" ")),
                i64::try_from(at).unwrap()
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Every message body of a store, in id order.
fn bodies(db: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(db).unwrap();
    let mut q = db.prepare("SELECT body FROM messages ORDER BY id").unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_chunked_store_restores_byte_for_byte_and_an_incremental_stores_what_changed() {
    let root = root_with_notes();
    grow_store(&root, 3000);
    let big = noise(3 << 20, 41);
    fs::write(root.path().join("notes/big.bin"), &big).unwrap();
    let full = create(&root, "full");
    let repo = root.path().join("backups");
    let m = manifest(&repo, full["id"].as_str().unwrap());
    let store = entry(&m, "data/acp.db");
    let store_size = store["size"].as_u64().unwrap();
    assert!(store_size > 4 << 20, "the store is {store_size} bytes");
    let chunks = store["chunks"].as_array().unwrap().len();
    assert!(chunks >= 30, "the store is in {chunks} chunks");
    assert!(entry(&m, "notes/big.bin")["chunks"].is_array());

    // A little traffic, then an incremental: it stores about the pages
    // that changed, as the backup itself reports.
    for i in 0..3 {
        let out = root.run(&["send", "--to", "Agent-1", &format!("small change {i}")]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let incr = create(&root, "incremental");
    let stats = &incr["stats"];
    let stored = stats["stored_bytes"].as_u64().unwrap();
    assert!(
        stored < store_size / 20,
        "an incremental after 3 messages stored {stored} bytes of a {store_size}-byte store: \
         {stats}"
    );
    assert!(stats["changed_bytes"].as_u64().unwrap() >= store_size);
    let listed = json(&root.run(&["backup", "list", "--json"]));
    assert_eq!(listed["backups"][1]["stats"]["stored_bytes"], stored);
    // What a person reads: "+84.12 KiB stored" beside a store of MiBs.
    let list = stdout(&root.run(&["backup", "list"]));
    let line = list
        .lines()
        .find(|l| l.starts_with(incr["id"].as_str().unwrap()))
        .unwrap();
    let shown = line
        .split('+')
        .nth(1)
        .unwrap()
        .split(" stored")
        .next()
        .unwrap();
    assert!(shown.ends_with("KiB") || shown.ends_with(" B"), "{line}");

    // Both restore: the big file byte for byte, the store exactly as
    // captured (its hash) and as it was (its rows).
    let scratch = tempfile::tempdir().unwrap();
    for (b, messages) in [(&full, 3001), (&incr, 3004)] {
        let id = b["id"].as_str().unwrap();
        let dest = scratch.path().join(id);
        let out = restore(&root, &[id], &dest);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(fs::read(dest.join("notes/big.bin")).unwrap(), big);
        let restored = fs::read(dest.join("data/acp.db")).unwrap();
        let recorded = entry(&manifest(&repo, id), "data/acp.db").clone();
        assert_eq!(
            blake3::hash(&restored).to_hex().to_string(),
            recorded["blake3"].as_str().unwrap()
        );
        assert_eq!(restored.len() as u64, recorded["size"].as_u64().unwrap());
        let db = dest.join("data/acp.db");
        assert_eq!(bodies(&db).len(), messages);
        let check: String = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    let live_rows = bodies(&root.path().join("data/acp.db"));
    assert_eq!(
        bodies(
            &scratch
                .path()
                .join(incr["id"].as_str().unwrap())
                .join("data/acp.db")
        ),
        live_rows
    );
    assert!(root.run(&["backup", "verify", "--all"]).status.success());
}

/// Flips one byte of a pack in place.
fn flip(pack: &Path, at: u64) -> Vec<u8> {
    let original = fs::read(pack).unwrap();
    let mut damaged = original.clone();
    damaged[usize::try_from(at).unwrap()] ^= 0x20;
    fs::write(pack, damaged).unwrap();
    original
}

#[test]
fn verify_finds_a_flipped_byte_in_a_chunk_and_in_a_pack_and_names_the_file() {
    let root = root_with_notes();
    fs::write(root.path().join("notes/big.bin"), noise(2 << 20, 5)).unwrap();
    fs::write(root.path().join("notes/small.txt"), "a small file").unwrap();
    let full = create(&root, "full");
    let repo = root.path().join("backups");
    let m = manifest(&repo, full["id"].as_str().unwrap());
    let chunk = entry(&m, "notes/big.bin")["chunks"][3]
        .as_str()
        .unwrap()
        .to_owned();

    // A byte in the middle of one chunk of big.bin.
    let (pack, blob) = find_blob(&repo, &chunk).unwrap();
    let original = flip(&pack, blob.offset + blob.stored / 2);
    let out = root.run(&["backup", "verify", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("notes/big.bin: chunk 4 of") && !text.contains("notes/small.txt"),
        "{text}"
    );
    // A restore refuses it, naming the file; --partial restores the rest.
    let scratch = tempfile::tempdir().unwrap();
    let out = restore(&root, &["latest"], &scratch.path().join("r"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("notes/big.bin"), "{}", stderr(&out));
    let out = restore(&root, &["latest", "--partial"], &scratch.path().join("p"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        fs::read_to_string(scratch.path().join("p/notes/small.txt")).unwrap(),
        "a small file"
    );
    assert!(!scratch.path().join("p/notes/big.bin").exists());
    fs::write(&pack, original).unwrap();
    assert!(root.run(&["backup", "verify", "--all"]).status.success());

    // A byte of a small file's blob, in its pack.
    let small = blake3::hash(b"a small file").to_hex().to_string();
    let (pack, blob) = find_blob(&repo, &small).unwrap();
    let original = flip(&pack, blob.offset + 4);
    let text = stdout(&root.run(&["backup", "verify", "--all"]));
    assert!(text.contains("notes/small.txt"), "{text}");
    fs::write(&pack, original).unwrap();

    // A byte of a pack's table (a blob's length): the pack is damaged.
    let len = fs::metadata(&pack).unwrap().len();
    let table = pack_table(&pack);
    let at = len - 8 - 40 * table.len() as u64 + 33;
    let original = flip(&pack, at);
    let out = root.run(&["backup", "verify", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    fs::write(&pack, original).unwrap();
    assert!(root.run(&["backup", "verify", "--all"]).status.success());
}

#[test]
fn prune_deletes_unused_packs_and_rewrites_mostly_unused_ones() {
    let root = root_with_notes();
    root.edit_config("keep_last = 24", "keep_last = 1")
        .edit_config("keep_daily = 7", "keep_daily = 0")
        .edit_config("keep_weekly = 4", "keep_weekly = 0");
    let notes = root.path().join("notes");
    let keep = noise(100_000, 1);
    fs::write(notes.join("keep.bin"), &keep).unwrap();
    fs::write(notes.join("gone.bin"), noise(1 << 20, 2)).unwrap();
    create(&root, "full");
    let repo = root.path().join("backups");
    let first_packs = packs(&repo);
    fs::remove_file(notes.join("gone.bin")).unwrap();
    fs::write(notes.join("new.txt"), "new").unwrap();
    let second = create(&root, "full");
    let before = json(&root.run(&["backup", "list", "--json"]))["repository_bytes"]
        .as_u64()
        .unwrap();

    let dry = json(&root.run(&["backup", "prune", "--dry-run", "--json"]));
    let pruned = json(&root.run(&["backup", "prune", "--json"]));
    assert_eq!(dry["objects_removed"], pruned["objects_removed"]);
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1);
    // gone.bin's chunks left with the pack they shared with keep.bin,
    // which was rewritten (keep.bin is still used).
    assert!(
        pruned["objects_removed"].as_u64().unwrap() >= 10,
        "{pruned}"
    );
    assert_eq!(pruned["packs_rewritten"], 1, "{pruned}");
    let after = json(&root.run(&["backup", "list", "--json"]))["repository_bytes"]
        .as_u64()
        .unwrap();
    assert!(after + (1 << 20) - 50_000 < before, "{before} -> {after}");
    assert!(first_packs.iter().all(|p| !p.exists()));
    assert!(root.run(&["backup", "verify", "--all"]).status.success());
    let dest = tempfile::tempdir().unwrap();
    let out = restore(
        &root,
        &[second["id"].as_str().unwrap()],
        &dest.path().join("r"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(dest.path().join("r/notes/keep.bin")).unwrap(),
        keep
    );
    assert!(!dest.path().join("r/notes/gone.bin").exists());
}

/// A copy of a format-1 fixture (tests/fixtures/backup-v1/).
fn fixture(name: &str, into: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backup-v1");
    let to = into.join(name);
    copy(&from.join(name), &to);
    to
}

/// What the fixtures' two backups hold (tests/fixtures/backup-v1/README.md).
fn check_v1_restores(acp: &dyn Fn(&[&str]) -> std::process::Output, full: &str, incr: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let restored = |id: &str| {
        let dest = scratch.path().join(id);
        let out = acp(&["backup", "restore", id, "--to", dest.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        dest
    };
    let first = restored(full);
    assert_eq!(
        fs::read_to_string(first.join("notes/hello.txt")).unwrap(),
        "hello from format 1\n"
    );
    let data: Vec<u8> = (0..3000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    assert_eq!(fs::read(first.join("notes/sub/data.bin")).unwrap(), data);
    assert_eq!(
        fs::read_link(first.join("notes/link")).unwrap(),
        Path::new("hello.txt")
    );
    assert_eq!(
        bodies(&first.join("data/acp.db")),
        ["kept in a format-1 backup"]
    );
    let second = restored(incr);
    assert_eq!(
        fs::read_to_string(second.join("notes/hello.txt")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        fs::read_to_string(second.join("notes/new.txt")).unwrap(),
        "new\n"
    );
    assert!(!second.join("notes/sub/data.bin").exists());
    let verify = acp(&["backup", "verify", "--all"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn an_old_format_repository_restores_and_takes_new_backups() {
    let root = root_with_notes();
    let scratch = tempfile::tempdir().unwrap();
    let repo = fixture("plain", scratch.path());
    let acp = |args: &[&str]| {
        root.acp()
            .env("ACP_BACKUP_REPOSITORY", &repo)
            .args(args)
            .output()
            .unwrap()
    };
    let (full, incr) = ("01M9298E282M984HHMX3S2ZFKA", "01M9298EJG7GJ3218MSR9VKH24");
    check_v1_restores(&acp, full, incr);
    assert_eq!(
        fs::read_to_string(repo.join("acp-backup.json")).unwrap(),
        "{\"format\":\"acp-backup/1\"}\n",
        "reading changes nothing"
    );

    // A new backup turns it into format 2; the old backups stay readable,
    // and the new one shares their unchanged content.
    fs::write(root.path().join("notes/hello.txt"), "changed\n").unwrap();
    fs::write(root.path().join("notes/big.bin"), noise(1 << 20, 9)).unwrap();
    let out = acp(&["backup", "create", "--kind", "incremental", "--json"]);
    let new = json(&out)["backup"].clone();
    assert_eq!(new["parent"], incr);
    assert_eq!(
        fs::read_to_string(repo.join("acp-backup.json")).unwrap(),
        "{\"format\":\"acp-backup/2\"}\n"
    );
    check_v1_restores(&acp, full, incr);
    let dest = scratch.path().join("new");
    let out = acp(&[
        "backup",
        "restore",
        "latest",
        "--to",
        dest.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(&dest, &["notes"]),
        tree(root.path(), &["notes"]),
        "the new backup restores the live notes"
    );

    // Prune keeps only the newest (a full of its own): the format-1
    // objects no backup uses go. The one it still uses stays: hello.txt
    // says "changed\n" again, stored once in format 1 and not again.
    let out = acp(&["backup", "create", "--kind", "full", "--json"]);
    let last = json(&out)["backup"]["id"].as_str().unwrap().to_owned();
    root.edit_config("keep_last = 24", "keep_last = 1")
        .edit_config("keep_daily = 7", "keep_daily = 0")
        .edit_config("keep_weekly = 4", "keep_weekly = 0");
    let pruned = json(&acp(&["backup", "prune", "--json"]));
    assert_eq!(pruned["kept"], serde_json::json!([last]));
    assert!(pruned["objects_removed"].as_u64().unwrap() >= 5, "{pruned}");
    let objects = crate::backup::repo_files(&repo.join("objects"));
    let changed = blake3::hash(b"changed\n").to_hex().to_string();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0].ends_with(&changed), "{objects:?}");
    assert!(acp(&["backup", "verify", "--all"]).status.success());
}

#[test]
fn an_old_format_encrypted_repository_restores_with_its_key() {
    let root = Root::new(1);
    let scratch = tempfile::tempdir().unwrap();
    let repo = fixture("encrypted", scratch.path());
    let key_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backup-v1/encrypted.key");
    let key = fs::read_to_string(key_file).unwrap().trim().to_owned();
    let acp = |args: &[&str]| {
        root.acp()
            .env("ACP_BACKUP_REPOSITORY", &repo)
            .env("ACP_BACKUP_KEY", &key)
            .args(args)
            .output()
            .unwrap()
    };
    check_v1_restores(
        &acp,
        "01M9298F19V0944QKHQSQ6W19E",
        "01M9298F7PFHAXTR3YTQ1P87TD",
    );
    let out = root
        .acp()
        .env("ACP_BACKUP_REPOSITORY", &repo)
        .args(["backup", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is encrypted: set ACP_BACKUP_KEY"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_encrypted_repository_chunks_packs_and_rewrites_too() {
    let root = root_with_notes();
    root.edit_config("keep_last = 24", "keep_last = 1")
        .edit_config("keep_daily = 7", "keep_daily = 0")
        .edit_config("keep_weekly = 4", "keep_weekly = 0");
    let key = json(&root.run(&["backup", "keygen", "--json"]))["ACP_BACKUP_KEY"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::write(root.path().join(".env"), format!("ACP_BACKUP_KEY={key}\n")).unwrap();
    let notes = root.path().join("notes");
    let mut big = noise(1_500_000, 77);
    fs::write(notes.join("big.bin"), &big).unwrap();
    fs::write(notes.join("gone.bin"), noise(4 << 20, 78)).unwrap();
    create(&root, "full");
    // A change in the middle of big.bin: a few chunks, read back from
    // the middle of an age stream.
    big[700_000..704_096].copy_from_slice(&noise(4096, 79));
    fs::write(notes.join("big.bin"), &big).unwrap();
    fs::remove_file(notes.join("gone.bin")).unwrap();
    let incr = create(&root, "incremental");
    let stored = incr["stats"]["stored_bytes"].as_u64().unwrap();
    assert!(stored < 1 << 20, "{}", incr["stats"]);
    let restored = |id: &str, to: &str| {
        let dest = tempfile::tempdir().unwrap();
        let out = restore(&root, &[id], &dest.path().join(to));
        assert!(out.status.success(), "{}", stderr(&out));
        let bytes = fs::read(dest.path().join(to).join("notes/big.bin")).unwrap();
        (dest, bytes)
    };
    assert_eq!(restored("latest", "r").1, big);
    assert!(root.run(&["backup", "verify", "--all"]).status.success());

    // A flipped byte in the middle of a pack's encrypted body is found.
    let repo = root.path().join("backups");
    let pack = packs(&repo)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let original = flip(&pack, fs::metadata(&pack).unwrap().len() / 2);
    let out = root.run(&["backup", "verify", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("notes/"), "{}", stdout(&out));
    fs::write(&pack, original).unwrap();

    // After a full of its own, prune keeps only it: the first full's pack
    // is mostly gone.bin, unused now, and is rewritten without it (the
    // chunks of big.bin in it are still used). What is left restores.
    let last = create(&root, "full");
    let pruned = json(&root.run(&["backup", "prune", "--json"]));
    assert_eq!(pruned["kept"], serde_json::json!([last["id"]]), "{pruned}");
    assert!(
        pruned["objects_removed"].as_u64().unwrap() >= 50,
        "{pruned}"
    );
    assert!(pruned["packs_rewritten"].as_u64().unwrap() >= 1, "{pruned}");
    assert!(root.run(&["backup", "verify", "--all"]).status.success());
    assert_eq!(restored(last["id"].as_str().unwrap(), "l").1, big);
}
