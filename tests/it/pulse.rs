//! The pulse through a real `acp run`: a quiet agent is nudged once per
//! quiet spell (across a restart too), a busy one never, quiet hours hold
//! the nudge until they end, a tmux pane that keeps changing is a busy
//! agent, and the person is told in the agent's Discord thread.
//!
//! "Once" is checked against a witness: another agent whose new spell
//! began after the first nudge. When the witness is nudged, the loop has
//! looked again at every agent past its due time.

use std::io::BufRead;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Root, stderr, stdout, wait_until};

const LIMIT: Duration = Duration::from_secs(60);

/// The pulse on: an agent quiet for `minutes` is nudged.
fn pulse_after(root: &Root, minutes: &str) {
    root.edit_config(
        "# after_minutes = 30",
        &format!("after_minutes = {minutes}"),
    );
}

/// The messages from the pulse to `agent`, newest first (whatever their
/// delivery's state).
fn nudges(root: &Root, agent: &str) -> Vec<Value> {
    let out = root.run(&[
        "--json", "inbox", "list", "--agent", agent, "--limit", "1000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter()
        .filter(|m| m["message"]["from"] == "pulse")
        .collect()
}

/// How many files in `agent`'s inbox carry a nudge.
fn nudge_files(root: &Root, agent: &str) -> usize {
    let ids: Vec<String> = nudges(root, agent)
        .iter()
        .map(|m| m["message"]["id"].as_str().unwrap().to_owned())
        .collect();
    root.inbox_ids(agent)
        .iter()
        .filter(|(id, _)| ids.contains(id))
        .map(|(_, n)| n)
        .sum()
}

/// `acp send --to AGENT --wait BODY`: activity, delivered.
fn send(root: &Root, agent: &str, body: &str) -> String {
    let out = root.run(&["send", "--to", agent, "--wait", body]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    stdout(&out).lines().next().unwrap().trim().to_owned()
}

/// Keeps an agent busy: a message delivered to it, one after another,
/// until stopped.
struct Busy {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Busy {
    /// Messages delivered to `agent`, one after another.
    fn messages(root: &Root, agent: &str) -> Self {
        let agent = agent.to_owned();
        Self::start(root, move |acp, n| {
            acp.args(["send", "--to", &agent, "--wait", &format!("job {n}")])
                .env_remove("ACP_AGENT")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    }

    /// The tool-use hook events of an agent at work (Claude Code's
    /// `PreToolUse`), one after another: its state stays `working`.
    fn hooks(root: &Root, agent: &str) -> Self {
        let agent = agent.to_owned();
        Self::start(root, move |acp, n| {
            let event = serde_json::json!({
                "hook_event_name": "PreToolUse",
                "session_id": "s1",
                "tool_name": "Bash",
                "tool_input": {"command": format!("make test-{n}")},
            });
            let mut child = acp
                .env("ACP_AGENT", &agent)
                .arg("hook")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), event.to_string().as_bytes())
                .unwrap();
            drop(child.stdin.take());
            child.wait_with_output().unwrap()
        })
    }

    /// Runs `each` (given an `acp --root ROOT` command and a count) until
    /// stopped.
    fn start(
        root: &Root,
        each: impl Fn(&mut std::process::Command, usize) -> std::process::Output + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, path) = (Arc::clone(&stop), root.path().to_owned());
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !flag.load(Ordering::Relaxed) {
                let mut acp = std::process::Command::new(env!("CARGO_BIN_EXE_acp"));
                acp.arg("--root").arg(&path);
                let out = each(&mut acp, n);
                assert!(out.status.success(), "{}", stderr(&out));
                n += 1;
            }
            n
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; how many messages it sent.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_quiet_agent_is_nudged_once_per_spell_and_a_busy_one_never() {
    let root = Root::new(4);
    root.fast();
    pulse_after(&root, "0.1");
    let service = root.service();
    // Agent-2 is given work, Agent-4 uses tools (its hook says so).
    let busy = Busy::messages(&root, "Agent-2");
    let tools = Busy::hooks(&root, "Agent-4");
    // Agents 1 and 3 do nothing: each gets one nudge, delivered.
    wait_until(LIMIT, || {
        ["Agent-1", "Agent-3"]
            .iter()
            .all(|a| nudge_files(&root, a) == 1)
    });
    let first = nudges(&root, "Agent-1");
    assert_eq!(first.len(), 1, "{first:?}");
    let body = first[0]["message"]["body"].as_str().unwrap();
    assert!(
        body.starts_with("You have been quiet for ")
            && body.contains("If you are blocked, say what you need"),
        "{body}"
    );
    assert_eq!(first[0]["message"]["kind"], "system");
    // Agent-3 works again: a new spell, a second nudge after it.
    send(&root, "Agent-3", "back to work");
    wait_until(LIMIT, || nudge_files(&root, "Agent-3") == 2);
    // Meanwhile the loop looked at Agent-1 again and again: still one.
    assert_eq!(nudges(&root, "Agent-1").len(), 1);
    assert_eq!(nudge_files(&root, "Agent-1"), 1);
    // Agents 2 and 4 were never quiet long enough.
    assert_eq!(nudges(&root, "Agent-2"), Vec::<Value>::new());
    assert_eq!(nudges(&root, "Agent-4"), Vec::<Value>::new());
    assert!(busy.stop() > 0);
    assert!(tools.stop() > 0);

    // The activity feed shows the nudge as it shows any message.
    let nudge = first[0]["message"]["id"].as_str().unwrap().to_owned();
    let mut watch = root
        .acp()
        .args(["watch", "--since", "1h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wanted = format!("{nudge} pulse → Agent-1");
    let mut shown = String::new();
    while !shown.contains(&wanted) {
        let line = rx.recv_timeout(LIMIT).unwrap_or_else(|_| panic!("{shown}"));
        shown.push_str(&line);
        shown.push('\n');
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("nudged a quiet agent"), "{log}");
}

#[test]
fn a_spell_is_nudged_once_across_a_restart() {
    let root = Root::new(2);
    root.fast();
    pulse_after(&root, "0.05");
    // Agent-1's last activity: a message delivered before acp run starts.
    send(&root, "Agent-1", "the task");
    let service = root.service();
    wait_until(LIMIT, || nudge_files(&root, "Agent-1") == 1);
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    let _service = root.service();
    // The witness: Agent-2's new spell is due after Agent-1's was seen
    // again by the new acp run.
    let before = nudges(&root, "Agent-2").len();
    send(&root, "Agent-2", "something new");
    wait_until(LIMIT, || nudges(&root, "Agent-2").len() > before);
    assert_eq!(nudges(&root, "Agent-1").len(), 1, "nudged again");
    assert_eq!(nudge_files(&root, "Agent-1"), 1);
    // `acp agents` says so.
    let shown = stdout(&root.run(&["agents"]));
    let agent_1 = shown.split("Agent-2").next().unwrap();
    assert!(
        agent_1.contains("  pulse:    quiet for ")
            && agent_1.contains("(last: a message delivered to it), nudged at "),
        "{shown}"
    );
}

/// `HH:MM` in UTC, `minutes` from now.
fn utc_in(minutes: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(minutes))
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .strftime("%H:%M")
        .to_string()
}

#[test]
fn quiet_hours_hold_the_nudge_until_they_end_then_it_comes_once() {
    let root = Root::new(2);
    root.fast();
    pulse_after(&root, "0.05");
    root.edit_config("# time_zone = \"Europe/Berlin\"", "time_zone = \"UTC\"");
    let hours = format!("{}-{}", utc_in(-60), utc_in(60));
    root.edit_config(
        "# quiet_hours = \"22:00-07:00\"",
        &format!("quiet_hours = \"{hours}\""),
    );
    let _service = root.service();
    let log = || std::fs::read_to_string(root.path().join("service.log")).unwrap();
    // The loop found both quiet long enough, and held them.
    wait_until(LIMIT, || {
        let log = log();
        ["Agent-1", "Agent-2"].iter().all(|a| {
            log.lines()
                .any(|l| l.contains("in the quiet hours") && l.contains(a))
        })
    });
    assert!(nudges(&root, "Agent-1").is_empty());
    assert!(nudges(&root, "Agent-2").is_empty());
    // The quiet hours end (acp run reloads the edited file): one nudge each.
    root.edit_config(
        &format!("quiet_hours = \"{hours}\""),
        &format!("quiet_hours = \"{}-{}\"", utc_in(120), utc_in(180)),
    );
    wait_until(LIMIT, || {
        nudge_files(&root, "Agent-1") == 1 && nudge_files(&root, "Agent-2") == 1
    });
    send(&root, "Agent-2", "go on");
    wait_until(LIMIT, || nudges(&root, "Agent-2").len() == 2);
    assert_eq!(nudges(&root, "Agent-1").len(), 1);
}

#[test]
fn a_tmux_pane_that_keeps_changing_is_busy_and_one_that_stands_still_is_quiet() {
    use crate::tmux::{Tmux, tmux_root};
    let tmux = Tmux::start(&["Agent-1", "Agent-2"]);
    let root = tmux_root(&tmux, &[("Agent-1", ""), ("Agent-2", "")]);
    pulse_after(&root, "0.05");
    // Both work; only Agent-1's screen shows it (its timer goes on).
    std::fs::write(tmux.flag("Agent-1", "busy"), "spin").unwrap();
    std::fs::write(tmux.flag("Agent-2", "busy"), "").unwrap();
    wait_until(LIMIT, || {
        tmux.screen("Agent-1").contains("working... 2")
            && tmux.screen("Agent-2").contains("working...")
    });
    let _service = root.service();
    // Agent-2's pane stands still: quiet, nudged.
    wait_until(LIMIT, || nudges(&root, "Agent-2").len() == 1);
    assert!(
        nudges(&root, "Agent-1").is_empty(),
        "a pane that changes is an agent at work"
    );
    // Agent-1 stops and its pane stands still: then it is quiet too.
    std::fs::remove_file(tmux.flag("Agent-1", "busy")).unwrap();
    wait_until(LIMIT, || nudges(&root, "Agent-1").len() == 1);
    // Its nudge is pasted into its pane (the pane changing then is the
    // nudge arriving, not a new spell).
    wait_until(LIMIT, || {
        tmux.submitted("Agent-1")
            .iter()
            .any(|s| s["text"].as_str().is_some_and(|t| t.contains("quiet for")))
    });
    std::fs::remove_file(tmux.flag("Agent-2", "busy")).unwrap();
    let before = nudges(&root, "Agent-2").len();
    send(&root, "Agent-2", "a new task");
    wait_until(LIMIT, || nudges(&root, "Agent-2").len() > before);
    assert_eq!(nudges(&root, "Agent-1").len(), 1);
}

#[test]
fn the_person_is_told_in_the_agents_thread_once() {
    use crate::outbox::{swarm, token_in_dotenv};
    use crate::standin::StandIn;
    let standin = StandIn::start();
    let root = Root::new(3);
    root.fast();
    swarm(&root);
    root.edit_config("agent_threads = false", "agent_threads = true");
    token_in_dotenv(&root);
    pulse_after(&root, "0.05");
    root.edit_config(
        "# agents = [\"Agent-1\"]",
        "agents = [\"Agent-1\", \"Agent-3\"]",
    );
    let _bot = crate::discord::start(&root, &standin);
    wait_until(LIMIT, || {
        nudges(&root, "Agent-1").len() == 1 && nudges(&root, "Agent-3").len() == 1
    });
    let nudge = nudges(&root, "Agent-1")[0]["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let told = |posts: &[crate::standin::Post], id: &str| {
        posts
            .iter()
            .filter(|p| p.content.contains("💤 quiet for") && p.content.contains(id))
            .count()
    };
    let posts = standin.wait_posts(LIMIT, |p| told(p, &nudge) == 1);
    let thread = standin
        .threads()
        .into_iter()
        .find(|(_, _, name)| name == "Agent-1")
        .map(|(_, id, _)| id)
        .expect("Agent-1's thread");
    let post = posts.iter().find(|p| p.content.contains(&nudge)).unwrap();
    assert_eq!(post.channel, thread, "{post:?}");
    assert!(
        post.content.starts_with("**Agent-1**: 💤 quiet for")
            && post
                .content
                .contains("nothing seen of it since acp run started"),
        "{post:?}"
    );
    // Agent-3 works again and is nudged again: Agent-1 was looked at
    // meanwhile (its note, posted as its own, is not its activity).
    send(&root, "Agent-3", "more");
    wait_until(LIMIT, || nudges(&root, "Agent-3").len() == 2);
    assert_eq!(nudges(&root, "Agent-1").len(), 1);
    assert_eq!(told(&standin.posts(), &nudge), 1);
    // Agent-2 is not in [pulse] agents.
    assert!(nudges(&root, "Agent-2").is_empty());
    standin.assert_no_violations();
}

#[test]
fn an_agent_waiting_for_the_person_is_not_nudged() {
    use crate::approvals::hook_now;
    let root = Root::new(2);
    root.fast();
    pulse_after(&root, "0.05");
    // Agent-1 finished its turn (Claude Code's Stop hook): it is done and
    // waits for what is next, the person's turn.
    let stop = serde_json::json!({
        "hook_event_name": "Stop",
        "session_id": "s1",
        "last_assistant_message": "Deployed to staging.",
    });
    hook_now(&root, "Agent-1", &stop);
    let _service = root.service();
    // Agent-2, quiet as long, is nudged; Agent-1 is not.
    wait_until(LIMIT, || nudges(&root, "Agent-2").len() == 1);
    let before = nudges(&root, "Agent-2").len();
    send(&root, "Agent-2", "and now?");
    wait_until(LIMIT, || nudges(&root, "Agent-2").len() > before);
    assert!(nudges(&root, "Agent-1").is_empty());
    // Given its next task it works, then goes quiet: nudged.
    let prompt = serde_json::json!({
        "hook_event_name": "UserPromptSubmit",
        "session_id": "s1",
        "prompt": "next: the release notes",
    });
    hook_now(&root, "Agent-1", &prompt);
    wait_until(LIMIT, || nudges(&root, "Agent-1").len() == 1);
}
