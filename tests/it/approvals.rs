//! Permission prompts answered from Discord, exactly once: a fake agent
//! runs `acp hook` with Claude Code's and Codex's documented JSON, the real
//! bot posts the prompt with buttons to the stand-in Discord, people press
//! them (as `MESSAGE_COMPONENT` interactions checked against Discord's
//! OpenAPI description), and the hook prints what the store decided. A
//! prompt left waiting pings the operators once; `/waiting`, the status
//! page and the metrics show who waits.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::discord::{Bot, OPERATOR, assert_ephemeral, command, dispatch, start};
use crate::outbox::{LIMIT, swarm, token_in_dotenv};
use crate::sec_misc::assert_nobody_pinged_but;
use crate::standin::{CHANNEL_ID, GatewayCmd, Post, Recorded, StandIn, button_press};
use crate::support::{Root, stderr, stdout, wait_until};
use crate::web::{address, parse_metrics, sample, scrape_openmetrics};

/// A root whose prompts wait `timeout` seconds, with the bot running.
fn approval_root(standin: &StandIn, timeout: u32) -> (Root, Bot) {
    approval_root_with(standin, timeout, &[])
}

/// [`approval_root`], with these lines of the config replaced first.
fn approval_root_with(standin: &StandIn, timeout: u32, edits: &[(&str, &str)]) -> (Root, Bot) {
    let root = Root::new(2);
    root.fast();
    token_in_dotenv(&root);
    swarm(&root);
    root.edit_config("timeout_secs = 600", &format!("timeout_secs = {timeout}"));
    for (from, to) in edits {
        root.edit_config(from, to);
    }
    let bot = start(&root, standin);
    (root, bot)
}

/// Claude Code's `PermissionRequest` for a Bash command.
pub(crate) fn claude_request(command: &str, session: &str) -> Value {
    json!({
        "session_id": session, "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
        "permission_mode": "default", "hook_event_name": "PermissionRequest",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "Run it"},
        "permission_suggestions": [{"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": command}], "behavior": "allow", "destination": "localSettings"}]
    })
}

/// `acp hook` as the agent runs it: the event on standard input.
pub(crate) fn hook(root: &Root, agent: &str, event: &Value) -> Child {
    hook_bytes(root, agent, event.to_string().as_bytes())
}

/// `acp hook` given `input` as it is.
fn hook_bytes(root: &Root, agent: &str, input: &[u8]) -> Child {
    let mut child = root
        .acp()
        .env("ACP_AGENT", agent)
        .arg("hook")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child
}

/// A hook event that answers at once; its standard output.
pub(crate) fn hook_now(root: &Root, agent: &str, event: &Value) -> String {
    let out = hook(root, agent, event).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// What a waiting hook printed once it ended (it must end by itself).
pub(crate) fn hook_answer(child: Child) -> Option<Value> {
    let started = Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < LIMIT, "acp hook never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    (!text.trim().is_empty()).then(|| serde_json::from_str(&text).unwrap())
}

/// The prompt's post in the swarm channel, once posted.
pub(crate) fn prompt_post(standin: &StandIn, says: &str) -> Post {
    let posts = standin.wait_posts(LIMIT, |posts| {
        posts
            .iter()
            .any(|p| p.content.contains("needs approval") && p.content.contains(says))
    });
    posts
        .into_iter()
        .find(|p| p.content.contains(says))
        .unwrap()
}

/// The buttons' custom ids on a post, by label.
pub(crate) fn buttons(post: &Post) -> Vec<(String, String)> {
    post.components[0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["label"].as_str().unwrap().to_owned(),
                b["custom_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub(crate) fn button(post: &Post, label: &str) -> String {
    buttons(post)
        .into_iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no {label} button on {post:?}"))
        .1
}

pub(crate) fn prompt_id(post: &Post) -> String {
    button(post, "Allow").split(':').nth(2).unwrap().to_owned()
}

pub(crate) fn open_prompts(root: &Root) -> Vec<Value> {
    let out = root.run(&["--json", "prompts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["prompts"].as_array().unwrap().clone()
}

pub(crate) fn state_of(root: &Root, agent: &str) -> String {
    let out = root.run(&["--json", "prompts"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == agent)
        .map(|a| a["state"].as_str().unwrap().to_owned())
        .unwrap()
}

/// Waits for the edit of post `id` in the swarm channel that says `says`.
pub(crate) fn edited(standin: &StandIn, id: u64, says: &str) -> Value {
    let path = format!("/channels/{CHANNEL_ID}/messages/{id}");
    standin
        .wait_for(0, LIMIT, |r| {
            r.method == "PATCH"
                && r.path == path
                && r.body["content"].as_str().unwrap_or("").contains(says)
        })
        .body
}

#[test]
fn two_people_press_at_once_and_one_decision_reaches_the_agent() {
    let standin = StandIn::start();
    let (root, _bot) = approval_root(&standin, 60);
    let waiting = hook(&root, "Agent-1", &claude_request("rm -rf build", "s-1"));
    let post = prompt_post(&standin, "Bash: rm -rf build");
    assert!(post.content.starts_with("**Agent-1**"), "{post:?}");
    let labels: Vec<String> = buttons(&post).into_iter().map(|(l, _)| l).collect();
    assert_eq!(
        labels,
        ["Allow", "Allow for this session", "Deny", "Show more"]
    );
    assert_eq!(state_of(&root, "Agent-1"), "needs_approval");

    // Someone without the operator role: refused, nothing decided.
    let reply = dispatch(
        &standin,
        3001,
        button_press(3001, &button(&post, "Allow"), post.id, CHANNEL_ID, &[], 61),
    );
    assert_ephemeral(&reply, "needs the operator level");
    assert_eq!(open_prompts(&root).len(), 1);
    // Show more: the whole command, to the presser alone.
    let reply = dispatch(
        &standin,
        3002,
        button_press(
            3002,
            &button(&post, "Show more"),
            post.id,
            CHANNEL_ID,
            &[OPERATOR],
            62,
        ),
    );
    assert_ephemeral(&reply, "rm -rf build");

    // Two operators press Allow and Deny at the same moment.
    let from = standin.requests().len();
    standin.gateway(GatewayCmd::Dispatch(
        "INTERACTION_CREATE",
        button_press(
            3003,
            &button(&post, "Allow"),
            post.id,
            CHANNEL_ID,
            &[OPERATOR],
            63,
        ),
    ));
    standin.gateway(GatewayCmd::Dispatch(
        "INTERACTION_CREATE",
        button_press(
            3004,
            &button(&post, "Deny"),
            post.id,
            CHANNEL_ID,
            &[OPERATOR],
            64,
        ),
    ));
    let answer = |id: u64| {
        standin
            .wait_for(from, LIMIT, |r| {
                r.method == "POST" && r.path == format!("/interactions/{id}/token-{id}/callback")
            })
            .body
    };
    let (a, b) = (answer(3003), answer(3004));
    let (won, lost) = if a["type"] == 7 { (a, b) } else { (b, a) };
    assert_eq!(won["type"], 7, "one press updates the post: {won}");
    assert_eq!(won["data"]["components"], json!([]), "{won}");
    assert_ephemeral(&lost, "already");
    let allowed = won["data"]["content"]
        .as_str()
        .unwrap()
        .contains("allowed by <@63>");
    let denied = won["data"]["content"]
        .as_str()
        .unwrap()
        .contains("denied by <@64>");
    assert!(allowed ^ denied, "{won}");

    // The agent gets the one decision the store kept.
    let printed = hook_answer(waiting).expect("the hook printed the decision");
    let behavior = &printed["hookSpecificOutput"]["decision"]["behavior"];
    assert_eq!(
        behavior,
        if allowed { "allow" } else { "deny" },
        "{printed}"
    );
    assert_eq!(
        printed["hookSpecificOutput"]["hookEventName"],
        "PermissionRequest"
    );
    assert!(open_prompts(&root).is_empty());
    assert_eq!(state_of(&root, "Agent-1"), "working");
    let audit = stdout(&root.run(&["audit"]));
    assert!(
        audit.contains("prompt allow") && audit.contains("prompt deny"),
        "{audit}"
    );
    standin.assert_no_violations();
}

#[test]
fn the_cli_the_terminal_and_the_clock_answer_too_and_the_post_says_so() {
    let standin = StandIn::start();
    let (root, _bot) = approval_root(&standin, 3);

    // acp approve --session: the hook echoes the suggestion for the
    // session; the post is edited, its buttons gone; a late deny is told.
    let waiting = hook(&root, "Agent-1", &claude_request("npm test", "s-2"));
    let post = prompt_post(&standin, "Bash: npm test");
    let id = prompt_id(&post);
    let out = root.run(&["approve", &id, "--session"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = hook_answer(waiting).unwrap();
    let decision = &printed["hookSpecificOutput"]["decision"];
    assert_eq!(decision["behavior"], "allow");
    assert_eq!(decision["updatedPermissions"][0]["destination"], "session");
    assert_eq!(
        decision["updatedPermissions"][0]["rules"][0]["ruleContent"],
        "npm test"
    );
    let edit = edited(&standin, post.id, "allowed for the session by `cli:");
    assert_eq!(edit["components"], json!([]));
    let out = root.run(&["deny", &id, "--reason", "too late"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("already allowed for the session by cli:"),
        "{}",
        stdout(&out)
    );

    // Codex (a turn id): no "allow for the session" button; a deny's
    // reason reaches the agent.
    let mut codex = claude_request("git push --force", "s-3");
    codex["turn_id"] = json!("turn-1");
    codex["model"] = json!("gpt-5");
    codex
        .as_object_mut()
        .unwrap()
        .remove("permission_suggestions");
    let waiting = hook(&root, "Agent-2", &codex);
    let post = prompt_post(&standin, "Bash: git push --force");
    assert!(!buttons(&post).iter().any(|(l, _)| l.contains("session")));
    let out = root.run(&["deny", &prompt_id(&post), "--reason", "not on main"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = hook_answer(waiting).unwrap();
    assert_eq!(
        printed["hookSpecificOutput"]["decision"]["behavior"],
        "deny"
    );
    assert_eq!(
        printed["hookSpecificOutput"]["decision"]["message"],
        "not on main"
    );
    edited(&standin, post.id, "denied by `cli:");

    // Answered at the terminal: the agent goes on in the same session, so
    // the waiting hook ends with nothing and the post says so.
    let waiting = hook(&root, "Agent-1", &claude_request("cargo build", "s-4"));
    let post = prompt_post(&standin, "Bash: cargo build");
    hook_now(
        &root,
        "Agent-1",
        &json!({"session_id": "s-4", "hook_event_name": "PostToolUse", "tool_name": "Bash"}),
    );
    assert_eq!(hook_answer(waiting), None);
    edited(&standin, post.id, "answered at the terminal");

    // Nobody answers: at the deadline the hook prints nothing (the
    // dialog stays) and the post says it timed out.
    let waiting = hook(&root, "Agent-1", &claude_request("make deploy", "s-5"));
    let post = prompt_post(&standin, "Bash: make deploy");
    assert_eq!(hook_answer(waiting), None);
    edited(&standin, post.id, "left unanswered");
    assert_eq!(state_of(&root, "Agent-1"), "needs_approval");

    // Done, once, with its last words.
    let stop = json!({"session_id": "s-5", "hook_event_name": "Stop", "stop_hook_active": false, "last_assistant_message": "Deployed to staging."});
    assert_eq!(hook_now(&root, "Agent-1", &stop), "");
    hook_now(&root, "Agent-1", &stop);
    let posts = standin.wait_posts(LIMIT, |posts| {
        posts
            .iter()
            .any(|p| p.content.contains("Deployed to staging."))
    });
    assert_eq!(
        posts
            .iter()
            .filter(|p| p.content.contains("Deployed to staging."))
            .count(),
        1
    );
    assert_eq!(state_of(&root, "Agent-1"), "done");
    standin.assert_no_violations();
}

#[test]
fn bad_hook_input_is_refused_and_prints_nothing() {
    let root = Root::new(1);
    for (input, says) in [
        ("not json", "not a JSON object"),
        ("{\"no\": \"event\"}", "no hook_event_name"),
    ] {
        let child = hook_bytes(&root, "Agent-1", input.as_bytes());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    // No agent to be found: said, with what to set.
    let out = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["--root"])
        .arg(root.path())
        .arg("hook")
        .env_remove("ACP_AGENT")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(br#"{"hook_event_name":"Stop","cwd":"/"}"#)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("set ACP_AGENT"), "{}", stderr(&out));
    // An agent's own shell may not answer prompts.
    let out = root
        .acp()
        .env("ACP_AGENT", "Agent-1")
        .args(["approve", "01JDQ3Z5X8J6Y4F2K9M0N1P2QR"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("answered by a person"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_message_the_agent_takes_is_marked_seen_by_it() {
    let root = Root::new(2);
    root.fast();
    let send = |body: &str| {
        let out = root.run(&["send", "--to", "Agent-1", "--wait", body]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).lines().next().unwrap().to_owned()
    };
    let by_id = send("run the migrations");
    let by_text = send("then restart the API");
    let untaken = send("and tell me when it is done");
    // Claude Code's UserPromptSubmit: one prompt names a message's id (as
    // acp's inbox file does), another carries a body whole.
    let submit = |prompt: String| json!({"session_id": "s", "hook_event_name": "UserPromptSubmit", "prompt": prompt});
    hook_now(
        &root,
        "Agent-1",
        &submit(format!("read the inbox: {by_id}")),
    );
    hook_now(&root, "Agent-1", &submit("then restart the API".into()));
    let read = |id: &str| {
        let out = root.run(&["--json", "inbox", "read", id]);
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()["deliveries"][0].clone()
    };
    assert!(read(&by_id)["seen_at"].is_string(), "{}", read(&by_id));
    assert!(read(&by_text)["seen_at"].is_string(), "{}", read(&by_text));
    assert!(
        read(&untaken).get("seen_at").is_none(),
        "{}",
        read(&untaken)
    );
    let text = stdout(&root.run(&["inbox", "read", &by_id]));
    assert!(text.contains("seen by the agent at"), "{text}");
    assert_eq!(state_of(&root, "Agent-1"), "working");
}

/// Someone the reminders ping besides the operator role.
const PINGED_USER: &str = "650000000000000009";

/// Whether `r` posted in the swarm channel in reply to Discord message
/// `post`.
fn replies_to(r: &Recorded, post: u64) -> bool {
    r.method == "POST"
        && r.path == format!("/channels/{CHANNEL_ID}/messages")
        && r.body["message_reference"]["message_id"]
            .as_str()
            .and_then(|id| id.parse::<u64>().ok())
            == Some(post)
}

/// The requests that posted reminders of the prompt posted as `post`.
fn reminders_of(standin: &StandIn, post: &Post) -> Vec<Recorded> {
    standin
        .requests()
        .into_iter()
        .filter(|r| replies_to(r, post.id))
        .collect()
}

/// Waits for the reminder of the prompt posted as `post`.
fn reminder(standin: &StandIn, post: &Post) -> Recorded {
    standin.wait_for(0, LIMIT, |r| replies_to(r, post.id))
}

#[test]
fn a_prompt_left_waiting_pings_the_operators_once_and_a_decided_one_pings_nobody() {
    let standin = StandIn::start();
    let (root, _bot) = approval_root_with(
        &standin,
        60,
        &[
            ("mention_after_secs = 300", "mention_after_secs = 4"),
            (
                "mention_users = []",
                &format!("mention_users = [{PINGED_USER}]"),
            ),
        ],
    );
    // Answered well within the delay: never a reminder.
    let answered = hook(&root, "Agent-2", &claude_request("git push --force", "s-c"));
    let answered_post = prompt_post(&standin, "Bash: git push --force");
    let out = root.run(&["deny", &prompt_id(&answered_post), "--reason", "not now"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(hook_answer(answered).is_some());

    // Left waiting: one reminder, in reply to the prompt's post, that may
    // ping exactly the operator role and the configured user.
    let waiting = hook(&root, "Agent-1", &claude_request("rm -rf build", "s-a"));
    let post = prompt_post(&standin, "Bash: rm -rf build");
    let id = prompt_id(&post);
    let first = reminder(&standin, &post);
    assert_eq!(
        first.body["allowed_mentions"],
        json!({"parse": [], "roles": [OPERATOR], "users": [PINGED_USER]}),
        "{}",
        first.body
    );
    let content = first.body["content"].as_str().unwrap();
    for want in [
        format!("<@&{OPERATOR}>"),
        format!("<@{PINGED_USER}>"),
        "Agent-1 has waited".to_owned(),
        "Bash: rm -rf build".to_owned(),
        id.clone(),
    ] {
        assert!(content.contains(&want), "{want} not in {content}");
    }
    let landed = standin
        .posts()
        .into_iter()
        .find(|p| p.reference == Some(post.id.to_string()))
        .unwrap();
    assert_eq!(landed.channel, CHANNEL_ID);

    // A later prompt's reminder means the reminders went round again
    // while the first still waited: it was not reminded twice.
    let later = hook(&root, "Agent-2", &claude_request("make deploy", "s-b"));
    let later_post = prompt_post(&standin, "Bash: make deploy");
    reminder(&standin, &later_post);
    assert_eq!(reminders_of(&standin, &post).len(), 1);
    assert_eq!(reminders_of(&standin, &later_post).len(), 1);
    assert!(reminders_of(&standin, &answered_post).is_empty());
    assert!(
        standin
            .posts()
            .iter()
            .filter(|p| p.content.contains("has waited"))
            .count()
            == 2
    );

    // Deciding ends it; nothing else acp sent could ping anyone.
    for (prompt, child) in [(&id, waiting), (&prompt_id(&later_post), later)] {
        let out = root.run(&["approve", prompt]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(hook_answer(child).is_some());
    }
    let reply = command(
        &standin,
        410_000_000_000_000_001,
        "waiting",
        &json!([]),
        &[],
    );
    assert_eq!(reply["data"]["content"], "✅ nobody is waiting", "{reply}");
    let checked = assert_nobody_pinged_but(&standin, |r| {
        replies_to(r, post.id) || replies_to(r, later_post.id)
    });
    // The three prompts' posts and /waiting's reply at least.
    assert!(checked >= 4, "only {checked} messages were checked");
    standin.assert_no_violations();
}

#[test]
fn who_waits_shows_first_on_waiting_the_status_page_and_the_metrics() {
    let standin = StandIn::start();
    let (root, _bot) = approval_root_with(
        &standin,
        60,
        &[("mention_after_secs = 300", "mention_after_secs = 0")],
    );
    let web = address(&root);
    let client = reqwest::blocking::Client::builder()
        .timeout(LIMIT)
        .build()
        .unwrap();
    let get = |path: &str| {
        client
            .get(format!("{web}{path}"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };

    // Agent-1 asks first; Agent-2 is done after it.
    let waiting = hook(&root, "Agent-1", &claude_request("rm -rf build", "s-1"));
    let post = prompt_post(&standin, "Bash: rm -rf build");
    let id = prompt_id(&post);
    let stop = json!({"session_id": "s-2", "hook_event_name": "Stop", "stop_hook_active": false, "last_assistant_message": "Released 2.1."});
    hook_now(&root, "Agent-2", &stop);

    // /waiting: both, the longest waiting first, with the prompt.
    let reply = command(
        &standin,
        420_000_000_000_000_001,
        "waiting",
        &json!([]),
        &[],
    );
    assert_eq!(reply["type"], 4, "{reply}");
    let text = reply["data"]["content"].as_str().unwrap();
    let (one, two) = (text.find("**Agent-1**"), text.find("**Agent-2**"));
    assert!(one.is_some() && two.is_some() && one < two, "{text}");
    for want in [
        "2 waiting for a person",
        "needs approval",
        "Bash: rm -rf build",
        id.as_str(),
        "done",
        "Released 2.1.",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }

    // The page: who waits, above the rest; each agent's state in its row.
    let page = get("/");
    let (waits, agents) = (
        page.find("id=\"waiting\"").expect("a waiting section"),
        page.find("id=\"agents\"").unwrap(),
    );
    assert!(waits < agents, "{page}");
    let section = &page[waits..agents];
    for want in [
        "<b>Agent-1</b>",
        "needs_approval",
        "Bash: rm -rf build",
        id.as_str(),
        "<b>Agent-2</b>",
        "Released 2.1.",
    ] {
        assert!(section.contains(want), "{want} not in {section}");
    }
    assert!(
        section.find("Agent-1") < section.find("Agent-2"),
        "{section}"
    );
    let rows = &page[agents..];
    let row = |agent: &str| {
        let at = rows.find(&format!("<b>{agent}</b>")).unwrap();
        rows[at..at + rows[at..].find("</tr>").unwrap()].to_owned()
    };
    assert!(row("Agent-1").contains("needs_approval"), "{rows}");
    assert!(row("Agent-2").contains(">done<"), "{rows}");

    // Metrics: raised, then decided, read from the store (the hook and
    // acp approve are processes of their own).
    let mut metrics = Vec::new();
    wait_until(LIMIT, || {
        metrics = parse_metrics(&scrape_openmetrics(&client, &web));
        sample(&metrics, "acp_prompts_total", &[("outcome", "raised")]) == Some(1.0)
    });
    assert_eq!(
        sample(&metrics, "acp_prompts_total", &[("outcome", "allow")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&metrics, "acp_prompt_answer_seconds_count", &[]),
        Some(0.0)
    );
    let out = root.run(&["approve", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(hook_answer(waiting).is_some());
    wait_until(LIMIT, || {
        metrics = parse_metrics(&scrape_openmetrics(&client, &web));
        sample(&metrics, "acp_prompts_total", &[("outcome", "allow")]) == Some(1.0)
            && sample(&metrics, "acp_prompt_answer_seconds_count", &[]) == Some(1.0)
    });
    assert_eq!(
        sample(&metrics, "acp_prompts_total", &[("outcome", "raised")]),
        Some(1.0)
    );
    assert!(sample(&metrics, "acp_prompt_answer_seconds_sum", &[]).unwrap() > 0.0);

    // Decided: Agent-1 no longer waits; Agent-2 still does.
    let page = get("/");
    let section = &page[page.find("id=\"waiting\"").unwrap()..page.find("id=\"agents\"").unwrap()];
    assert!(
        !section.contains("Agent-1") && section.contains("Agent-2"),
        "{section}"
    );
    // With mention_after_secs = 0, nobody was pinged.
    assert!(
        !standin
            .posts()
            .iter()
            .any(|p| p.content.contains("has waited"))
    );
    standin.assert_no_violations();
}

#[test]
fn the_api_decides_like_any_door_and_a_second_answer_is_a_conflict() {
    use crate::web::{CI_TOKEN, Spec, TOKEN, serve};
    let root = Root::new(2);
    root.fast();
    root.edit_config("timeout_secs = 600", "timeout_secs = 60");
    let web = serve(&root, "");
    let spec = Spec::of(&web);
    let waiting = hook(&root, "Agent-1", &claude_request("terraform apply", "s-9"));
    let mut listed = Value::Null;
    crate::support::wait_until(LIMIT, || {
        let (code, v) = web.get("/api/v1/prompts");
        listed = v;
        code == 200 && listed["prompts"].as_array().is_some_and(|p| !p.is_empty())
    });
    spec.check("get", "/prompts", 200, &listed);
    let id = listed["prompts"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["prompts"][0]["summary"], "Bash: terraform apply");
    let path = format!("/api/v1/prompts/{id}/decision");
    // Bad input: said, nothing decided.
    let (code, v) = web.call_as(
        CI_TOKEN,
        reqwest::Method::POST,
        &path,
        Some(&json!({"decision": "maybe"})),
    );
    assert_eq!(code, 400, "{v}");
    spec.check("post", "/prompts/{id}/decision", 400, &v);
    // The ci token (send) decides; the admin's later answer is a conflict.
    let (code, v) = web.call_as(
        CI_TOKEN,
        reqwest::Method::POST,
        &path,
        Some(&json!({"decision": "deny", "reason": "plan it first"})),
    );
    assert_eq!(code, 200, "{v}");
    spec.check("post", "/prompts/{id}/decision", 200, &v);
    assert_eq!(v["decided"]["by"], "http:ci");
    let (code, v) = web.call_as(
        TOKEN,
        reqwest::Method::POST,
        &path,
        Some(&json!({"decision": "allow"})),
    );
    assert_eq!(code, 409, "{v}");
    spec.check("post", "/prompts/{id}/decision", 409, &v);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("already denied by http:ci"),
        "{v}"
    );
    let printed = hook_answer(waiting).unwrap();
    assert_eq!(
        printed["hookSpecificOutput"]["decision"]["message"],
        "plan it first"
    );
    let (code, v) = web.post(
        "/api/v1/prompts/01JDQ3Z5X8J6Y4F2K9M0N1P2QR/decision",
        &json!({"decision": "allow"}),
    );
    assert_eq!(code, 404, "{v}");
}

#[test]
fn a_burst_of_changes_is_one_post_edited() {
    let standin = StandIn::start();
    let (root, _bot) = approval_root(&standin, 60);
    let event = |name: &str, extra: Value| {
        let mut e = json!({"session_id": "s-b", "hook_event_name": name});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };
    hook_now(
        &root,
        "Agent-2",
        &event("Stop", json!({"last_assistant_message": "All green."})),
    );
    let posts = standin.wait_posts(LIMIT, |posts| {
        posts.iter().any(|p| p.content.contains("All green."))
    });
    let done = posts
        .iter()
        .find(|p| p.content.contains("All green."))
        .unwrap()
        .clone();
    assert!(
        done.content.starts_with("**Agent-2**: ✅ done:"),
        "{done:?}"
    );
    // Moments later the session ends: the same post says so.
    hook_now(
        &root,
        "Agent-2",
        &event("SessionEnd", json!({"reason": "logout"})),
    );
    let path = format!("/channels/{CHANNEL_ID}/messages/{}", done.id);
    let edit = standin.wait_for(0, LIMIT, |r| r.method == "PATCH" && r.path == path);
    let content = edit.body["content"].as_str().unwrap();
    assert!(content.starts_with("**Agent-2**: ⏹️ exited"), "{content}");
    assert!(
        content.contains("-# before") && content.contains("✅ done:"),
        "{content}"
    );
    assert_eq!(state_of(&root, "Agent-2"), "exited");
    // One post for the burst.
    let agent2: Vec<_> = standin
        .posts()
        .into_iter()
        .filter(|p| p.content.starts_with("**Agent-2**"))
        .collect();
    assert_eq!(agent2.len(), 1, "{agent2:#?}");
    standin.assert_no_violations();
}

#[test]
fn the_captain_answers_other_agents_prompts_over_mcp_when_allowed() {
    let root = Root::new(3);
    root.fast();
    root.edit_config("timeout_secs = 600", "timeout_secs = 60");
    let waiting = hook(&root, "Agent-2", &claude_request("cargo fmt", "s-c"));
    let mut listed = Vec::new();
    crate::support::wait_until(LIMIT, || {
        listed = open_prompts(&root);
        !listed.is_empty()
    });
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let decide = json!(["decide_prompt", {"id": id, "decision": "allow"}]);
    // Off by default: refused, saying what would allow it.
    let out = crate::mcp::client(&root, "Agent-1", &json!([decide.clone()]));
    assert_eq!(out["results"][0]["isError"], true, "{out}");
    assert!(
        crate::mcp::text(&out["results"][0]).contains("approval.captain_decides"),
        "{out}"
    );
    root.edit_config("captain_decides = false", "captain_decides = true");
    // Another agent than the captain: refused.
    let out = crate::mcp::client(&root, "Agent-3", &json!([decide.clone()]));
    assert!(
        crate::mcp::text(&out["results"][0]).contains("only the captain (Agent-1)"),
        "{out}"
    );
    // The captain lists and answers; the agent gets it; again is "already".
    let out = crate::mcp::client(
        &root,
        "Agent-1",
        &json!([["list_prompts", {}], decide.clone(), decide]),
    );
    let results = out["results"].as_array().unwrap();
    assert!(crate::mcp::text(&results[0]).contains("cargo fmt"), "{out}");
    assert_ne!(results[1]["isError"], true, "{out}");
    assert!(
        crate::mcp::text(&results[1]).contains("mcp:Agent-1 (captain)"),
        "{out}"
    );
    assert!(
        crate::mcp::text(&results[2]).contains("already allowed by mcp:Agent-1"),
        "{out}"
    );
    let printed = hook_answer(waiting).unwrap();
    assert_eq!(
        printed["hookSpecificOutput"]["decision"]["behavior"],
        "allow"
    );
    // Its own prompt stays a person's.
    let own = hook(&root, "Agent-1", &claude_request("rm -rf target", "s-d"));
    crate::support::wait_until(LIMIT, || !open_prompts(&root).is_empty());
    let id = open_prompts(&root)[0]["id"].as_str().unwrap().to_owned();
    let out = crate::mcp::client(
        &root,
        "Agent-1",
        &json!([["decide_prompt", {"id": id, "decision": "allow"}]]),
    );
    assert!(
        crate::mcp::text(&out["results"][0]).contains("its own prompts"),
        "{out}"
    );
    assert!(root.run(&["deny", &id]).status.success());
    assert!(hook_answer(own).is_some());
}
