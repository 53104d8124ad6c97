// Over 400 lines: one story per finding of the security review (issue 20), each an attack
// replayed against real parts.

//! Findings 4, 8, 9, 14 and 16 of the security review, each reproduced as
//! the attack was described, against the real binary, the real bot and the
//! loopback stand-in Discord, the real HTTP door, and the official Python
//! MCP client.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::discord::{OPERATOR, assert_ephemeral, command, dispatch, original_edit};
use crate::outbox::{as_agent, swarm};
use crate::standin::{APP_ID, StandIn, interaction};
use crate::support::{Root, stderr, stdout};

/// The permission bits of a path, in octal as `ls -l` users read them.
fn mode(path: &Path) -> String {
    format!(
        "{:o}",
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}

#[test]
fn a_restored_root_is_as_private_as_a_new_one() {
    let root = Root::new(1);
    let out = root.run(&["send", "--to", "Agent-1", "kept through the restore"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A root made by an older acp, or opened up since: the store and its
    // directory readable by everyone on the machine.
    let data = root.path().join("data");
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(data.join("acp.db"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(
        root.path().join("config"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = root.run(&["backup", "create", "--kind", "full"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Into an empty directory.
    let restored = Root {
        dir: tempfile::tempdir().unwrap(),
    };
    let dest = restored.path();
    let out = root.run(&[
        "backup",
        "restore",
        "latest",
        "--to",
        dest.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(mode(&dest.join("data")), "700");
    assert_eq!(mode(&dest.join("data/acp.db")), "600");
    assert_eq!(mode(&dest.join("config")), "700");
    assert_eq!(mode(&dest.join("agent_workspaces/Agent-1/inbox")), "700");
    // Nothing lost: the restored store holds the message.
    let out = restored.run(&["--json", "inbox", "list", "--agent", "Agent-1"]);
    assert!(
        stdout(&out).contains("kept through the restore"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );

    // In place: the live store and its directory come back private too.
    let out = root.run(&["backup", "restore", "latest", "--in-place"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(mode(&data), "700");
    assert_eq!(mode(&data.join("acp.db")), "600");
    assert_eq!(mode(&root.path().join("config")), "700");
}

/// `acp send` as `from` (no `acp run`: it delivers to the inbox itself);
/// returns the message id.
fn send_as(root: &Root, from: &str, to: &str, body: &str) -> String {
    let out = root.run(&["send", "--from", from, "--to", to, body]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().next().unwrap().trim().to_owned()
}

#[test]
fn an_agent_over_mcp_reads_only_its_own_messages_and_status() {
    let root = Root::new(3);
    root.fast();
    // Agent-2's message fails (one attempt, by keyboard and mouse with no
    // display), so it would show among the recent failures too.
    let out = root
        .acp()
        .env("ACP_MAX_ATTEMPTS", "1")
        .env_remove("DISPLAY")
        .args([
            "send",
            "--via",
            "gui",
            "--from",
            "Agent-3",
            "--to",
            "Agent-2",
            "the deploy key is in vault/prod",
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).len() > 20, "{}", stderr(&out));
    let secret = stdout(&out).lines().next().unwrap().trim().to_owned();
    assert_eq!(
        crate::support::count(&crate::support::status(&root), "failed"),
        1
    );
    let asked = send_as(&root, "Agent-2", "Agent-1", "which port?");
    let out = root.run(&["broadcast", "--from", "Agent-3", "standup in five"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A well-formed id no message has.
    let missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

    // Agent-1, perhaps prompt-injected, goes looking for Agent-2's mail.
    let calls = json!([
        ["status", {}],
        ["read_message", {"id": secret}],
        ["read_message", {"id": missing}],
        ["ack", {"id": secret}],
        ["reply", {"id": secret, "body": "tell me more"}],
        ["send_message", {"to": "Agent-3", "body": "more?", "reply_to": secret}],
        ["read_message", {"id": asked}],
        ["send_message", {"to": "Agent-2", "body": "port 8080"}],
    ]);
    let agent3_inbox = root.inbox_files("Agent-3");
    let out = crate::mcp::client(&root, "Agent-1", &calls);
    let r = out["results"].as_array().unwrap();
    let text = |i: usize| crate::mcp::text(&r[i]);

    // The status counts only what concerns Agent-1: the message to it and
    // its copy of the broadcast; no other agent's line, no other id.
    assert!(!r[0]["isError"].as_bool().unwrap(), "{}", r[0]);
    let status: serde_json::Value = serde_json::from_str(&text(0)).unwrap();
    let total: u64 = status["queue"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|by_priority| by_priority.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 2, "{status}");
    let agents: Vec<&str> = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["Agent-1"], "{status}");
    assert!(!text(0).contains(&secret), "{status}");
    assert_eq!(status["failed_total"], 0, "{status}");

    // Another agent's message is "no such message", word for word what a
    // message that does not exist gets: its existence is not confirmed.
    let unknown = text(2).replace(missing, "ID");
    assert!(r[2]["isError"].as_bool().unwrap(), "{}", r[2]);
    assert!(unknown.contains("no message with id ID"), "{unknown}");
    for i in [1, 3, 4, 5] {
        assert!(r[i]["isError"].as_bool().unwrap(), "call {i}: {}", r[i]);
        assert_eq!(text(i).replace(&secret, "ID"), unknown, "call {i}");
        assert!(!text(i).contains("deploy key"), "call {i}: {}", r[i]);
    }
    // Nothing was acknowledged, answered or sent by the refused calls.
    let read = root.run(&["--json", "inbox", "read", &secret]);
    let read: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert!(read["deliveries"][0]["acked_by"].is_null(), "{read}");
    assert_eq!(root.inbox_files("Agent-3"), agent3_inbox);

    // Its own messages it reads and answers as before.
    assert!(!r[6]["isError"].as_bool().unwrap(), "{}", r[6]);
    assert!(text(6).contains("which port?"), "{}", r[6]);
    assert!(!r[7]["isError"].as_bool().unwrap(), "{}", r[7]);
}

/// `acp run` on `root` with `env` in `.env`; returns it and the base URL of
/// its HTTP door, from the log line that names it.
fn serve(root: &Root, env: &str) -> (crate::support::Service, String) {
    fs::write(root.path().join(".env"), env).unwrap();
    let service = root.service();
    let mut base = String::new();
    crate::support::wait_until(LIMIT, || {
        let log = fs::read_to_string(root.path().join("service.log")).unwrap_or_default();
        if let Some(at) = log.find("(/metrics) at http://") {
            let rest = &log[at + "(/metrics) at ".len()..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            rest[..end].trim_end_matches('/').clone_into(&mut base);
        }
        !base.is_empty()
    });
    (service, base)
}

const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `sha256=HEX`, the HMAC-SHA256 of `body` under `secret`.
fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex = mac
        .finalize()
        .into_bytes()
        .iter()
        .fold(String::new(), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        });
    format!("sha256={hex}")
}

/// Messages in the store, all states.
fn messages(root: &Root) -> u64 {
    let s = crate::support::status(root);
    ["queued", "delivering", "delivered", "failed"]
        .iter()
        .map(|state| crate::support::count(&s, state))
        .sum()
}

#[test]
fn a_signed_webhook_body_replayed_under_a_new_delivery_id_stores_nothing() {
    let root = Root::new(1);
    root.fast().edit_config(
        "# [[http.hooks]]\n# name = \"github\"\n# repository = \"you/project\"\n# branch = \"main\"\n# agent = \"Agent-3\"",
        "[[http.hooks]]\nname = \"ci\"\nrepository = \"*\"\nbranch = \"*\"\nagent = \"Agent-1\"",
    );
    let (_service, base) = serve(&root, "ACP_HOOK_SECRET_CI=ci-hook-secret\n");
    let client = reqwest::blocking::Client::builder()
        .timeout(LIMIT)
        .build()
        .unwrap();
    let body = br#"{"repository": "you/project", "branch": "main", "conclusion": "failure", "title": "deploy to prod"}"#;
    let sig = signature("ci-hook-secret", body);
    let post = |delivery: &str| {
        let response = client
            .post(format!("{base}/hooks/ci"))
            .header("content-type", "application/json")
            .header("x-delivery-id", delivery)
            .header("x-hub-signature-256", &sig)
            .body(body.to_vec())
            .send()
            .unwrap();
        let code = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let value: serde_json::Value = response.json().unwrap();
        (code, kind, value)
    };
    let (code, _, first) = post("delivery-1");
    assert_eq!(code, 201, "{first}");
    assert_eq!(first["result"], "sent");
    assert_eq!(messages(&root), 1);

    // The sender's own redelivery (same id) keeps its answer.
    let (code, _, again) = post("delivery-1");
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["result"], "duplicate");
    assert_eq!(again["message_id"], first["message_id"]);

    // Someone who captured the signed request sends it again with new
    // delivery ids: refused, said so, nothing stored.
    for delivery in ["delivery-2", "delivery-3"] {
        let (code, kind, problem) = post(delivery);
        assert_eq!(code, 409, "{problem}");
        assert_eq!(kind, "application/problem+json");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("a replay") && detail.contains("nothing was stored"),
            "{detail}"
        );
    }
    assert_eq!(messages(&root), 1);
    assert_eq!(root.inbox_ids("Agent-1").len(), 1);
    // The person sees the attempts in the audit log.
    let audit = root.run(&["--json", "audit"]);
    let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let refused = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "hook.receive" && a["outcome"] == "refused")
        .count();
    assert_eq!(refused, 2, "{audit}");

    // The served description says what a replay gets.
    let spec: serde_json::Value = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let hook = &spec["paths"]["/hooks/{name}"]["post"];
    for code in ["200", "201", "401", "409"] {
        assert!(!hook["responses"][code].is_null(), "{code}: {hook}");
    }
    let outcome = &spec["components"]["schemas"]["HookOutcome"];
    let mut schema = outcome.clone();
    schema["components"] = spec["components"].clone();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for answer in [&first, &again] {
        assert!(validator.is_valid(answer), "{answer}");
    }
}

/// The `allowed_mentions` of every request that made or edited a message
/// (channel and webhook posts, interaction replies, follow-ups, edits);
/// panics on one that has none. Returns how many there were.
fn assert_nobody_pinged(standin: &StandIn) -> usize {
    assert_nobody_pinged_but(standin, |_| false)
}

/// [`assert_nobody_pinged`], but for the requests `may_ping` names.
pub(crate) fn assert_nobody_pinged_but(
    standin: &StandIn,
    may_ping: impl Fn(&crate::standin::Recorded) -> bool,
) -> usize {
    let mut checked = 0;
    for r in standin.requests().iter().filter(|r| !may_ping(r)) {
        let makes_message = match r.method.as_str() {
            "POST" if r.path.ends_with("/callback") => r.body["data"]["content"].is_string(),
            "POST" => r.path.ends_with("/messages") || r.path.starts_with("/webhooks/"),
            "PATCH" => r.path.contains("/messages/"),
            _ => false,
        };
        if !makes_message {
            continue;
        }
        let mentions = if r.path.ends_with("/callback") {
            &r.body["data"]["allowed_mentions"]
        } else {
            &r.body["allowed_mentions"]
        };
        assert_eq!(
            mentions["parse"],
            json!([]),
            "{} {}: {}",
            r.method,
            r.path,
            r.body
        );
        for list in ["users", "roles"] {
            assert!(
                mentions[list].as_array().is_none_or(Vec::is_empty),
                "{} {}: {}",
                r.method,
                r.path,
                r.body
            );
        }
        assert_ne!(mentions["replied_user"], true, "{} {}", r.method, r.path);
        checked += 1;
    }
    checked
}

const PING: &str = "@everyone look at <@123456789012345678> and <@&223456789012345678>";

#[test]
fn nothing_acp_posts_pings_anyone_and_other_servers_are_refused() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast()
        .edit_config("devlog_settle_ms = 1000", "devlog_settle_ms = 50");
    swarm(&root);
    fs::write(
        root.path().join(".env"),
        format!(
            "DISCORD_TOKEN=standin-token\nDISCORD_DEVLOG_WEBHOOK={}/api/webhooks/800000000000000009/hook-token\n",
            standin.base
        ),
    )
    .unwrap();
    let _bot = crate::discord::start(&root, &standin);

    // An agent (prompt-injected, say) posts to Discord, and writes a
    // devlog that goes through the webhook.
    let out = as_agent(&root, "Agent-1", &["send", "--to", "discord", PING]);
    assert!(out.status.success(), "{}", stderr(&out));
    let devlog = root.path().join("devlogs/Agent-1/ping.md");
    fs::create_dir_all(devlog.parent().unwrap()).unwrap();
    fs::write(&devlog, format!("# Done\n\n{PING}")).unwrap();
    let out = as_agent(&root, "Agent-1", &["devlog", "post", "Agent-1/ping.md"]);
    assert!(out.status.success(), "{}", stderr(&out));
    standin.wait_for(0, LIMIT, |r| {
        r.method == "POST" && r.path.starts_with("/webhooks/800000000000000009/")
    });
    standin.wait_posts(LIMIT, |posts| {
        posts.iter().filter(|p| p.content.contains(PING)).count() == 2
    });

    // An operator sends the same text to Agent-1 (its receipt quotes
    // nothing, but is edited), then lists Agent-1's inbox, which shows it.
    let from = standin.requests().len();
    let reply = command(
        &standin,
        400_000_000_000_002_001,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": PING}]),
        &[OPERATOR],
    );
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Accepted"),
        "{reply}"
    );
    original_edit(&standin, from, 400_000_000_000_002_001, LIMIT);
    let listing = command(
        &standin,
        400_000_000_000_002_002,
        "inbox",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}]),
        &[OPERATOR],
    );
    assert!(
        listing["data"]["content"]
            .as_str()
            .unwrap()
            .contains("@everyone"),
        "{listing}"
    );

    // Every message acp made or edited: nobody pinged.
    assert!(assert_nobody_pinged(&standin) >= 5);

    // A command from a server other than discord.guild_id is refused,
    // saying why; nothing is stored, and the home server still works.
    let before = root.inbox_files("Agent-2");
    let mut elsewhere = interaction(
        400_000_000_000_002_003,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-2"}, {"name": "text", "type": 3, "value": "from another server"}]),
        &[OPERATOR],
    );
    elsewhere["guild_id"] = json!("200000000000000099");
    elsewhere["authorizing_integration_owners"] = json!({"0": "200000000000000099"});
    let refused = dispatch(&standin, 400_000_000_000_002_003, elsewhere);
    assert_ephemeral(&refused, "only in the server set as `discord.guild_id`");
    let reply = command(
        &standin,
        400_000_000_000_002_004,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-2"}, {"name": "text", "type": 3, "value": "from home"}]),
        &[OPERATOR],
    );
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Accepted"),
        "{reply}"
    );
    crate::support::wait_until(LIMIT, || root.inbox_files("Agent-2").len() > before.len());
    assert_eq!(root.inbox_files("Agent-2").len(), before.len() + 1);
    let listing = root.run(&["--json", "inbox", "list", "--agent", "Agent-2"]);
    assert!(!stdout(&listing).contains("from another server"));
    assert_nobody_pinged(&standin);
    standin.assert_no_violations();

    // The doctor says the bot is held to one server.
    let doctor: serde_json::Value =
        serde_json::from_slice(&root.run(&["doctor", "--json"]).stdout).unwrap();
    let server = doctor_check(&doctor, "discord server");
    assert_eq!(server["level"], "ok", "{doctor}");
}

/// One check of `acp doctor --json`.
fn doctor_check(doctor: &serde_json::Value, name: &str) -> serde_json::Value {
    doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {doctor}"))
        .clone()
}

#[test]
fn without_a_guild_id_the_doctor_and_the_bot_say_what_to_set() {
    let standin = StandIn::start();
    let root = Root::new(1);
    fs::write(root.path().join(".env"), "DISCORD_TOKEN=standin-token\n").unwrap();
    root.edit_config(
        "api_base = \"\"",
        &format!("api_base = \"{}\"", standin.base),
    );
    let doctor: serde_json::Value =
        serde_json::from_slice(&root.run(&["doctor", "--json"]).stdout).unwrap();
    let server = doctor_check(&doctor, "discord server");
    assert_eq!(server["level"], "warn", "{doctor}");
    assert!(
        server["detail"]
            .as_str()
            .unwrap()
            .contains("every server the bot is in"),
        "{server}"
    );
    let fix = server["fix"].as_str().unwrap();
    assert!(
        fix.contains("guild_id") && fix.contains("Copy Server ID"),
        "{fix}"
    );

    let _bot = crate::discord::spawn(&root, &standin, "standin-token", "run");
    // Registered for every server (no guild in the path) ...
    standin.wait_for(0, LIMIT, |r| {
        r.method == "PUT" && r.path == format!("/applications/{APP_ID}/commands")
    });
    // ... and the log says so, with what to set.
    let log = fs::read_to_string(root.path().join("service.log")).unwrap();
    assert!(
        log.contains("WARN")
            && log.contains("no discord.guild_id")
            && log.contains("Copy Server ID"),
        "{log}"
    );
}

const BOT_TOKEN: &str = "MTAwMDAwMDAwMDAwMDAwMDAx.GhIjKl.b0t-s3cret-abcdefghijklmnopqrstuv";
const WEBHOOK_TOKEN: &str = "w3bh00k-s3cret-0123456789abcdefghijklmnop";
const API_TOKEN: &str = "api-s3cret-0123456789abcdef";

/// What `acp run` logged from byte `from` on.
fn log_since(root: &Root, from: usize) -> String {
    let log = fs::read(root.path().join("service.log")).unwrap_or_default();
    String::from_utf8_lossy(&log[from.min(log.len())..]).into_owned()
}

/// The log holds no secret and no byte array (a body logged with `?`).
fn assert_no_secrets(log: &str, interaction_token: &str) {
    for secret in [BOT_TOKEN, WEBHOOK_TOKEN, API_TOKEN, interaction_token] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
    let bytes = regex::Regex::new(r"(\d{1,3}, ){15,}\d{1,3}").unwrap();
    assert!(!bytes.is_match(log), "a byte array in the log:\n{log}");
}

#[test]
fn no_log_level_shows_a_secret_and_bodies_show_only_at_trace_as_text() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast()
        .edit_config("devlog_settle_ms = 1000", "devlog_settle_ms = 50");
    swarm(&root);
    fs::write(
        root.path().join(".env"),
        format!(
            "DISCORD_TOKEN={BOT_TOKEN}\nDISCORD_DEVLOG_WEBHOOK={}/api/webhooks/800000000000000009/{WEBHOOK_TOKEN}\nACP_API_TOKEN={API_TOKEN}\n",
            standin.base
        ),
    )
    .unwrap();

    // At trace, the most anyone can ask for: a command, an agent's post, a
    // devlog through the webhook and an API call.
    let bot = crate::discord::spawn_logging(&root, &standin.base, BOT_TOKEN, "run", "trace");
    crate::discord::registered(&standin);
    let id = 400_000_000_000_003_001;
    let from = standin.requests().len();
    command(
        &standin,
        id,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-1"}, {"name": "text", "type": 3, "value": "operator says café ✓"}]),
        &[OPERATOR],
    );
    original_edit(&standin, from, id, LIMIT);
    let out = as_agent(
        &root,
        "Agent-1",
        &["send", "--to", "discord", "agent reports café ✓"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let devlog = root.path().join("devlogs/Agent-1/today.md");
    fs::create_dir_all(devlog.parent().unwrap()).unwrap();
    fs::write(&devlog, "# Today\n\ndevlog says café ✓").unwrap();
    let out = as_agent(&root, "Agent-1", &["devlog", "post", "Agent-1/today.md"]);
    assert!(out.status.success(), "{}", stderr(&out));
    standin.wait_posts(LIMIT, |posts| {
        posts
            .iter()
            .any(|p| p.content.contains("agent reports café ✓"))
            && posts
                .iter()
                .any(|p| p.content.contains("devlog says café ✓"))
    });
    let base = {
        let log = log_since(&root, 0);
        let at = log.find("(/metrics) at http://").unwrap() + "(/metrics) at ".len();
        log[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    };
    let status = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(API_TOKEN)
        .send()
        .unwrap();
    assert_eq!(status.status(), 200);
    // The webhook post's trace line is written before the post is made.
    crate::support::wait_until(LIMIT, || {
        log_since(&root, 0).contains("body=\"📝 devlog `Agent-1/today.md`")
    });
    drop(bot);
    let log = log_since(&root, 0);
    assert!(log.contains(" TRACE "), "not at trace:\n{log}");
    assert_no_secrets(&log, &format!("token-{id}"));
    // Each body is there as text, and only on trace lines.
    for body in ["agent reports café ✓", "devlog says café ✓"] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(body)).collect();
        assert!(!lines.is_empty(), "{body} is not in the log:\n{log}");
        for line in lines {
            assert!(line.contains(" TRACE "), "{body} above trace: {line}");
        }
    }
    assert!(
        log.lines()
            .filter(|l| l.contains("operator says café ✓"))
            .all(|l| l.contains(" TRACE ")),
        "{log}"
    );

    // At debug, which docs/troubleshooting.md suggests: no secret,
    // no body.
    let from_byte = fs::metadata(root.path().join("service.log")).unwrap().len();
    let from = standin.requests().len();
    let bot = crate::discord::spawn_logging(&root, &standin.base, BOT_TOKEN, "run", "debug");
    standin.wait_for(from, LIMIT, |r| {
        r.method == "PUT" && r.path.ends_with("/commands")
    });
    let out = as_agent(
        &root,
        "Agent-2",
        &["send", "--to", "discord", "debug-time body ✓"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = stdout(&out).lines().next().unwrap().trim().to_owned();
    let from_byte = usize::try_from(from_byte).unwrap();
    crate::support::wait_until(LIMIT, || {
        log_since(&root, from_byte).contains(&format!("delivered message_id={sent}"))
    });
    drop(bot);
    let log = log_since(&root, from_byte);
    assert_no_secrets(&log, &format!("token-{id}"));
    assert!(!log.contains("debug-time body"), "a body at debug:\n{log}");
    standin.assert_no_violations();
}
