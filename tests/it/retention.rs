//! Retention under a running `acp run`: finished messages older than
//! `[store] keep_days` go with their deliveries and attempts, the newest
//! `keep_min` of each recipient and anything still in flight stay, no
//! message sent meanwhile is lost, and the space is given back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{Root, stderr, stdout, wait_until};
use crate::tmux::{Tmux, send};

const LIMIT: Duration = Duration::from_secs(60);
/// `[store] keep_days` of the test: 2.6 seconds.
const KEEP_DAYS: &str = "0.00003";
const KEEP: Duration = Duration::from_millis(2592);

/// The message ids in the store, read from its file.
fn stored(root: &Root) -> BTreeSet<String> {
    let db = rusqlite::Connection::open_with_flags(
        root.path().join("data/acp.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db.prepare("SELECT id FROM messages").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn rows(root: &Root, table: &str) -> u64 {
    let out = root.run(&["--json", "store", "stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == table)
        .and_then(|t| t["rows"].as_u64())
        .unwrap()
}

fn prune(root: &Root) -> serde_json::Value {
    let out = root.run(&["--json", "store", "prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn retention_removes_what_ended_and_is_old_while_acp_run_delivers() {
    let tmux = Tmux::start(&["Agent-3"]);
    let root = Root::new(3);
    root.fast()
        .agent_config("Agent-3", &tmux.agent_config("Agent-3", ""))
        .edit_config("keep_days = 90", &format!("keep_days = {KEEP_DAYS}"))
        .edit_config("keep_min = 100", "keep_min = 3");
    // Agent-3's pane is busy: its message stays in flight.
    std::fs::write(tmux.flag("Agent-3", "busy"), "").unwrap();
    wait_until(LIMIT, || tmux.screen("Agent-3").contains("working..."));
    let _service = root.service();

    let big = "x".repeat(15_000);
    let mut old_1 = Vec::new();
    let mut old_2 = Vec::new();
    for i in 0..12 {
        old_1.push(send(&root, "Agent-1", &format!("one {i} {big}")));
        old_2.push(send(&root, "Agent-2", &format!("two {i} {big}")));
    }
    let out = root.run(&["send", "--to", "Agent-3", "held while busy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let in_flight = stdout(&out).trim().to_owned();
    let sent_at = Instant::now();
    assert_eq!(stored(&root).len(), 25);
    // Every old message reached its inbox once.
    wait_until(LIMIT, || root.inbox_ids("Agent-1").len() == 12);
    wait_until(LIMIT, || root.inbox_ids("Agent-2").len() == 12);
    assert!(root.inbox_ids("Agent-1").values().all(|&n| n == 1));
    // What an agent keeps in its inbox itself stays: a note, a link and a
    // file of its own under a message file's name.
    let inbox_1 = root.inbox("Agent-1");
    std::fs::write(inbox_1.join("notes.md"), "my notes").unwrap();
    let name = |id: &str| format!("20200101T000000.000Z_{id}.md");
    std::os::unix::fs::symlink(
        root.path().join("config/acp.toml"),
        inbox_1.join(name("01AAAAAAAAAAAAAAAAAAAAAAAA")),
    )
    .unwrap();
    std::fs::write(
        inbox_1.join(name("01BBBBBBBBBBBBBBBBBBBBBBBB")),
        "---\nid: 01CCCCCCCCCCCCCCCCCCCCCCCC\n---\nmine\n",
    )
    .unwrap();

    // Once they are older than keep_days: more traffic to Agent-1 while
    // retention runs beside it.
    wait_until(LIMIT, || sent_at.elapsed() > KEEP);
    let before = prune(&root);
    let mut passes = vec![before];
    // Each inbox file seen for Agent-1, with the most copies seen at once.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let look = |seen: &mut std::collections::BTreeMap<String, usize>| {
        for (id, n) in root.inbox_ids("Agent-1") {
            let most = seen.entry(id).or_default();
            *most = (*most).max(n);
        }
    };
    let new = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            (0..30)
                .map(|i| send(&root, "Agent-1", &format!("new {i}")))
                .collect::<Vec<_>>()
        });
        while !sender.is_finished() {
            passes.push(prune(&root));
            look(&mut seen);
        }
        sender.join().unwrap()
    });

    // Nothing sent meanwhile was lost or delivered twice (a file lives at
    // least keep_days, far longer than between two looks, before
    // retention may take it with its message).
    wait_until(LIMIT, || {
        look(&mut seen);
        new.iter().all(|id| seen.contains_key(id))
    });
    for id in &new {
        assert_eq!(seen.get(id), Some(&1), "{id} not delivered once");
    }
    let inbox = root.inbox_ids("Agent-1");
    // Agent-1's old messages went, their inbox files with them; Agent-2
    // keeps its newest three, files too; the message in flight stays.
    let kept = stored(&root);
    for id in &old_1 {
        assert!(!kept.contains(id), "{id} outlived keep_days");
        assert!(
            !inbox.contains_key(id),
            "{id}'s inbox file outlived keep_days"
        );
    }
    let kept_2: Vec<&String> = old_2.iter().filter(|id| kept.contains(*id)).collect();
    assert_eq!(kept_2, old_2.iter().skip(9).collect::<Vec<_>>());
    let files_2: BTreeSet<String> = root.inbox_ids("Agent-2").into_keys().collect();
    assert_eq!(files_2, old_2[9..].iter().cloned().collect());
    assert!(kept.contains(&in_flight), "a message in flight was removed");
    assert_eq!(
        std::fs::read_to_string(inbox_1.join("notes.md")).unwrap(),
        "my notes"
    );
    for id in ["01AAAAAAAAAAAAAAAAAAAAAAAA", "01BBBBBBBBBBBBBBBBBBBBBBBB"] {
        assert!(
            std::fs::symlink_metadata(inbox_1.join(name(id))).is_ok(),
            "{id} removed"
        );
    }
    assert!(root.path().join("config/acp.toml").exists());
    let removed: u64 = passes
        .iter()
        .map(|p| p["removed"]["messages"].as_u64().unwrap())
        .sum();
    assert!(removed >= 21, "{passes:?}");
    // Every removed message had one inbox file, which went with it.
    let files: u64 = passes
        .iter()
        .map(|p| p["inbox_files"].as_u64().unwrap())
        .sum();
    assert_eq!(files, removed, "{passes:?}");
    // The activity feed keeps no longer than the messages it tells of.
    let activity: u64 = passes
        .iter()
        .map(|p| p["removed"]["activity"].as_u64().unwrap())
        .sum();
    assert!(activity >= 25, "{passes:?}");
    // The rows that named them went too, and the space came back.
    assert_eq!(rows(&root, "messages"), u64::try_from(kept.len()).unwrap());
    assert_eq!(
        rows(&root, "deliveries"),
        u64::try_from(kept.len()).unwrap()
    );
    let freed: u64 = passes
        .iter()
        .map(|p| p["freed_bytes"].as_u64().unwrap())
        .sum();
    assert!(freed > 200_000, "gave back only {freed} bytes: {passes:?}");
    assert_eq!(passes[0]["incremental"], true);

    // The message kept in flight is delivered once the pane is idle.
    std::fs::remove_file(tmux.flag("Agent-3", "busy")).unwrap();
    wait_until(LIMIT, || {
        tmux.submitted("Agent-3").iter().any(|s| {
            s["text"]
                .as_str()
                .is_some_and(|t| t.contains("held while busy"))
        })
    });
}

#[test]
fn a_point_in_time_restore_brings_back_what_retention_removed_and_says_when_it_cannot() {
    let root = Root::new(1);
    root.edit_config("keep_days = 90", &format!("keep_days = {KEEP_DAYS}"))
        .edit_config("keep_min = 100", "keep_min = 0");
    let early = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600);
    let ids: Vec<String> = (0..4)
        .map(|i| send(&root, "Agent-1", &format!("kept in backups {i}")))
        .collect();
    let out = root.run(&["backup", "create", "--kind", "full"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sent_at = Instant::now();
    wait_until(LIMIT, || sent_at.elapsed() > KEEP);
    let backed_up = jiff::Timestamp::now();
    let pass = prune(&root);
    assert_eq!(pass["removed"]["messages"], 4, "{pass}");
    assert!(stored(&root).is_empty());

    // Inside the window the backups cover: the store as it was.
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("then");
    let at = backed_up.to_string();
    let out = root.run(&[
        "backup",
        "restore",
        "--at",
        &at,
        "--to",
        dest.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = rusqlite::Connection::open(dest.join("data/acp.db")).unwrap();
    let back: BTreeSet<String> = db
        .prepare("SELECT id FROM messages")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, ids.iter().cloned().collect());

    // Before the first backup: said, with when the first one is from.
    let out = root.run(&[
        "backup",
        "restore",
        "--at",
        &early.to_string(),
        "--to",
        scratch.path().join("before").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no backup was taken at or before")
            && stderr(&out).contains("the first is from"),
        "{}",
        stderr(&out)
    );
}
