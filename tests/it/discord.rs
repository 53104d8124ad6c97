// Over 400 lines: each test drives the real bot through one conversation.

//! The real serenity + poise bot, started by `acp run`, driven through the
//! loopback stand-in Discord.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::standin::{GatewayCmd, Recorded, StandIn, interaction};
use crate::support::{Root, stdout, wait_until};

/// The roles the config names, which the stand-in's server has.
pub(crate) const OPERATOR: &str = crate::standin::guild::OPERATOR_ROLE_ID;
pub(crate) const ADMIN: &str = crate::standin::guild::ADMIN_ROLE_ID;

pub(crate) struct Bot {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Bot {
    /// Stops it as systemd would (SIGTERM) and waits for it to exit.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "acp run log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// `acp run` with the bot pointed at the stand-in; returns once the slash
/// commands are registered.
pub(crate) fn start(root: &Root, standin: &StandIn) -> Bot {
    let bot = spawn_run(root, standin, "standin-token");
    registered(standin);
    bot
}

/// Waits for the bot to register its commands.
pub(crate) fn registered(standin: &StandIn) {
    standin.wait_for(0, Duration::from_secs(60), |r| {
        r.method == "PUT" && r.path.ends_with("/commands")
    });
}

/// `acp run` with the bot pointed at the stand-in and `token`.
fn spawn_run(root: &Root, standin: &StandIn, token: &str) -> Bot {
    spawn(root, standin, token, "run")
}

/// `acp COMMAND` (`run` or `bot`) pointed at the stand-in with `token`.
pub(crate) fn spawn(root: &Root, standin: &StandIn, token: &str, command: &str) -> Bot {
    spawn_at(root, &standin.base, token, command)
}

/// `acp COMMAND` with the Discord API at `base` (where nothing may listen
/// yet).
pub(crate) fn spawn_at(root: &Root, base: &str, token: &str, command: &str) -> Bot {
    spawn_logging(root, base, token, command, "info,serenity=warn,poise=warn")
}

/// [`spawn_at`], logging at `acp_log` (`ACP_LOG`).
pub(crate) fn spawn_logging(
    root: &Root,
    base: &str,
    token: &str,
    command: &str,
    acp_log: &str,
) -> Bot {
    // The first start points the config at the stand-in; a restart finds
    // it done.
    let config = std::fs::read_to_string(root.path().join("config/acp.toml")).unwrap();
    if config.contains("api_base = \"\"") {
        root.edit_config(
            "api_base = \"\"",
            &format!("api_base = \"{base}\"\nguild_id = 200000000000000001"),
        )
        .edit_config(
            "operator_roles = []",
            &format!("operator_roles = [{OPERATOR}]"),
        )
        .edit_config("admin_roles = []", &format!("admin_roles = [{ADMIN}]"));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.path().join("service.log"))
        .unwrap();
    let child = root
        .acp()
        .env("DISCORD_TOKEN", token)
        .env("ACP_LOG", acp_log)
        .arg(command)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Bot {
        child,
        log: root.path().join("service.log"),
    }
}

/// Sends a slash command and returns the interaction callback's body.
pub(crate) fn command(
    standin: &StandIn,
    id: u64,
    name: &str,
    options: &Value,
    roles: &[&str],
) -> Value {
    dispatch(standin, id, interaction(id, name, options, roles))
}

/// Sends an `INTERACTION_CREATE` and returns the interaction callback's body.
pub(crate) fn dispatch(standin: &StandIn, id: u64, payload: Value) -> Value {
    let from = standin.requests().len();
    standin.gateway(GatewayCmd::Dispatch("INTERACTION_CREATE", payload));
    standin
        .wait_for(from, Duration::from_secs(20), |r| {
            r.method == "POST" && r.path == format!("/interactions/{id}/token-{id}/callback")
        })
        .body
}

/// The first edit of interaction `id`'s reply (its receipt), after `from`
/// earlier requests.
pub(crate) fn original_edit(standin: &StandIn, from: usize, id: u64, limit: Duration) -> Recorded {
    let path = format!("/token-{id}/messages/@original");
    standin.wait_for(from, limit, |r| {
        r.method == "PATCH" && r.path.ends_with(&path)
    })
}

/// An edit of a reply (a receipt) says `expected`.
pub(crate) fn assert_edit_says(edit: &Recorded, expected: &str) {
    let content = edit.body["content"].as_str().unwrap_or_default();
    assert!(content.contains(expected), "{}", edit.body);
}

/// The reply is ephemeral (flag 64) and says `expected`.
pub(crate) fn assert_ephemeral(reply: &Value, expected: &str) {
    assert_eq!(reply["data"]["flags"], 64, "{reply}");
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains(expected),
        "{reply}"
    );
}

#[test]
fn slash_commands_answer_gate_and_deliver_through_the_real_bot() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast();
    let _bot = start(&root, &standin);

    // The registered commands are the contract.
    let registered = standin
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let names: Vec<&str> = registered
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "status",
        "waiting",
        "agents",
        "message",
        "broadcast",
        "role",
        "backup",
        "devlog",
    ] {
        assert!(names.contains(&name), "{name} not registered: {names:?}");
    }
    // Admin-only commands are hidden from members without Manage Server,
    // typed as Discord's OpenAPI description types it: an integer.
    for command in registered.body.as_array().unwrap() {
        let hidden = &command["default_member_permissions"];
        if ["backup", "spawn", "stop", "restart"].contains(&command["name"].as_str().unwrap()) {
            assert_eq!(hidden, &json!(32), "{command}");
        } else {
            assert!(hidden.is_null(), "{command}");
        }
    }
    standin.assert_no_violations();

    // /status for anyone.
    let reply = command(&standin, 400_000_000_000_000_001, "status", &json!([]), &[]);
    assert_eq!(reply["type"], 4);
    let embed = &reply["data"]["embeds"][0];
    assert_eq!(embed["title"], "acp status", "{reply}");
    let fields: Vec<&str> = embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "delivered",
            "delivering",
            "failed",
            "queued",
            "Failures (0)",
            "Uptime",
            "Last backup"
        ],
        "{reply}"
    );

    // /message from an operator: accepted, then the reply is edited into
    // the true receipt, and the message really is in the agent's inbox.
    let from = standin.requests().len();
    let reply = command(
        &standin,
        400_000_000_000_000_002,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-2"}, {"name": "text", "type": 3, "value": "ship the release"}, {"name": "priority", "type": 4, "value": 1}]),
        &[OPERATOR],
    );
    let accepted = reply["data"]["content"].as_str().unwrap().to_owned();
    assert!(
        accepted.contains("Accepted")
            && accepted.contains("Agent-2")
            && accepted.contains("urgent"),
        "{accepted}"
    );
    let edit = original_edit(
        &standin,
        from,
        400_000_000_000_000_002,
        Duration::from_secs(20),
    );
    let first = standin.wait_for(from, Duration::from_secs(1), |r| {
        r.path.ends_with("400000000000000002/callback")
    });
    assert!(edit.at > first.at, "the receipt edits the reply, after it");
    let receipt = edit.body["content"].as_str().unwrap();
    assert!(
        receipt.contains("✅ Agent-2: delivered by inbox"),
        "{receipt}"
    );
    let id = accepted.split('`').nth(1).unwrap();
    assert_eq!(root.inbox_ids("Agent-2").get(id), Some(&1));
    let read: Value =
        serde_json::from_slice(&root.run(&["inbox", "read", id, "--json"]).stdout).unwrap();
    assert_eq!(read["message"]["from"], "discord:600000000000000002:alice");
    assert_eq!(read["message"]["kind"], "human");

    // /inbox shows it, unread.
    let reply = command(
        &standin,
        400_000_000_000_000_010,
        "inbox",
        &json!([{"name": "agent", "type": 3, "value": "Agent-2"}]),
        &[],
    );
    let text = reply["data"]["content"].as_str().unwrap();
    assert!(
        text.contains(id) && text.contains("unread") && text.contains("ship the release"),
        "{text}"
    );

    // Agent arguments autocomplete from the registry.
    let from = standin.requests().len();
    let mut auto = interaction(
        400_000_000_000_000_011,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "agent-", "focused": true}, {"name": "text", "type": 3, "value": ""}]),
        &[OPERATOR],
    );
    auto["type"] = json!(4);
    standin.gateway(GatewayCmd::Dispatch("INTERACTION_CREATE", auto));
    let answer = standin
        .wait_for(from, Duration::from_secs(20), |r| {
            r.path == "/interactions/400000000000000011/token-400000000000000011/callback"
        })
        .body;
    assert_eq!(answer["type"], 8, "{answer}");
    let choices: Vec<&str> = answer["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(choices, ["Agent-1", "Agent-2"]);

    // Without the operator role: refused, ephemeral, nothing enqueued.
    let reply = command(
        &standin,
        400_000_000_000_000_003,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "sneaky"}]),
        &[],
    );
    assert_ephemeral(&reply, "needs the **operator** level");
    assert!(root.inbox_files("Agent-1").is_empty());

    // Bad input from an operator: a clear ephemeral error, nothing enqueued.
    let reply = command(
        &standin,
        400_000_000_000_000_004,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "../Agent-1"}, {"name": "text", "type": 3, "value": "x"}]),
        &[OPERATOR],
    );
    assert_ephemeral(&reply, "not a valid agent id");

    // Oversize text and control characters: the CLI's rules, ephemeral.
    for (n, text, expected) in [
        (
            20u64,
            "x".repeat(16 * 1024 + 1),
            "over the limit of 16384 bytes",
        ),
        (21, "ring\u{7}bell".to_owned(), "control character U+0007"),
    ] {
        let reply = command(
            &standin,
            400_000_000_000_000_000 + n,
            "message",
            &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": text}]),
            &[OPERATOR],
        );
        assert_ephemeral(&reply, expected);
    }
    assert!(
        root.inbox_files("Agent-1").is_empty(),
        "nothing was enqueued"
    );

    // An admin command without the admin role: refused and audited; with
    // it: done and audited.
    let set = |id: u64, roles: &[&str]| {
        command(
            &standin,
            id,
            "role",
            &json!([{"name": "set", "type": 1, "options": [{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "role", "type": 3, "value": "Database specialist"}]}]),
            roles,
        )
    };
    let refused = set(400_000_000_000_000_005, &[OPERATOR]);
    assert_ephemeral(&refused, "needs the **admin** level");
    // Every other admin command is refused the same way.
    let captain = command(
        &standin,
        400_000_000_000_000_030,
        "role",
        &json!([{"name": "captain", "type": 1, "options": [{"name": "agent", "type": 3, "value": "Agent-2"}]}]),
        &[OPERATOR],
    );
    assert_ephemeral(&captain, "needs the **admin** level");
    let backup = command(
        &standin,
        400_000_000_000_000_031,
        "backup",
        &json!([{"name": "create", "type": 1, "options": []}]),
        &[],
    );
    assert_ephemeral(&backup, "needs the **admin** level");
    let done = set(400_000_000_000_000_006, &[ADMIN]);
    assert!(
        done["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Agent-1** is now: Database specialist"),
        "{done}"
    );
    // The schedule's first backup is audited too, as `schedule` (taken
    // by acp run at its start: waited for, it may still be running).
    let audit =
        || -> Value { serde_json::from_slice(&root.run(&["audit", "--json"]).stdout).unwrap() };
    wait_until(Duration::from_secs(30), || {
        audit().as_array().unwrap().iter().any(|r| {
            r["actor"] == "schedule" && r["action"] == "backup.create" && r["outcome"] == "ok"
        })
    });
    let audit = audit();
    let rows: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"].as_str().unwrap().starts_with("discord:"))
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("roles.set".to_owned(), "ok".to_owned()),
            ("/backup create".to_owned(), "refused".to_owned()),
            ("/role captain".to_owned(), "refused".to_owned()),
            ("/role set".to_owned(), "refused".to_owned())
        ],
        "{audit}"
    );
    assert!(stdout(&root.run(&["roles", "list"])).contains("Database specialist"));

    // /devlog post names a file in devlogs/: a missing one or a path out
    // of devlogs/ is refused, saying so (the devlog tests post real ones).
    let reply = command(
        &standin,
        400_000_000_000_000_034,
        "devlog",
        &json!([{"name": "post", "type": 1, "options": [{"name": "file", "type": 3, "value": "day-1.md"}]}]),
        &[OPERATOR],
    );
    assert_ephemeral(&reply, "devlogs/day-1.md: is not there");
    let reply = command(
        &standin,
        400_000_000_000_000_035,
        "devlog",
        &json!([{"name": "post", "type": 1, "options": [{"name": "file", "type": 3, "value": "../.env"}]}]),
        &[OPERATOR],
    );
    assert_ephemeral(&reply, "is not a path inside devlogs/");

    // Message commands have a per-user cooldown: the same member (the
    // stand-in derives the user from the id's last digits) sending twice at
    // once gets the second refused, and only one message is stored.
    let before = root.inbox_files("Agent-2").len();
    let first = command(
        &standin,
        400_000_000_001_000_040,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-2"}, {"name": "text", "type": 3, "value": "once"}]),
        &[OPERATOR],
    );
    assert!(
        first["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Accepted"),
        "{first}"
    );
    let second = command(
        &standin,
        400_000_000_002_000_040,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-2"}, {"name": "text", "type": 3, "value": "twice"}]),
        &[OPERATOR],
    );
    assert_ephemeral(&second, "Slow down: try again in");
    // The refused command never reached the store, so nothing can arrive
    // after the one accepted message: its delivery is the evidence.
    wait_until(Duration::from_secs(10), || {
        root.inbox_files("Agent-2").len() > before
    });
    assert_eq!(root.inbox_files("Agent-2").len(), before + 1);
    let out = root.run(&["inbox", "list", "--agent", "Agent-2", "--json"]);
    assert!(!stdout(&out).contains("twice"), "{}", stdout(&out));
    assert!(stdout(&out).contains("once"), "{}", stdout(&out));

    // A command from another server than `discord.guild_id`: refused,
    // nothing enqueued.
    let mut elsewhere = interaction(
        400_000_000_000_000_032,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "from afar"}]),
        &[OPERATOR],
    );
    elsewhere["guild_id"] = json!("200000000000000099");
    elsewhere["authorizing_integration_owners"] = json!({"0": "200000000000000099"});
    let reply = dispatch(&standin, 400_000_000_000_000_032, elsewhere);
    assert_ephemeral(&reply, "only in the server set as `discord.guild_id`");
    assert!(root.inbox_files("Agent-1").is_empty());

    // A /message acknowledged just before the gateway connection drops is
    // not lost: it is delivered and its receipt still arrives.
    let from = standin.requests().len();
    let reply = command(
        &standin,
        400_000_000_000_000_033,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "across the drop"}]),
        &[OPERATOR],
    );
    standin.gateway(GatewayCmd::Drop);
    let accepted = reply["data"]["content"].as_str().unwrap().to_owned();
    let dropped_id = accepted.split('`').nth(1).unwrap().to_owned();
    let edit = original_edit(
        &standin,
        from,
        400_000_000_000_000_033,
        Duration::from_secs(20),
    );
    assert_edit_says(&edit, "✅ Agent-1: delivered by inbox");
    assert_eq!(root.inbox_ids("Agent-1").get(&dropped_id), Some(&1));

    // A reconnect request, a dropped connection and invalid sessions
    // (resumable, then not) mid-session: commands still work afterwards.
    // Each step waits for the bot to be back on the gateway (a new READY
    // or RESUMED), the way Discord would see it.
    let (identifies, _) = standin.sessions();
    for cmd in [
        GatewayCmd::Reconnect,
        GatewayCmd::Drop,
        GatewayCmd::InvalidSession(true),
        GatewayCmd::InvalidSession(false),
    ] {
        let session = standin.gateway(cmd);
        // serenity restarts a shard through its queue (up to 5 s between
        // identifies).
        standin.wait_live_after(session, Duration::from_secs(30));
    }
    assert!(standin.sessions().0 > identifies);
    let reply = command(&standin, 400_000_000_000_000_007, "agents", &json!([]), &[]);
    let fields = reply["data"]["embeds"][0]["fields"].as_array().unwrap();
    assert_eq!(fields[0]["name"], "Agent-1 ⭐ captain", "{reply}");
    assert_eq!(
        fields[0]["value"],
        "Database specialist
last: delivered by inbox · unacked: 1",
        "{reply}"
    );
    let (identifies_after, resumes) = standin.sessions();
    assert!(resumes >= 4, "resumes: {resumes}");
    assert!(
        identifies_after > identifies,
        "op 9 (not resumable) starts a new session"
    );

    standin.assert_no_violations();
    let log = std::fs::read_to_string(root.path().join("service.log")).unwrap();
    assert!(log.contains("slash commands registered"), "{log}");
    assert!(
        !log.contains("standin-token"),
        "the token leaked into the log"
    );
}

#[test]
fn slow_work_is_deferred_and_a_late_outcome_is_posted_to_the_channel() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast()
        .edit_config("max_attempts = 5", "max_attempts = 100")
        .edit_config("receipt_window_secs = 840", "receipt_window_secs = 2");
    let _bot = start(&root, &standin);

    // A writer holding the store: accepting the message takes longer than
    // a second, so the bot defers first (type 5), then follows up.
    let db = rusqlite::Connection::open(root.path().join("data/acp.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let reply = command(
        &standin,
        400_000_000_000_000_040,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "behind a busy store"}]),
        &[OPERATOR],
    );
    assert_eq!(reply["type"], 5, "deferred first: {reply}");
    db.execute_batch("COMMIT").unwrap();
    let follow_up = standin.wait_for(0, Duration::from_secs(20), |r| {
        r.method == "POST" && r.path.ends_with("/token-400000000000000040")
    });
    assert!(
        follow_up.body["content"]
            .as_str()
            .unwrap()
            .contains("Accepted"),
        "{}",
        follow_up.body
    );
    let receipt = standin.wait_for(0, Duration::from_secs(20), |r| {
        r.method == "PATCH" && r.path.contains("/token-400000000000000040/messages/")
    });
    assert!(
        receipt.body["content"]
            .as_str()
            .unwrap()
            .contains("✅ Agent-1: delivered by inbox"),
        "{}",
        receipt.body
    );

    // An inbox that cannot take the message yet: past the edit window the
    // reply says so, and the final outcome arrives as a channel message.
    let inbox = root.inbox("Agent-2");
    std::fs::remove_dir(&inbox).unwrap();
    std::fs::write(&inbox, "in the way").unwrap();
    let from = standin.requests().len();
    let reply = command(
        &standin,
        400_000_000_000_000_041,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-2"}, {"name": "text", "type": 3, "value": "arrives late"}]),
        &[OPERATOR],
    );
    assert_eq!(reply["type"], 4, "{reply}");
    let edit = original_edit(
        &standin,
        from,
        400_000_000_000_000_041,
        Duration::from_secs(20),
    );
    let text = edit.body["content"].as_str().unwrap();
    assert!(
        text.contains("⏳ Agent-2") && text.contains("posted in this channel"),
        "{text}"
    );
    assert!(
        !standin
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/channels/")),
        "nothing posted before the delivery is final"
    );
    std::fs::remove_file(&inbox).unwrap();
    std::fs::create_dir(&inbox).unwrap();
    let late = standin.wait_for(from, Duration::from_secs(30), |r| {
        r.method == "POST" && r.path == format!("/channels/{}/messages", crate::standin::CHANNEL_ID)
    });
    let text = late.body["content"].as_str().unwrap();
    assert!(
        text.starts_with("Final receipt") && text.contains("✅ Agent-2: delivered by inbox"),
        "{text}"
    );
    let id = reply["data"]["content"]
        .as_str()
        .unwrap()
        .split('`')
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(root.inbox_ids("Agent-2").get(&id), Some(&1));
    standin.assert_no_violations();
}

/// The follow-up message a deferred command ends with (its last edit).
fn final_edit(standin: &StandIn, from: usize, id: u64, done: impl Fn(&Value) -> bool) -> Value {
    let token = format!("/token-{id}/messages/");
    standin
        .wait_for(from, Duration::from_secs(60), |r| {
            r.method == "PATCH" && r.path.contains(&token) && done(&r.body)
        })
        .body
}

#[test]
fn backup_commands_are_deferred_and_answer_with_result_embeds() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast()
        .edit_config("full_every_hours = 24", "full_every_hours = 0")
        .edit_config(
            "incremental_every_minutes = 60",
            "incremental_every_minutes = 0",
        );
    let _bot = start(&root, &standin);
    let admin = |id: u64, sub: &str, options: &Value| {
        let from = standin.requests().len();
        let reply = command(
            &standin,
            id,
            "backup",
            &json!([{"name": sub, "type": 1, "options": options}]),
            &[ADMIN],
        );
        assert_eq!(reply["type"], 5, "deferred first: {reply}");
        let embed_done = |b: &Value| b["embeds"].as_array().is_some_and(|e| !e.is_empty());
        final_edit(&standin, from, id, embed_done)
    };

    let created = admin(
        400_000_000_000_000_050,
        "create",
        &json!([{"name": "kind", "type": 4, "value": 2}]),
    );
    let embed = &created["embeds"][0];
    assert_eq!(embed["title"], "✅ full backup created", "{created}");
    let field = |name: &str| {
        embed["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let id = field("ID").trim_matches('`').to_owned();
    assert_eq!(field("Kind"), "full");
    assert!(field("Files").parse::<u64>().unwrap() >= 3);
    // The embed tells the truth: that backup is in the repository.
    let list: Value =
        serde_json::from_slice(&root.run(&["backup", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["backups"][0]["id"], id.as_str());
    assert_eq!(list["backups"][0]["kind"], "full");

    // /status names it as the last backup.
    let status = command(&standin, 400_000_000_000_000_055, "status", &json!([]), &[]);
    let newest = status["data"]["embeds"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Last backup")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        newest.starts_with("full `") && newest.contains(&id),
        "{newest}"
    );

    let listed = admin(400_000_000_000_000_051, "list", &json!([]));
    assert_eq!(listed["embeds"][0]["title"], "Backups (1)");
    assert!(
        listed["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains(&id)
    );

    let verified = admin(400_000_000_000_000_052, "verify", &json!([]));
    assert_eq!(
        verified["embeds"][0]["title"], "✅ Backups verified: all intact",
        "{verified}"
    );

    let restored = admin(
        400_000_000_000_000_053,
        "restore",
        &json!([{"name": "id", "type": 3, "value": "latest"}]),
    );
    let text = restored["embeds"][0]["description"].as_str().unwrap();
    assert!(text.contains("--in-place"), "{text}");
    let dir = text.split('`').nth(1).unwrap();
    assert!(
        std::path::Path::new(dir).join("config/acp.toml").is_file(),
        "{dir}"
    );
    assert!(std::path::Path::new(dir).starts_with(root.path().join("restores")));

    // A bad id: a clear answer, not a crash.
    let from = standin.requests().len();
    let reply = command(
        &standin,
        400_000_000_000_000_054,
        "backup",
        &json!([{"name": "restore", "type": 1, "options": [{"name": "id", "type": 3, "value": "../../etc"}]}]),
        &[ADMIN],
    );
    assert_eq!(reply["type"], 5);
    let answer = final_edit(&standin, from, 400_000_000_000_000_054, |b| {
        b["content"].as_str().is_some_and(|c| c.starts_with("⚠️"))
    });
    assert!(
        answer["content"]
            .as_str()
            .unwrap()
            .contains("\"../../etc\" is not a backup id"),
        "{answer}"
    );

    // Every admin action is audited with its outcome.
    let audit: Value = serde_json::from_slice(&root.run(&["audit", "--json"]).stdout).unwrap();
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("backup.restore", "error"),
            ("backup.restore", "ok"),
            ("backup.verify", "ok"),
            ("backup.list", "ok"),
            ("backup.create", "ok")
        ]
    );
    standin.assert_no_violations();
}

#[test]
fn a_backup_that_outlives_the_edit_window_reports_in_the_channel() {
    let standin = StandIn::start();
    let root = Root::new(1);
    root.fast()
        .edit_config("full_every_hours = 24", "full_every_hours = 0")
        .edit_config(
            "incremental_every_minutes = 60",
            "incremental_every_minutes = 0",
        )
        .edit_config("receipt_window_secs = 840", "receipt_window_secs = 4");
    assert!(
        root.run(&["backup", "create", "--kind", "full"])
            .status
            .success()
    );
    let _bot = start(&root, &standin);

    // Another backup holds the repository past the receipt window: the
    // command waits its turn, shows progress while the reply can still be
    // edited, says when the result will go to the channel instead, and
    // posts it there.
    let lock = std::fs::File::options()
        .write(true)
        .open(root.path().join("backups/lock"))
        .unwrap();
    lock.lock().unwrap();
    let from = standin.requests().len();
    let reply = command(
        &standin,
        400_000_000_000_000_060,
        "backup",
        &json!([{"name": "create", "type": 1, "options": []}]),
        &[ADMIN],
    );
    assert_eq!(reply["type"], 5, "{reply}");
    let progress = standin.wait_for(from, Duration::from_secs(20), |r| {
        r.method == "PATCH" && r.path.contains("/token-400000000000000060/messages/")
    });
    assert!(
        progress.body["content"]
            .as_str()
            .unwrap()
            .starts_with("⏳ incremental backup"),
        "{}",
        progress.body
    );
    let handoff = standin.wait_for(from, Duration::from_secs(30), |r| {
        r.method == "PATCH"
            && r.path.contains("/token-400000000000000060/messages/")
            && r.body["content"]
                .as_str()
                .is_some_and(|c| c.contains("the result will be posted in this channel"))
    });
    assert!(
        handoff.body["content"]
            .as_str()
            .unwrap()
            .starts_with("⏳ incremental backup"),
        "{}",
        handoff.body
    );
    drop(lock);
    let posted = standin.wait_for(from, Duration::from_secs(30), |r| {
        r.method == "POST" && r.path == format!("/channels/{}/messages", crate::standin::CHANNEL_ID)
    });
    assert_eq!(
        posted.body["embeds"][0]["title"], "✅ incremental backup created",
        "{}",
        posted.body
    );
    assert!(
        posted.body["content"]
            .as_str()
            .unwrap()
            .contains("finished"),
        "{}",
        posted.body
    );
    let list: Value =
        serde_json::from_slice(&root.run(&["backup", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["backups"].as_array().unwrap().len(), 2);
    standin.assert_no_violations();
}

#[test]
fn a_rejected_token_is_reported_and_messages_still_flow() {
    let standin = StandIn::start();
    let root = Root::new(1);
    root.fast();
    let mut bot = spawn_run(&root, &standin, "rejected-token");
    let log = root.path().join("service.log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(60), || {
        text().contains("Discord refused DISCORD_TOKEN")
    });
    let text = text();
    assert!(
        text.contains("Discord refused DISCORD_TOKEN (authentication failed): reset the token"),
        "{text}"
    );
    assert!(!text.contains("rejected-token"), "the token leaked: {text}");
    // The service goes on delivering without the bot.
    assert!(bot.child.try_wait().unwrap().is_none(), "acp run exited");
    let out = root.run(&["send", "--to", "Agent-1", "--wait", "still here"]);
    assert!(
        stdout(&out).contains("delivered by inbox"),
        "{}",
        stdout(&out)
    );
    assert_eq!(root.inbox_files("Agent-1").len(), 1);
}

#[test]
fn autocomplete_answers_everyone_and_suggests_only_to_who_may_run_the_command() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast();
    let _bot = start(&root, &standin);
    let typing = |id: u64, roles: &[&str]| {
        let mut payload = interaction(
            id,
            "role",
            &json!([{"name": "set", "type": 1, "options": [
                {"name": "agent", "type": 3, "value": "Agent", "focused": true}
            ]}]),
            roles,
        );
        payload["type"] = json!(4);
        dispatch(&standin, id, payload)
    };
    // A member who may not assign roles: an answer, with nothing in it.
    let member = typing(400_000_000_000_000_070, &[OPERATOR]);
    assert_eq!(member["type"], 8, "{member}");
    assert_eq!(member["data"]["choices"], json!([]), "{member}");
    // An admin: the agents.
    let admin = typing(400_000_000_000_000_071, &[ADMIN]);
    assert_eq!(admin["type"], 8, "{admin}");
    let names: Vec<&str> = admin["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Agent-1", "Agent-2"], "{admin}");
    // Typing is not a refused command: nothing is audited.
    let audit: Value = serde_json::from_slice(&root.run(&["audit", "--json"]).stdout).unwrap();
    assert!(!audit.to_string().contains("/role set"), "{audit}");
    standin.assert_no_violations();
}

#[test]
fn the_bot_alone_says_nothing_is_delivering_and_the_receipt_follows_a_late_service() {
    let standin = StandIn::start();
    let root = Root::new(1);
    root.fast();
    let _bot = spawn(&root, &standin, "standin-token", "bot");
    registered(&standin);
    let from = standin.requests().len();
    let reply = command(
        &standin,
        400_000_000_000_000_080,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "waiting"}]),
        &[OPERATOR],
    );
    let text = reply["data"]["content"].as_str().unwrap();
    assert!(
        text.contains("queued: no `acp run` is delivering for this root"),
        "{text}"
    );
    assert!(root.inbox_files("Agent-1").is_empty());
    // A service started later delivers it, and the receipt still arrives.
    let _service = root.service();
    let edit = original_edit(
        &standin,
        from,
        400_000_000_000_000_080,
        Duration::from_secs(30),
    );
    assert_edit_says(&edit, "✅ Agent-1: delivered by inbox");
    standin.assert_no_violations();
}
