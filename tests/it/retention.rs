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

    // Once they are older than keep_days: more traffic to Agent-1 while
    // retention runs beside it.
    wait_until(LIMIT, || sent_at.elapsed() > KEEP);
    let before = prune(&root);
    let mut passes = vec![before];
    let new = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            (0..30)
                .map(|i| send(&root, "Agent-1", &format!("new {i}")))
                .collect::<Vec<_>>()
        });
        while !sender.is_finished() {
            passes.push(prune(&root));
        }
        sender.join().unwrap()
    });

    // Nothing sent was lost or delivered twice.
    let inbox = root.inbox_ids("Agent-1");
    for id in old_1.iter().chain(&new) {
        assert_eq!(inbox.get(id), Some(&1), "{id} not delivered once");
    }
    // Agent-1's old messages went; Agent-2 keeps its newest three; the
    // message still in flight stays.
    let kept = stored(&root);
    for id in &old_1 {
        assert!(!kept.contains(id), "{id} outlived keep_days");
    }
    let kept_2: Vec<&String> = old_2.iter().filter(|id| kept.contains(*id)).collect();
    assert_eq!(kept_2, old_2.iter().skip(9).collect::<Vec<_>>());
    assert!(kept.contains(&in_flight), "a message in flight was removed");
    let removed: u64 = passes
        .iter()
        .map(|p| p["removed"]["messages"].as_u64().unwrap())
        .sum();
    assert!(removed >= 21, "{passes:?}");
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
