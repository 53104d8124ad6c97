// Over 400 lines: one story per finding of the security review (issue 20), each an attack
// replayed against real parts.

//! Findings 4, 8, 9, 14 and 16 of the security review, each reproduced as
//! the attack was described, against the real binary, the real bot and the
//! loopback stand-in Discord, the real HTTP door, and the official Python
//! MCP client.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    let calls = serde_json::json!([
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
            base = rest[..end].trim_end_matches('/').to_owned();
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
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
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
