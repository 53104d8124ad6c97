//! Permission prompts answered from Discord, exactly once: a fake agent
//! runs `acp hook` with Claude Code's and Codex's documented JSON, the real
//! bot posts the prompt with buttons to the stand-in Discord, people press
//! them (as `MESSAGE_COMPONENT` interactions checked against Discord's
//! OpenAPI description), and the hook prints what the store decided.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::discord::{Bot, OPERATOR, assert_ephemeral, dispatch, start};
use crate::outbox::{LIMIT, swarm, token_in_dotenv};
use crate::standin::{CHANNEL_ID, GatewayCmd, Post, StandIn, button_press};
use crate::support::{Root, stderr, stdout};

/// A root whose prompts wait `timeout` seconds, with the bot running.
fn approval_root(standin: &StandIn, timeout: u32) -> (Root, Bot) {
    let root = Root::new(2);
    root.fast();
    token_in_dotenv(&root);
    swarm(&root);
    root.edit_config("timeout_secs = 600", &format!("timeout_secs = {timeout}"));
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
    let mut child = root
        .acp()
        .env("ACP_AGENT", agent)
        .arg("hook")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
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
        let mut child = root
            .acp()
            .env("ACP_AGENT", "Agent-1")
            .arg("hook")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
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
