// Over 400 lines: the small everyday commands, each a story against the real binary.

//! Small things people reach for: `acp retry` (by the command line and the
//! API, through `acp run`), ids given by a unique prefix, `acp config
//! show`, and `acp inbox list` for the agent in `ACP_AGENT`.

use std::fs;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Root, stderr, stdout, wait_until};
use crate::web::{CI_TOKEN, Spec, serve_env};

/// An API token bound to Agent-2, which may send.
const AGENT2_TOKEN: &str = "agent-2-token-0123456789abcdef";

const LIMIT: Duration = Duration::from_secs(30);

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn fails_saying(out: &Output, code: i32, says: &[&str]) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    for s in says {
        assert!(stderr(out).contains(s), "{s:?} not in: {}", stderr(out));
    }
}

/// Puts a file where `agent`'s inbox goes: inbox delivery fails (a real
/// I/O error, retried) until [`unblock`].
fn block(root: &Root, agent: &str) {
    let inbox = root.inbox(agent);
    let _ = fs::remove_dir_all(&inbox);
    fs::write(&inbox, "in the way").unwrap();
}

fn unblock(root: &Root, agent: &str) {
    fs::remove_file(root.inbox(agent)).unwrap();
}

/// Sends `body` to `agent`; returns the id printed.
fn send(root: &Root, agent: &str, body: &str) -> String {
    let out = root.run(&["send", "--to", agent, body]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().next().unwrap().to_owned()
}

/// The message's deliveries as `acp inbox read --json` shows them.
fn deliveries(root: &Root, id: &str) -> Vec<Value> {
    json_of(&root.run(&["--json", "inbox", "read", id]))["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the message's one delivery is `state` after `attempts`.
fn wait_for_state(root: &Root, id: &str, state: &str, attempts: u64) {
    wait_until(LIMIT, || {
        let d = deliveries(root, id);
        d[0]["state"] == state && d[0]["attempts"] == attempts
    });
}

/// The attempt number and outcome of each method tried, in order.
fn tried(delivery: &Value) -> Vec<(u64, String)> {
    delivery["tried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["attempt"].as_u64().unwrap(),
                t["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn retries_audited(root: &Root) -> Vec<(String, String)> {
    json_of(&root.run(&["--json", "audit"]))
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "message.retry")
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_failed_delivery_is_retried_through_acp_run_by_the_command_line_and_the_api() {
    let root = Root::new(2);
    root.fast()
        .edit_config("max_attempts = 5", "max_attempts = 2");
    block(&root, "Agent-1");
    let web = serve_env(
        &root,
        &format!("ACP_API_TOKENS=ci:send={CI_TOKEN},two:send@Agent-2={AGENT2_TOKEN}\n"),
    );
    let spec = Spec::of(&web);
    let first = send(&root, "Agent-1", "first, lost at first");
    let second = send(&root, "Agent-1", "second, lost at first");
    wait_for_state(&root, &first, "failed", 2);
    wait_for_state(&root, &second, "failed", 2);
    let out = root.run(&["status"]);
    assert!(
        stdout(&out).contains("`acp retry ID` queues one again"),
        "{}",
        stdout(&out)
    );

    // An agent's token retries only what its agent sent.
    let (code, problem) = web.call_as(
        AGENT2_TOKEN,
        reqwest::Method::POST,
        &format!("/api/v1/messages/{second}/retry"),
        Some(&json!({})),
    );
    assert_eq!(code, 403, "{problem}");
    spec.check("post", "/messages/{id}/retry", 403, &problem);
    assert_eq!(deliveries(&root, &second)[0]["state"], "failed");

    // Retried while the cause stands: two more attempts (the budget counts
    // from the retry), then failed again, the old attempts kept.
    let (code, body) = web.call_as(
        CI_TOKEN,
        reqwest::Method::POST,
        &format!("/api/v1/messages/{second}/retry"),
        Some(&json!({})),
    );
    assert_eq!(code, 200, "{body}");
    spec.check("post", "/messages/{id}/retry", 200, &body);
    assert_eq!(
        body["queued"],
        json!([{"message_id": second, "agent": "Agent-1", "attempts": 2}])
    );
    wait_for_state(&root, &second, "failed", 4);

    // The cause fixed, the command line retries the first by a prefix of
    // its id and waits: `acp run` delivers it.
    unblock(&root, "Agent-1");
    let out = root.run(&["retry", &first[..16], "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{first}: queued again for Agent-1")),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Agent-1: delivered by inbox"),
        "{}",
        stdout(&out)
    );
    let d = deliveries(&root, &first);
    assert_eq!(d[0]["state"], "delivered");
    assert_eq!(d[0]["attempts"], 3);
    assert_eq!(
        tried(&d[0]),
        [
            (1, "transient".to_owned()),
            (2, "transient".to_owned()),
            (3, "ok".to_owned())
        ]
    );
    assert_eq!(root.inbox_ids("Agent-1").get(&first), Some(&1));

    // Over the API too, then retrying what was delivered is refused (409,
    // saying so) and changes nothing.
    let (code, _) = web.call_as(
        CI_TOKEN,
        reqwest::Method::POST,
        &format!("/api/v1/messages/{second}/retry"),
        Some(&json!({"agent": "Agent-1"})),
    );
    assert_eq!(code, 200);
    wait_for_state(&root, &second, "delivered", 5);
    let (code, problem) = web.call_as(
        CI_TOKEN,
        reqwest::Method::POST,
        &format!("/api/v1/messages/{second}/retry"),
        Some(&json!({})),
    );
    assert_eq!(code, 409, "{problem}");
    spec.check("post", "/messages/{id}/retry", 409, &problem);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("no failed delivery") && detail.contains("delivered by inbox"),
        "{detail}"
    );
    let out = root.run(&["retry", &first]);
    fails_saying(
        &out,
        2,
        &["no failed delivery to retry", "Agent-1: delivered"],
    );
    assert_eq!(deliveries(&root, &first)[0]["attempts"], 3);
    let unknown = "01JDQ3Z5X8J6Y4F2K9M0N1P2Q3";
    let (code, problem) = web.call_as(
        CI_TOKEN,
        reqwest::Method::POST,
        &format!("/api/v1/messages/{unknown}/retry"),
        Some(&json!({})),
    );
    assert_eq!(code, 404, "{problem}");
    spec.check("post", "/messages/{id}/retry", 404, &problem);

    // Each retry is in the audit log, by who asked.
    let mut audited = retries_audited(&root);
    audited.sort();
    let actor = audited
        .iter()
        .find(|(a, _)| a.starts_with("cli:"))
        .unwrap()
        .0
        .clone();
    let mut want = vec![
        (actor, first.clone()),
        ("http:ci".to_owned(), second.clone()),
        ("http:ci".to_owned(), second.clone()),
    ];
    want.sort();
    assert_eq!(audited, want);
    assert_eq!(root.inbox_ids("Agent-1").get(&second), Some(&1));
}

#[test]
fn retry_failed_takes_one_agents_failures_and_skips_an_agent_gone() {
    let root = Root::new(3);
    root.fast()
        .edit_config("max_attempts = 5", "max_attempts = 1");
    for agent in ["Agent-1", "Agent-2", "Agent-3"] {
        block(&root, agent);
    }
    // No `acp run`: each send delivers its own message, fails at once.
    let ones = [
        send(&root, "Agent-1", "one a"),
        send(&root, "Agent-1", "one b"),
    ];
    let two = send(&root, "Agent-2", "two");
    let three = send(&root, "Agent-3", "three");
    for id in ones.iter().chain([&two, &three]) {
        assert_eq!(deliveries(&root, id)[0]["state"], "failed");
    }

    unblock(&root, "Agent-1");
    let out = root.run(&["retry", "--failed", "--agent", "Agent-1", "--since", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for id in &ones {
        assert!(
            stdout(&out).contains(&format!(
                "{id} -> Agent-1: queued again (after 1 attempt(s))"
            )),
            "{}",
            stdout(&out)
        );
        assert!(
            stdout(&out).contains(&format!("{id} -> Agent-1: delivered by inbox")),
            "{}",
            stdout(&out)
        );
        assert_eq!(deliveries(&root, id)[0]["state"], "delivered");
    }
    assert_eq!(deliveries(&root, &two)[0]["state"], "failed");
    let out = root.run(&["retry", "--failed", "--agent", "Agent-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "no failed deliveries to retry");
    let bad = root.run(&["retry", "--failed", "--since", "soon"]);
    fails_saying(&bad, 2, &["not a duration"]);

    // Agent-3 leaves the config: its message cannot be retried, and says
    // why; the rest still can.
    root.edit_config(
        "\n[[agents]]\nid = \"Agent-3\"\nname = \"Agent-3\"\nrole = \"General engineer\"\n",
        "\n",
    );
    let out = root.run(&["retry", &three]);
    fails_saying(&out, 2, &["Agent-3", "no longer in config/acp.toml"]);
    unblock(&root, "Agent-2");
    let out = root.run(&["--json", "retry", "--failed"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report["queued"],
        json!([{"message_id": two, "agent": "Agent-2", "attempts": 1}])
    );
    assert_eq!(report["skipped"][0]["message_id"], three);
    assert!(
        report["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("no longer in config/acp.toml"),
        "{report}"
    );
    assert_eq!(report["deliveries"][&two][0]["state"], "delivered");
    assert_eq!(deliveries(&root, &three)[0]["state"], "failed");
}

#[test]
fn retries_at_the_same_moment_queue_a_delivery_once() {
    let root = Root::new(1);
    root.fast()
        .edit_config("max_attempts = 5", "max_attempts = 1");
    block(&root, "Agent-1");
    let id = send(&root, "Agent-1", "retried by four at once");
    assert_eq!(deliveries(&root, &id)[0]["state"], "failed");
    unblock(&root, "Agent-1");
    let racers: Vec<_> = (0..4)
        .map(|_| {
            root.acp()
                .args(["retry", &id])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        outs.iter().map(stderr).collect::<Vec<_>>()
    );
    for lost in outs.iter().filter(|o| !o.status.success()) {
        // Told what the winner left: queued, being delivered, or delivered.
        fails_saying(lost, 2, &["no failed delivery to retry", "Agent-1: "]);
    }
    assert_eq!(retries_audited(&root).len(), 1);
    let d = deliveries(&root, &id);
    assert_eq!(d[0]["state"], "delivered");
    assert_eq!(d[0]["attempts"], 2);
    assert_eq!(root.inbox_ids("Agent-1").get(&id), Some(&1));
}

/// Stores a message to Agent-1 with the given id, as any door would.
fn store_with_id(root: &Root, id: &str, body: &str) {
    let mut message = acp::model::Draft {
        from: "tester".into(),
        to: acp::model::Recipient::Agent("Agent-1".parse().unwrap()),
        kind: acp::model::Kind::Human,
        priority: acp::model::Priority::Normal,
        body: body.into(),
        tags: vec![],
        reply_to: None,
    }
    .build(16 * 1024)
    .unwrap();
    message.id = id.parse().unwrap();
    let store = acp::store::Store::open(&root.path().join("data/acp.db")).unwrap();
    let submission = acp::store::Submission {
        message,
        via: acp::model::Via::Auto,
        to: vec![acp::model::Destination::Agent("Agent-1".parse().unwrap())],
        audit: None,
    };
    store.accept(&[&submission]).unwrap();
}

#[test]
fn message_ids_are_taken_by_a_unique_prefix_of_eight_or_more() {
    let root = Root::new(1);
    // Ids start with their time: two made in the same second share their
    // first characters. These two share 20.
    let a = "01JDQ3Z5X8J6Y4F2K9M0AAAAAA";
    let b = "01JDQ3Z5X8J6Y4F2K9M0BBBBBB";
    store_with_id(&root, a, "the a one");
    store_with_id(&root, b, "the b one");

    let out = root.run(&["inbox", "read", &a[..21].to_lowercase()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("id:       {a}")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("the a one"), "{}", stdout(&out));

    let out = root.run(&["inbox", "read", &a[..12]]);
    fails_saying(
        &out,
        2,
        &[
            "2 message ids start with \"01JDQ3Z5X8J6\"",
            "give more of the id",
            a,
            b,
        ],
    );
    let out = root.run(&["inbox", "read", &a[..6]]);
    fails_saying(&out, 2, &["too short", "at least 8 characters"]);
    let out = root.run(&["inbox", "read", "01JDQ3Z5X8J6Y4F2K9M0C"]);
    fails_saying(
        &out,
        2,
        &["no message id starts with \"01JDQ3Z5X8J6Y4F2K9M0C\""],
    );
    let out = root.run(&["inbox", "read", "not-an-id!"]);
    fails_saying(&out, 2, &["is not a message id"]);

    // Every command that takes a message id takes a prefix.
    let out = root.run(&[
        "send",
        "--to",
        "Agent-1",
        "--reply-to",
        &b[..21],
        "answering b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer = stdout(&out).lines().next().unwrap().to_owned();
    let read = json_of(&root.run(&["--json", "inbox", "read", &answer]));
    assert_eq!(read["message"]["reply_to"], b);
    // (Delivered by the send itself: no `acp run` here.)
    let out = root.run(&["inbox", "ack", &answer[..answer.len() - 2]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("{answer} acknowledged")),
        "{}",
        stdout(&out)
    );
    let out = root.run(&["retry", &a[..12]]);
    fails_saying(&out, 2, &["2 message ids start with"]);
}

#[test]
fn config_show_says_where_each_setting_came_from_and_masks_secrets() {
    let root = Root::new(1);
    root.edit_config("max_attempts = 5", "max_attempts = 3");
    let secret = "discord-bot-token-do-not-print";
    let api = "api-token-0123456789-do-not-print";
    fs::write(
        root.path().join(".env"),
        format!("DISCORD_TOKEN={secret}\nACP_API_TOKENS=ci:send={api}\n"),
    )
    .unwrap();
    let text = fs::read_to_string(root.path().join("config/acp.toml")).unwrap();
    let line_of = |start: &str| text.lines().position(|l| l.starts_with(start)).unwrap() + 1;
    let line = line_of("max_attempts = 3");
    let show = |json: bool| {
        let mut cmd = root.acp();
        cmd.env("ACP_POLL_MS", "70").env_remove("DISPLAY");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.args(["config", "show"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        for hidden in [secret, api] {
            assert!(!stdout(&out).contains(hidden), "{}", stdout(&out));
            assert!(!stderr(&out).contains(hidden), "{}", stderr(&out));
        }
        stdout(&out)
    };
    let table = show(false);
    let row = |key: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("delivery.max_attempts"),
        format!("delivery.max_attempts = 3 # file (config/acp.toml:{line})")
    );
    assert_eq!(
        row("delivery.poll_ms"),
        "delivery.poll_ms = 70 # environment (ACP_POLL_MS)"
    );
    assert_eq!(
        row("discord.guild_id"),
        "discord.guild_id = (unset) # default"
    );
    assert_eq!(
        row("discord.token"),
        "discord.token = \"[redacted]\" # environment (DISCORD_TOKEN, from .env)"
    );
    assert_eq!(
        row("http.tokens"),
        "http.tokens = [\"ci:send=[redacted]\"] # environment (ACP_API_TOKENS, from .env)"
    );
    assert_eq!(
        row("root"),
        format!("root = \"{}\" # flag (--root)", root.path().display())
    );

    let doc: Value = serde_json::from_str(&show(true)).unwrap();
    assert_eq!(
        doc["delivery.max_attempts"],
        json!({"value": 3, "source": "file", "line": line})
    );
    assert_eq!(
        doc["delivery.poll_ms"],
        json!({"value": 70, "source": "environment", "variable": "ACP_POLL_MS"})
    );
    assert_eq!(
        doc["delivery.batch_size"],
        json!({"value": 256, "source": "file", "line": line_of("batch_size = 256")})
    );
    assert_eq!(
        doc["agents[0].window_title"],
        json!({"value": null, "source": "default"})
    );
    assert_eq!(
        doc["discord.token"],
        json!({"value": "[redacted]", "source": "environment", "variable": "DISCORD_TOKEN", "from": ".env"})
    );
}

#[test]
fn inbox_list_is_for_the_agent_in_acp_agent_unless_told_otherwise() {
    let root = Root::new(2);
    let id = send(&root, "Agent-2", "for two");
    let list = |agent_env: Option<&str>, args: &[&str]| {
        let mut cmd = root.acp();
        if let Some(agent) = agent_env {
            cmd.env("ACP_AGENT", agent);
        }
        cmd.args(["inbox", "list"]).args(args).output().unwrap()
    };
    let out = list(Some("Agent-2"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&id), "{}", stdout(&out));
    assert!(stdout(&out).contains("for two"), "{}", stdout(&out));
    let out = list(Some("Agent-1"), &[]);
    assert_eq!(stdout(&out).trim(), "no messages for Agent-1");
    let out = list(Some("Agent-1"), &["--agent", "Agent-2"]);
    assert!(stdout(&out).contains("for two"), "{}", stdout(&out));
    // Neither: the person at the keyboard's own inbox (agents' answers).
    let out = list(None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("person:") && stdout(&out).contains("unread"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("for two"), "{}", stdout(&out));
}

#[test]
fn a_retried_message_from_discord_gets_its_new_receipt_in_the_channel() {
    use crate::discord::{OPERATOR, command, original_edit, start};
    let standin = crate::standin::StandIn::start();
    let root = Root::new(1);
    root.fast()
        .edit_config("max_attempts = 5", "max_attempts = 1");
    block(&root, "Agent-1");
    let _bot = start(&root, &standin);
    let from = standin.requests().len();
    let reply = command(
        &standin,
        400_000_000_000_000_090,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "lost, then found"}]),
        &[OPERATOR],
    );
    let id = reply["data"]["content"]
        .as_str()
        .unwrap()
        .split('`')
        .nth(1)
        .unwrap()
        .to_owned();
    let edit = original_edit(&standin, from, 400_000_000_000_000_090, LIMIT);
    let text = edit.body["content"].as_str().unwrap();
    assert!(text.contains("Agent-1: failed"), "{text}");

    unblock(&root, "Agent-1");
    let from = standin.requests().len();
    let out = root.run(&["retry", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let late = standin.wait_for(from, LIMIT, |r| {
        r.method == "POST" && r.path == format!("/channels/{}/messages", crate::standin::CHANNEL_ID)
    });
    let text = late.body["content"].as_str().unwrap();
    assert!(
        text.starts_with("Final receipt") && text.contains("✅ Agent-1: delivered by inbox"),
        "{text}"
    );
    assert_eq!(root.inbox_ids("Agent-1").get(&id), Some(&1));
    standin.assert_no_violations();
}

#[test]
fn prompts_are_answered_by_a_prefix_of_their_id() {
    use crate::approvals::{claude_request, hook, hook_answer, prompt_id, prompt_post};
    let standin = crate::standin::StandIn::start();
    let root = Root::new(1);
    root.fast();
    crate::outbox::token_in_dotenv(&root);
    crate::outbox::swarm(&root);
    let _bot = crate::discord::start(&root, &standin);
    let waiting = hook(&root, "Agent-1", &claude_request("cargo test", "s-9"));
    let id = prompt_id(&prompt_post(&standin, "Bash: cargo test"));
    let out = root.run(&["approve", &id[..7]]);
    fails_saying(&out, 2, &["too short to name a prompt", "at least 8"]);
    let out = root.run(&["approve", &id[..12].to_lowercase()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("prompt {id}: allowed by cli:")),
        "{}",
        stdout(&out)
    );
    let printed = hook_answer(waiting).unwrap();
    assert_eq!(
        printed["hookSpecificOutput"]["decision"]["behavior"],
        "allow"
    );
    standin.assert_no_violations();
}
