//! Stored schedules fired by a real `acp run`: once per due time across a
//! restart, missed firings recorded (or caught up once), bad expressions
//! refused with their position.

use std::time::Duration;

use crate::support::{Root, stderr, stdout, wait_until};

const LIMIT: Duration = Duration::from_secs(30);

/// `acp --json schedule list`, parsed.
pub(crate) fn list(root: &Root) -> Vec<serde_json::Value> {
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

    // `acp schedule firings`: newest first, each sent one with the message
    // in the inbox; `--limit`; an unknown schedule is refused.
    let out = root.run(&["--json", "schedule", "firings", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let firings: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let recorded: i64 = list(&root)[0]["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(i64::try_from(firings.len()).unwrap(), recorded.min(20));
    let due: Vec<i64> = firings
        .iter()
        .map(|f| f["due_at"].as_i64().unwrap())
        .collect();
    assert!(due.windows(2).all(|w| w[0] > w[1]), "newest first: {due:?}");
    let sent: Vec<&str> = firings
        .iter()
        .filter(|f| f["outcome"] == "sent")
        .map(|f| f["message_id"].as_str().unwrap())
        .collect();
    assert!(sent.len() >= 2, "{firings:?}");
    assert!(sent.iter().all(|m| ids.contains_key(*m)), "{ids:?}");
    let out = root.run(&["schedule", "firings", &id.to_string(), "--limit", "2"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(firings[0]["due"].as_str().unwrap())
            && lines[0].contains(firings[0]["outcome"].as_str().unwrap()),
        "{text}"
    );
    let out = root.run(&["schedule", "firings", "99"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no schedule 99"), "{}", stderr(&out));
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

/// A cron expression due once, `ahead` from now, in UTC (the root's
/// `[schedules] time_zone` must be UTC).
fn once_in(ahead: Duration) -> String {
    let at = jiff::Timestamp::now() + ahead;
    let t = at.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    format!("{} {} {} * * *", t.second(), t.minute(), t.hour())
}

#[test]
fn wait_holds_a_firing_until_the_agent_is_idle_and_skips_after_its_window() {
    use crate::tmux::{Tmux, tmux_root};
    let tmux = Tmux::start(&["Agent-1"]);
    let root = tmux_root(&tmux, &[("Agent-1", "")]);
    root.edit_config("# time_zone = \"Europe/Berlin\"", "time_zone = \"UTC\"");
    std::fs::write(tmux.flag("Agent-1", "busy"), "").unwrap();
    wait_until(LIMIT, || tmux.screen("Agent-1").contains("working..."));
    // Added while acp run runs, so the due time cannot fall before its
    // start (that would be a missed firing, not a held one).
    let service = root.service();
    let cron = once_in(Duration::from_secs(3));
    let patient = add(
        &root,
        &[
            "--cron",
            &cron,
            "--to",
            "Agent-1",
            "--wait-up-to",
            "10m",
            "standup",
        ],
    );
    let brief = add(
        &root,
        &[
            "--cron",
            &cron,
            "--to",
            "Agent-1",
            "--wait-up-to",
            "2s",
            "brief",
        ],
    );
    let log = root.path().join("service.log");
    // The evidence that the due time came and the agent was busy: the
    // short window ran out, and the long one says it waits.
    wait_until(LIMIT, || count(&root, brief, "skipped") == 1);
    let skipped = list(&root).into_iter().find(|s| s["id"] == brief).unwrap();
    assert!(
        skipped["last"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("busy for the whole 2 s window")),
        "{skipped}"
    );
    wait_until(LIMIT, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&format!(
                "schedule {patient}: Agent-1 is busy; waiting up to 600 s"
            ))
    });
    assert_eq!(count(&root, patient, "sent"), 0, "sent to a busy agent");
    assert_eq!(count(&root, patient, "skipped"), 0);
    std::fs::remove_file(tmux.flag("Agent-1", "busy")).unwrap();
    wait_until(LIMIT, || count(&root, patient, "sent") == 1);
    wait_until(LIMIT, || {
        tmux.submitted("Agent-1")
            .iter()
            .any(|s| s["text"].as_str().is_some_and(|t| t.contains("standup")))
    });
    let texts = |t: &str| {
        tmux.submitted("Agent-1")
            .iter()
            .filter(|s| s["text"].as_str().is_some_and(|x| x.contains(t)))
            .count()
    };
    assert_eq!(texts("standup"), 1);
    assert_eq!(texts("brief"), 0, "a skipped firing went out");
    assert_eq!(count(&root, brief, "sent"), 0);
    drop(service);
}
