//! Stored schedules fired by a real `acp run`: once per due time across a
//! restart, missed firings recorded (or caught up once), bad expressions
//! refused with their position.

use std::time::Duration;

use crate::support::{Root, stderr, stdout, wait_until};

const LIMIT: Duration = Duration::from_secs(30);

/// `acp --json schedule list`, parsed.
fn list(root: &Root) -> Vec<serde_json::Value> {
    let out = root.run(&["--json", "schedule", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// How many firings of schedule `id` ended as `outcome`.
fn count(root: &Root, id: i64, outcome: &str) -> i64 {
    list(root)
        .iter()
        .find(|s| s["id"] == id)
        .and_then(|s| s["counts"][outcome].as_i64())
        .unwrap_or(0)
}

fn add(root: &Root, args: &[&str]) -> i64 {
    let mut all = vec!["--json", "schedule", "add"];
    all.extend_from_slice(args);
    let out = root.run(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    view["id"].as_i64().unwrap()
}

#[test]
fn every_second_delivers_once_per_firing_across_a_restart() {
    let root = Root::new(2);
    root.fast();
    let id = add(&root, &["--cron", "* * * * * *", "--to", "Agent-2", "tick"]);
    let service = root.service();
    wait_until(LIMIT, || count(&root, id, "sent") >= 2);
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    let before = count(&root, id, "sent");
    let service = root.service();
    wait_until(LIMIT, || count(&root, id, "sent") >= before + 2);
    // No more firings: then every one sent is delivered, once.
    assert!(
        root.run(&["schedule", "pause", &id.to_string()])
            .status
            .success()
    );
    let sent = count(&root, id, "sent");
    wait_until(LIMIT, || {
        i64::try_from(root.inbox_ids("Agent-2").len()).unwrap() == sent
    });
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    let ids = root.inbox_ids("Agent-2");
    assert_eq!(
        i64::try_from(ids.len()).unwrap(),
        count(&root, id, "sent"),
        "{ids:?}"
    );
    assert!(
        ids.values().all(|n| *n == 1),
        "a firing delivered twice: {ids:?}"
    );
    let shown = stdout(&root.run(&["schedule", "list"]));
    assert!(
        shown.contains("[paused]") && shown.contains("zone:"),
        "{shown}"
    );
}

#[test]
fn a_firing_missed_during_a_stop_is_recorded_or_caught_up_once() {
    let root = Root::new(2);
    root.fast();
    let missed = add(&root, &["--cron", "* * * * * *", "--to", "Agent-1", "m"]);
    let caught = add(
        &root,
        &[
            "--cron",
            "* * * * * *",
            "--to",
            "Agent-2",
            "--catch-up",
            "c",
        ],
    );
    let service = root.service();
    wait_until(LIMIT, || {
        count(&root, missed, "sent") >= 1 && count(&root, caught, "sent") >= 1
    });
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    // Down long enough for due times past the start's grace (2 s) to pass.
    let stopped = jiff::Timestamp::now();
    wait_until(LIMIT, || {
        jiff::Timestamp::now() >= stopped + jiff::SignedDuration::from_secs(4)
    });
    let _service = root.service();
    wait_until(LIMIT, || {
        count(&root, missed, "missed") >= 1 && count(&root, caught, "caught_up") >= 1
    });
    assert_eq!(count(&root, missed, "caught_up"), 0);
    assert!(
        count(&root, caught, "missed") >= 1,
        "the older ones are missed"
    );
    // Firings go on after the catch-up, and it stays the only one.
    let sent = count(&root, caught, "sent");
    wait_until(LIMIT, || count(&root, caught, "sent") >= sent + 2);
    assert_eq!(count(&root, caught, "caught_up"), 1);
    let last = list(&root);
    assert!(
        last.iter().all(|s| s["last"]["outcome"].is_string()),
        "{last:?}"
    );
}

#[test]
fn a_bad_cron_expression_is_refused_with_its_position() {
    let root = Root::new(2);
    let out = root.run(&[
        "schedule",
        "add",
        "--cron",
        "*/5 61 * * *",
        "--to",
        "Agent-2",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the hour field at column 5"), "{err}");
    assert!(err.contains("*/5 61 * * *\n      ^^\n"), "{err}");
    let out = root.run(&["schedule", "add", "--cron", "* * *", "--to", "Agent-2", "x"]);
    assert!(
        stderr(&out).contains("3 fields, expected 5"),
        "{}",
        stderr(&out)
    );
    assert!(list(&root).is_empty(), "nothing stored");
}

#[test]
fn skip_records_a_skip_for_a_busy_agent_and_sends_once_it_is_idle() {
    use crate::tmux::{Tmux, tmux_root};
    let tmux = Tmux::start(&["Agent-1"]);
    let root = tmux_root(&tmux, &[("Agent-1", "")]);
    std::fs::write(tmux.flag("Agent-1", "busy"), "").unwrap();
    wait_until(LIMIT, || tmux.screen("Agent-1").contains("working..."));
    let id = add(
        &root,
        &[
            "--cron",
            "* * * * * *",
            "--to",
            "Agent-1",
            "--when-busy",
            "skip",
            "standup",
        ],
    );
    let _service = root.service();
    wait_until(LIMIT, || count(&root, id, "skipped") >= 2);
    assert_eq!(count(&root, id, "sent"), 0, "sent to a busy agent");
    std::fs::remove_file(tmux.flag("Agent-1", "busy")).unwrap();
    wait_until(LIMIT, || count(&root, id, "sent") >= 1);
    wait_until(LIMIT, || {
        tmux.submitted("Agent-1")
            .iter()
            .any(|s| s["text"].as_str().is_some_and(|t| t.contains("standup")))
    });
}
