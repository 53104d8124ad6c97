// Over 400 lines: the outbox's conversations with the stand-in Discord, each a story from a
// command or an agent to what lands in the channel.

//! The outbox: agents answering on Discord through the real bot and the
//! stand-in Discord. Replies land where the message came from, posts wait
//! out rate limits and outages, a kill mid-post posts nothing twice,
//! threads are made once, and receipts survive a restart.

use std::time::Duration;

use serde_json::{Value, json};

use crate::discord::{
    OPERATOR, assert_edit_says, command, dispatch, original_edit, registered, spawn, spawn_at,
};
use crate::standin::{
    CHANNEL_ID, ORIGINAL_ID, StandIn, interaction, interaction_in, with_attachment,
};
use crate::support::{Root, stderr, stdout, wait_until};

pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// `acp ARGS` run as `agent` (`ACP_AGENT`), returning the output.
pub(crate) fn as_agent(root: &Root, agent: &str, args: &[&str]) -> std::process::Output {
    root.acp()
        .env("ACP_AGENT", agent)
        .args(args)
        .output()
        .unwrap()
}

/// The id a successful send or reply printed.
pub(crate) fn sent_id(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out).lines().next().unwrap().trim().to_owned()
}

/// `acp --json inbox read ID`.
pub(crate) fn read(root: &Root, id: &str) -> Value {
    let out = root.run(&["--json", "inbox", "read", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Waits until message `id`'s first delivery is `state`, and returns it.
pub(crate) fn wait_state(root: &Root, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    wait_until(LIMIT, || {
        last = read(root, id)["deliveries"][0].clone();
        last["state"] == state
    });
    last
}

/// Points the root's swarm channel at the stand-in's channel.
pub(crate) fn swarm(root: &Root) {
    root.edit_config(
        "swarm_channel = 0",
        &format!("swarm_channel = {CHANNEL_ID}"),
    );
}

/// The bot's token in the root's `.env`, where every acp process of the
/// root reads it (agents' commands included), as in production.
pub(crate) fn token_in_dotenv(root: &Root) {
    std::fs::write(root.path().join(".env"), "DISCORD_TOKEN=standin-token\n").unwrap();
}

/// The one message id in an agent's inbox.
fn only_inbox_id(root: &Root, agent: &str) -> String {
    let ids = root.inbox_ids(agent);
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_keys().next().unwrap()
}

#[test]
fn replies_land_where_the_message_came_from() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast();
    token_in_dotenv(&root);
    let _bot = crate::discord::start(&root, &standin);

    // A person asks Agent-1 from Discord; the receipt comes first.
    let from = standin.requests().len();
    command(
        &standin,
        400_000_000_000_000_201,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "how is the build?"}]),
        &[OPERATOR],
    );
    original_edit(&standin, from, 400_000_000_000_000_201, LIMIT);
    let asked = only_inbox_id(&root, "Agent-1");

    // Another agent may not answer a message that was not sent to it.
    let out = as_agent(&root, "Agent-2", &["reply", &asked, "not mine"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was not sent to Agent-2"),
        "{}",
        stderr(&out)
    );

    // Agent-1 answers: a Discord reply to the receipt, in that channel,
    // with its name, delivered by the discord method.
    let answer = sent_id(&as_agent(
        &root,
        "Agent-1",
        &["reply", &asked, "green, 0 failures"],
    ));
    let posts = standin.wait_posts(LIMIT, |p| {
        p.iter().any(|p| p.content.contains("green, 0 failures"))
    });
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].channel, CHANNEL_ID);
    assert_eq!(
        posts[0].reference.as_deref(),
        Some(&*ORIGINAL_ID.to_string())
    );
    assert!(posts[0].content.starts_with("**Agent-1**"), "{posts:#?}");
    let delivered = wait_state(&root, &answer, "delivered");
    assert_eq!(delivered["method"], "discord", "{delivered}");
    assert!(
        delivered["detail"]
            .as_str()
            .unwrap()
            .contains(&posts[0].id.to_string()),
        "{delivered}"
    );
    let stored = read(&root, &answer);
    assert_eq!(stored["message"]["reply_to"], json!(asked));
    assert_eq!(stored["message"]["kind"], "report");

    // Between agents, the answer goes to the asker's inbox, with reply_to.
    let question = sent_id(&as_agent(
        &root,
        "Agent-1",
        &["send", "--to", "Agent-2", "which port?"],
    ));
    wait_state(&root, &question, "delivered");
    let answer = sent_id(&as_agent(
        &root,
        "Agent-2",
        &["reply", &question, "port 8080"],
    ));
    wait_state(&root, &answer, "delivered");
    let file = root
        .inbox_files("Agent-1")
        .into_iter()
        .find(|f| f.contains(&answer))
        .unwrap();
    let text = std::fs::read_to_string(root.inbox("Agent-1").join(file)).unwrap();
    assert!(text.contains(&format!("reply_to: {question}")), "{text}");
    assert!(
        text.contains("from: Agent-2") && text.contains("port 8080"),
        "{text}"
    );
    // Nothing went to Discord for that.
    assert_eq!(standin.posts().len(), 1);
    standin.assert_no_violations();
}

#[test]
fn a_post_with_nowhere_to_go_is_refused_before_it_is_stored() {
    let root = Root::new(1);
    // No token: Discord is off.
    let out = as_agent(&root, "Agent-1", &["send", "--to", "discord", "hello"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("DISCORD_TOKEN"), "{}", stderr(&out));
    // A token but no channel.
    let out = root
        .acp()
        .env("ACP_AGENT", "Agent-1")
        .env("DISCORD_TOKEN", "t")
        .args(["send", "--to", "discord", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("discord.swarm_channel"),
        "{}",
        stderr(&out)
    );
    // A person's message from the command line is answered in their
    // inbox, not on Discord (tests/it/operator.rs follows it further).
    let asked = sent_id(&root.run(&["send", "--to", "Agent-1", "--from", "alice", "hi"]));
    let out = as_agent(&root, "Agent-1", &["reply", &asked, "hello alice"]);
    let answer = sent_id(&out);
    assert_eq!(
        read(&root, &answer)["message"]["to"],
        json!({"type": "person", "person": "alice"})
    );
    let status = crate::support::status(&root);
    assert_eq!(crate::support::count(&status, "queued"), 0, "{status}");
}

#[test]
fn posts_wait_out_an_outage_and_rate_limits_and_a_kill_mid_post_posts_once() {
    // Discord is unreachable at first: nothing listens on its port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let root = Root::new(1);
    root.fast();
    swarm(&root);
    token_in_dotenv(&root);
    let bot = spawn_at(&root, &base, "standin-token", "run");
    let ids: Vec<String> = (0..5)
        .map(|i| {
            sent_id(&as_agent(
                &root,
                "Agent-1",
                &["send", "--to", "discord", &format!("report {i}")],
            ))
        })
        .collect();
    // Each post was tried and is waiting, with the reason recorded.
    for id in &ids {
        wait_until(LIMIT, || {
            let d = &read(&root, id)["deliveries"][0];
            d["state"] == "queued"
                && d["attempts"].as_u64() >= Some(1)
                && d["detail"]
                    .as_str()
                    .is_some_and(|t| t.contains("cannot reach Discord"))
        });
    }

    // Discord comes back, rate limiting at first.
    let standin = StandIn::start_on(port);
    standin.set_rate_limited(true);
    wait_until(LIMIT, || standin.rate_limited_answers() >= 3);
    standin.set_rate_limited(false);
    for id in &ids {
        wait_state(&root, id, "delivered");
    }
    let posts = standin.posts_in(CHANNEL_ID);
    for i in 0..5 {
        let copies = posts
            .iter()
            .filter(|p| p.content == format!("**Agent-1**: report {i}"))
            .count();
        assert_eq!(copies, 1, "report {i}: {posts:#?}");
    }
    assert_eq!(posts.len(), 5, "{posts:#?}");

    // Killed while Discord holds a post it has taken: the next acp run
    // posts it again with the same nonce, and Discord keeps one.
    standin.set_hold_posts(true);
    let held = sent_id(&as_agent(
        &root,
        "Agent-1",
        &["send", "--to", "discord", "held"],
    ));
    standin.wait_posts(LIMIT, |p| p.iter().any(|p| p.content.ends_with("held")));
    drop(bot);
    standin.set_hold_posts(false);
    let _bot = spawn(&root, &standin, "standin-token", "run");
    wait_state(&root, &held, "delivered");
    let tries: Vec<Value> = standin
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.body["content"] == "**Agent-1**: held")
        .map(|r| r.body)
        .collect();
    assert_eq!(tries.len(), 2, "posted once, then again after the kill");
    assert_eq!(tries[0]["nonce"], tries[1]["nonce"]);
    assert_eq!(tries[0]["enforce_nonce"], true);
    let copies = standin
        .posts_in(CHANNEL_ID)
        .iter()
        .filter(|p| p.content.ends_with("held"))
        .count();
    assert_eq!(copies, 1);
    standin.assert_no_violations();
}

#[test]
fn agent_threads_are_made_once_and_a_message_typed_in_one_reaches_its_agent() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast();
    swarm(&root);
    root.edit_config("agent_threads = false", "agent_threads = true");
    token_in_dotenv(&root);
    let bot = crate::discord::start(&root, &standin);
    let first = sent_id(&as_agent(
        &root,
        "Agent-1",
        &["send", "--to", "discord", "first"],
    ));
    wait_state(&root, &first, "delivered");
    let threads = standin.threads();
    assert_eq!(threads.len(), 1, "{threads:?}");
    let (parent, thread, name) = threads[0].clone();
    assert_eq!((parent.as_str(), name.as_str()), (CHANNEL_ID, "Agent-1"));
    let second = sent_id(&as_agent(
        &root,
        "Agent-1",
        &["send", "--to", "discord", "second"],
    ));
    wait_state(&root, &second, "delivered");

    // After a restart the thread is still the agent's.
    drop(bot);
    let _bot = spawn(&root, &standin, "standin-token", "run");
    let third = sent_id(&as_agent(
        &root,
        "Agent-1",
        &["send", "--to", "discord", "third"],
    ));
    wait_state(&root, &third, "delivered");
    assert_eq!(standin.threads().len(), 1, "{:?}", standin.threads());
    let in_thread: Vec<String> = standin
        .posts_in(&thread)
        .into_iter()
        .map(|p| p.content)
        .collect();
    assert_eq!(
        in_thread,
        [
            "**Agent-1**: first",
            "**Agent-1**: second",
            "**Agent-1**: third"
        ]
    );
    // Another agent gets a thread of its own.
    let other = sent_id(&as_agent(
        &root,
        "Agent-2",
        &["send", "--to", "discord", "hi"],
    ));
    wait_state(&root, &other, "delivered");
    assert_eq!(standin.threads().len(), 2);

    // /message typed in Agent-1's thread needs no agent.
    let id = 400_000_000_000_000_221;
    let from = standin.requests().len();
    let payload = interaction_in(
        id,
        "message",
        &json!([{"name": "text", "type": 3, "value": "from the thread"}]),
        &[OPERATOR],
        &thread,
    );
    let reply = dispatch(&standin, id, payload);
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Agent-1"),
        "{reply}"
    );
    let edit = original_edit(&standin, from, id, LIMIT);
    assert_edit_says(&edit, "✅ Agent-1: delivered by inbox");
    // Outside any thread, the agent must be named.
    let reply = command(
        &standin,
        400_000_000_000_000_222,
        "message",
        &json!([{"name": "text", "type": 3, "value": "to whom?"}]),
        &[OPERATOR],
    );
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("say which agent"),
        "{reply}"
    );
    standin.assert_no_violations();
}

#[test]
fn a_receipt_owed_before_a_restart_is_completed_after_it() {
    let standin = StandIn::start();
    let root = Root::new(1);
    root.fast();
    // The bot alone takes the command; nothing delivers yet.
    let bot = spawn(&root, &standin, "standin-token", "bot");
    registered(&standin);
    let id = 400_000_000_000_000_231;
    let from = standin.requests().len();
    command(
        &standin,
        id,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "after the restart"}]),
        &[OPERATOR],
    );
    // The receipt is owed in the store before the bot goes away.
    let asked = wait_for_owed_receipt(&root);
    drop(bot);
    assert!(root.inbox_files("Agent-1").is_empty());

    // A new acp run (bot included) delivers and edits the same reply.
    let _bot = spawn(&root, &standin, "standin-token", "run");
    let edit = original_edit(&standin, from, id, LIMIT);
    assert_edit_says(&edit, "✅ Agent-1: delivered by inbox");
    assert_eq!(only_inbox_id(&root, "Agent-1"), asked);
    standin.assert_no_violations();
}

/// Waits until the store records a receipt owed, and returns its message.
fn wait_for_owed_receipt(root: &Root) -> String {
    let db = root.path().join("data/acp.db");
    let mut found = None;
    wait_until(LIMIT, || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        found = conn
            .query_row(
                "SELECT message_id FROM discord_receipts WHERE state = 'owed'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok();
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn a_file_sent_with_a_message_reaches_the_workspace_and_an_oversize_one_writes_nothing() {
    let standin = StandIn::start();
    let root = Root::new(1);
    root.fast().edit_config(
        "max_attachment_bytes = 10485760",
        "max_attachment_bytes = 5000",
    );
    let _bot = crate::discord::start(&root, &standin);
    let files = root.inbox("Agent-1").join("files");

    // A binary file within the limit: saved whole, named in the message.
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let url = standin.serve_file("screen.png", &bytes);
    let id = 400_000_000_000_000_241;
    let from = standin.requests().len();
    let payload = with_attachment(
        interaction(
            id,
            "message",
            &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "see the screenshot"}]),
            &[OPERATOR],
        ),
        "1100000000000000001",
        "screen.png",
        bytes.len(),
        &url,
    );
    dispatch(&standin, id, payload);
    original_edit(&standin, from, id, LIMIT);
    let saved: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(std::fs::read(&saved[0]).unwrap(), bytes);
    assert!(saved[0].to_string_lossy().ends_with("_screen.png"));
    let message_id = only_inbox_id(&root, "Agent-1");
    let body = read(&root, &message_id)["message"]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        body.starts_with("see the screenshot")
            && body.contains(&format!(
                "screen.png (3000 bytes) is saved at {}",
                saved[0].display()
            )),
        "{body}"
    );

    // Over the limit as declared: refused before any download, and
    // nothing is written or sent.
    let url = standin.serve_file("huge.log", &[b'x'; 6000]);
    let payload = with_attachment(
        interaction(
            400_000_000_000_000_242,
            "message",
            &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "too big"}]),
            &[OPERATOR],
        ),
        "1100000000000000002",
        "huge.log",
        6000,
        &url,
    );
    let reply = dispatch(&standin, 400_000_000_000_000_242, payload);
    assert_eq!(reply["data"]["flags"], 64, "{reply}");
    let text = reply["data"]["content"].as_str().unwrap();
    assert!(
        text.contains("6000 bytes, over the limit of 5000 bytes")
            && text.contains("nothing was sent"),
        "{text}"
    );
    assert!(!standin.downloads().contains(&"huge.log".to_owned()));

    // Over the limit but declared small: refused after the download, and
    // still nothing is written.
    let url = standin.serve_file("liar.log", &[b'y'; 6000]);
    let payload = with_attachment(
        interaction(
            400_000_000_000_000_243,
            "message",
            &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "small, it says"}]),
            &[OPERATOR],
        ),
        "1100000000000000003",
        "liar.log",
        100,
        &url,
    );
    let reply = dispatch(&standin, 400_000_000_000_000_243, payload);
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("over the limit of 5000 bytes"),
        "{reply}"
    );
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 1);
    assert_eq!(root.inbox_ids("Agent-1").len(), 1);
    standin.assert_no_violations();
}

#[test]
fn posts_carry_files_and_an_oversize_one_is_refused_before_anything_is_stored() {
    let standin = StandIn::start();
    let root = Root::new(1);
    root.fast().edit_config(
        "max_attachment_bytes = 10485760",
        "max_attachment_bytes = 5000",
    );
    token_in_dotenv(&root);
    swarm(&root);
    let _bot = crate::discord::start(&root, &standin);
    let dir = root.path().join("agent_workspaces/Agent-1");
    std::fs::write(dir.join("build.log"), vec![b'l'; 1234]).unwrap();
    std::fs::write(dir.join("core.dump"), vec![0u8; 6000]).unwrap();
    let log = dir.join("build.log");
    let id = sent_id(&as_agent(
        &root,
        "Agent-1",
        &[
            "send",
            "--to",
            "discord",
            "--file",
            log.to_str().unwrap(),
            "the log",
        ],
    ));
    wait_state(&root, &id, "delivered");
    let posts = standin.posts_in(CHANNEL_ID);
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].files, [("build.log".to_owned(), 1234)]);
    assert!(
        posts[0].content.contains("📎 build.log (1234 bytes)"),
        "{posts:#?}"
    );

    // Past the upload limit: refused, saying so; nothing stored or posted.
    let dump = dir.join("core.dump");
    let out = as_agent(
        &root,
        "Agent-1",
        &[
            "send",
            "--to",
            "discord",
            "--file",
            dump.to_str().unwrap(),
            "the dump",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("over Discord's upload limit of 5000 bytes"),
        "{}",
        stderr(&out)
    );
    // To an agent, files are refused too: they go with posts.
    let out = as_agent(
        &root,
        "Agent-1",
        &[
            "send",
            "--to",
            "Agent-1",
            "--file",
            log.to_str().unwrap(),
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let status = crate::support::status(&root);
    assert_eq!(crate::support::count(&status, "delivered"), 1, "{status}");
    assert_eq!(crate::support::count(&status, "queued"), 0, "{status}");
    let staged = std::fs::read_dir(root.path().join("data/outbox"))
        .unwrap()
        .count();
    assert_eq!(staged, 1, "only the posted message's files are staged");
    assert_eq!(standin.posts().len(), 1);
    standin.assert_no_violations();
}
