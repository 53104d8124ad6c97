// Over 400 lines: one story per door (Discord through the stand-in, the API over a socket), each
// from a refused change to a schedule that fires through acp run.

//! Stored schedules through the other doors: `/schedule` on the real bot
//! driven by the stand-in Discord, and `/api/v1/schedules` over a real
//! socket, each checked through the command line and by a real `acp run`
//! firing what they stored.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::discord::{OPERATOR, assert_ephemeral, command, start};
use crate::schedules::list;
use crate::standin::{GatewayCmd, StandIn, interaction};
use crate::support::{Root, stderr, stdout, wait_until};
use crate::web::{CI_TOKEN, Spec, TOKEN, serve_env};

const LIMIT: Duration = Duration::from_secs(30);

/// `acp --json audit`, as (actor, action, target) rows.
fn audit(root: &Root) -> Vec<(String, String, String)> {
    let out = root.run(&["--json", "audit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or_default().to_owned(),
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["target"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The texts of the files in an agent's inbox.
fn inbox_texts(root: &Root, agent: &str) -> Vec<String> {
    root.inbox_files(agent)
        .iter()
        .map(|f| std::fs::read_to_string(root.inbox(agent).join(f)).unwrap_or_default())
        .collect()
}

/// `/schedule SUB` with these options, by a member with `roles`.
fn schedule(standin: &StandIn, id: u64, sub: &str, options: &Value, roles: &[&str]) -> Value {
    command(
        standin,
        id,
        "schedule",
        &json!([{"name": sub, "type": 1, "options": options}]),
        roles,
    )
}

fn content(reply: &Value) -> String {
    reply["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn schedule_commands_on_discord_are_gated_refuse_bad_cron_and_fire_through_acp_run() {
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast();
    let _bot = start(&root, &standin);

    // Registered with its subcommands, shown to every member (the
    // run-time check gates the changes).
    let registered = standin
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.ends_with("/commands"))
        .unwrap();
    let group = registered
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "schedule")
        .unwrap_or_else(|| panic!("/schedule not registered: {}", registered.body))
        .clone();
    let subs: Vec<&str> = group["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        subs,
        ["add", "list", "remove", "pause", "resume"],
        "{group}"
    );
    assert!(group["default_member_permissions"].is_null(), "{group}");

    let add = |text: &str, cron: &str| {
        json!([
            {"name": "cron", "type": 3, "value": cron},
            {"name": "to", "type": 3, "value": "Agent-2"},
            {"name": "text", "type": 3, "value": text},
            {"name": "priority", "type": 4, "value": 1},
            {"name": "wait_up_to", "type": 3, "value": "90s"}
        ])
    };

    // A member without the operator role: refused, only they see it,
    // nothing stored.
    let reply = schedule(
        &standin,
        410_000_000_000_000_001,
        "add",
        &add("sneaky", "* * * * * *"),
        &[],
    );
    assert_ephemeral(&reply, "`/schedule add` needs the **operator** level");
    assert!(list(&root).is_empty());

    // A bad expression: the core's error in a code block, its caret under
    // the hour field; nothing stored.
    let reply = schedule(
        &standin,
        410_000_000_000_000_002,
        "add",
        &add("x", "*/5 61 * * *"),
        &[OPERATOR],
    );
    assert_ephemeral(&reply, "the hour field at column 5");
    let text = content(&reply);
    assert!(
        text.contains("```\nbad cron expression, the hour field at column 5: ")
            && text.contains("\n  */5 61 * * *\n      ^^\n")
            && text.trim_end().ends_with("```"),
        "{text}"
    );
    assert!(list(&root).is_empty());
    let mut never = add("x", "* * * * * *");
    never[4]["value"] = json!("soon");
    let reply = schedule(
        &standin,
        410_000_000_000_000_012,
        "add",
        &never,
        &[OPERATOR],
    );
    assert_ephemeral(&reply, "wait_up_to \"soon\"");
    assert!(
        content(&reply).contains("like 90s, 10m or 1h 30m"),
        "{reply}"
    );
    assert!(list(&root).is_empty());

    // The target offers every agent, all and discord as it is typed.
    let from = standin.requests().len();
    let mut typing = interaction(
        410_000_000_000_000_003,
        "schedule",
        &json!([{"name": "add", "type": 1, "options": [
            {"name": "cron", "type": 3, "value": "* * * * * *"},
            {"name": "to", "type": 3, "value": "", "focused": true}
        ]}]),
        &[OPERATOR],
    );
    typing["type"] = json!(4);
    standin.gateway(GatewayCmd::Dispatch("INTERACTION_CREATE", typing));
    let offered = standin
        .wait_for(from, LIMIT, |r| {
            r.path == "/interactions/410000000000000003/token-410000000000000003/callback"
        })
        .body;
    let offered: Vec<&str> = offered["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["all", "discord", "Agent-1", "Agent-2"]);

    // An operator's schedule: stored (as the command line lists it),
    // audited as the member, and fired by acp run into Agent-2's inbox.
    let reply = schedule(
        &standin,
        410_000_000_000_000_004,
        "add",
        &add("tick from discord", "* * * * * *"),
        &[OPERATOR],
    );
    let text = content(&reply);
    assert!(
        text.contains("Schedule **1** stored") && text.contains("Next: "),
        "{reply}"
    );
    let stored = list(&root);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["cron"], "* * * * * *");
    assert_eq!(stored[0]["to"], "Agent-2");
    assert_eq!(stored[0]["body"], "tick from discord");
    assert_eq!(stored[0]["priority"], "urgent");
    assert_eq!(stored[0]["wait_secs"], 90);
    assert!(
        audit(&root).contains(&(
            "discord:600000000000000004:alice".into(),
            "schedule add".into(),
            "1".into()
        )),
        "{:?}",
        audit(&root)
    );
    wait_until(LIMIT, || {
        inbox_texts(&root, "Agent-2")
            .iter()
            .any(|t| t.contains("tick from discord") && t.contains("from: schedule:1"))
    });

    // /schedule list, for anyone: the zone, the last firing and the next.
    wait_until(LIMIT, || {
        let reply = schedule(&standin, 410_000_000_000_000_005, "list", &json!([]), &[]);
        content(&reply).contains(" sent · next: ")
    });
    let reply = schedule(&standin, 410_000_000_000_000_006, "list", &json!([]), &[]);
    let text = content(&reply);
    let zone = stored[0]["time_zone"].as_str().unwrap();
    assert!(
        text.contains(&format!("**1** `* * * * * *` → **Agent-2** ({zone})"))
            && text.contains("> tick from discord")
            && text.contains("last: "),
        "{text}"
    );
    assert_ne!(reply["data"]["flags"], 64, "the list is for the channel");

    // The id is offered by what the schedule does.
    let from = standin.requests().len();
    let mut typing = interaction(
        410_000_000_000_000_011,
        "schedule",
        &json!([{"name": "pause", "type": 1, "options": [
            {"name": "id", "type": 4, "value": "", "focused": true}
        ]}]),
        &[OPERATOR],
    );
    typing["type"] = json!(4);
    standin.gateway(GatewayCmd::Dispatch("INTERACTION_CREATE", typing));
    let offered = standin
        .wait_for(from, LIMIT, |r| {
            r.path == "/interactions/410000000000000011/token-410000000000000011/callback"
        })
        .body;
    assert_eq!(
        offered["data"]["choices"],
        json!([{"name": "1: * * * * * * → Agent-2: tick from discord", "value": 1}]),
        "{offered}"
    );

    // Paused, then removed by an operator; a member without the role may
    // do neither.
    let id = json!([{"name": "id", "type": 4, "value": 1}]);
    let reply = schedule(&standin, 410_000_000_000_000_007, "pause", &id, &[OPERATOR]);
    assert!(content(&reply).contains("Schedule **1** paused"), "{reply}");
    assert_eq!(list(&root)[0]["paused"], true);
    let reply = schedule(&standin, 410_000_000_000_000_008, "remove", &id, &[]);
    assert_ephemeral(&reply, "needs the **operator** level");
    assert_eq!(list(&root).len(), 1);
    let reply = schedule(
        &standin,
        410_000_000_000_000_009,
        "remove",
        &id,
        &[OPERATOR],
    );
    assert!(
        content(&reply)
            .contains("Schedule **1** removed (* * * * * * → Agent-2: tick from discord)"),
        "{reply}"
    );
    assert!(list(&root).is_empty());
    let reply = schedule(
        &standin,
        410_000_000_000_000_010,
        "remove",
        &id,
        &[OPERATOR],
    );
    assert_ephemeral(
        &reply,
        "no schedule 1: `acp schedule list` lists the schedules",
    );
    let rows = audit(&root);
    for action in ["schedule pause", "schedule remove"] {
        assert!(
            rows.iter()
                .any(|(actor, a, target)| actor.starts_with("discord:")
                    && a == action
                    && target == "1"),
            "{action}: {rows:?}"
        );
    }
    // Its firings stay in the record.
    let out = root.run(&["--json", "schedule", "firings", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let firings: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        firings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["outcome"] == "sent"),
        "{firings}"
    );
    standin.assert_no_violations();
}

#[test]
fn schedules_over_http_follow_the_description_and_fire_through_acp_run() {
    const READER: &str = "reader-token-0123456789abcdef";
    const AGENT: &str = "agent-token-0123456789abcdef";
    let root = Root::new(2);
    root.fast();
    let web = serve_env(
        &root,
        &format!(
            "ACP_API_TOKENS=api:admin={TOKEN},ci:send={CI_TOKEN},reader:read={READER},\
             one:read+send@Agent-1={AGENT}\n"
        ),
    );
    let spec = Spec::of(&web);
    let call = |token: &str, method: reqwest::Method, path: &str, body: Option<&Value>| {
        web.call_as(token, method, path, body)
    };

    let tick = json!({"cron": "* * * * * *", "to": "Agent-2", "body": "tick over http", "priority": "urgent"});
    // Read-only and agent-bound tokens change nothing.
    let (code, problem) = call(READER, Method::POST, "/api/v1/schedules", Some(&tick));
    assert_eq!(code, 403, "{problem}");
    spec.check("post", "/schedules", 403, &problem);
    assert!(
        problem["detail"].as_str().unwrap().contains("send scope"),
        "{problem}"
    );
    let (code, problem) = call(AGENT, Method::POST, "/api/v1/schedules", Some(&tick));
    assert_eq!(code, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("schedules are set by a person"),
        "{problem}"
    );

    // Bad input: the right code, the command line's text, nothing stored.
    let (code, problem) = call(
        CI_TOKEN,
        Method::POST,
        "/api/v1/schedules",
        Some(&json!({"cron": "*/5 61 * * *", "to": "Agent-2", "body": "x"})),
    );
    assert_eq!(code, 422, "{problem}");
    spec.check("post", "/schedules", 422, &problem);
    assert_eq!(problem["field"], "hour");
    assert_eq!(problem["column"], 5);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("*/5 61 * * *\n      ^^\n"),
        "{problem}"
    );
    for (body, code, says) in [
        (
            json!({"cron": "* * * * *", "to": "Agent-9", "body": "x"}),
            404,
            "Agent-9",
        ),
        (
            json!({"cron": "* * * * *", "to": "Agent-2", "body": "x", "when_busy": "later"}),
            400,
            "use wait, skip or deliver",
        ),
        (
            json!({"cron": "* * * * *", "to": "Agent-2", "body": "x", "priority": "asap"}),
            400,
            "asap",
        ),
        (
            json!({"cron": "* * * * *", "to": "Agent-2", "text": "x"}),
            400,
            "unknown field",
        ),
        (
            json!({"cron": "* * * * *", "to": "Agent-2", "body": "x", "wait_secs": 0}),
            400,
            "wait_secs must be more than 0",
        ),
    ] {
        let (got, problem) = call(CI_TOKEN, Method::POST, "/api/v1/schedules", Some(&body));
        assert_eq!(got, code, "{body}: {problem}");
        spec.check("post", "/schedules", code, &problem);
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{body}: {problem}"
        );
    }
    assert!(list(&root).is_empty());

    // A send token stores one: 201 with it, audited as the token, fired by
    // acp run into Agent-2's inbox.
    let (code, stored) = call(CI_TOKEN, Method::POST, "/api/v1/schedules", Some(&tick));
    assert_eq!(code, 201, "{stored}");
    spec.check("post", "/schedules", 201, &stored);
    let id = stored["id"].as_i64().unwrap();
    assert_eq!(stored["priority"], "urgent");
    assert!(stored["next_at"].is_i64(), "{stored}");
    assert_eq!(list(&root)[0]["body"], "tick over http");
    assert!(
        audit(&root).contains(&("http:ci".into(), "schedule add".into(), id.to_string())),
        "{:?}",
        audit(&root)
    );
    // One to every agent, which an agent's token reads too; and one to
    // Agent-2 only, which it does not.
    let (code, every) = call(
        TOKEN,
        Method::POST,
        "/api/v1/schedules",
        Some(
            &json!({"cron": "0 9 * * MON-FRI", "to": "all", "body": "stand-up", "when_busy": "skip", "catch_up": true, "wait_secs": 120}),
        ),
    );
    assert_eq!(code, 201, "{every}");
    assert_eq!(every["wait_secs"], 120);
    assert_eq!(stored["wait_secs"], 600, "the default window");
    assert_eq!(every["when_busy"], "skip");
    assert_eq!(every["catch_up"], true);
    let every = every["id"].as_i64().unwrap();
    wait_until(LIMIT, || {
        inbox_texts(&root, "Agent-2")
            .iter()
            .any(|t| t.contains("tick over http"))
    });
    let mut listed = Value::Null;
    wait_until(LIMIT, || {
        listed = call(READER, Method::GET, "/api/v1/schedules", None).1;
        listed[0]["counts"]["sent"].as_i64().unwrap_or(0) >= 2
    });
    spec.check("get", "/schedules", 200, &listed);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["last"]["outcome"], "sent", "{listed}");
    let (code, own) = call(AGENT, Method::GET, "/api/v1/schedules", None);
    assert_eq!(code, 200, "{own}");
    let own: Vec<i64> = own
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(own, [every]);
    let (code, problem) = call(
        AGENT,
        Method::GET,
        &format!("/api/v1/schedules/{id}/firings"),
        None,
    );
    assert_eq!(code, 403, "{problem}");

    // Its firings, newest first, each sent one's message in the inbox.
    let (code, firings) = call(
        READER,
        Method::GET,
        &format!("/api/v1/schedules/{id}/firings?limit=2"),
        None,
    );
    assert_eq!(code, 200, "{firings}");
    spec.check("get", "/schedules/{id}/firings", 200, &firings);
    let firings = firings.as_array().unwrap();
    assert_eq!(firings.len(), 2);
    assert!(
        firings[0]["due_at"].as_i64() > firings[1]["due_at"].as_i64(),
        "{firings:?}"
    );
    let message = firings[1]["message_id"].as_str().unwrap();
    wait_until(LIMIT, || root.inbox_ids("Agent-2").contains_key(message));

    // Paused and resumed, then removed; unknown ids are 404 everywhere.
    for (verb, paused) in [("pause", true), ("resume", false)] {
        let (code, view) = call(
            CI_TOKEN,
            Method::POST,
            &format!("/api/v1/schedules/{id}/{verb}"),
            None,
        );
        assert_eq!(code, 200, "{view}");
        spec.check("post", &format!("/schedules/{{id}}/{verb}"), 200, &view);
        assert_eq!(view["paused"], paused);
        assert_eq!(view["next"].is_null(), paused, "{view}");
    }
    let (code, problem) = call(
        READER,
        Method::DELETE,
        &format!("/api/v1/schedules/{id}"),
        None,
    );
    assert_eq!(code, 403, "{problem}");
    let (code, removed) = call(
        CI_TOKEN,
        Method::DELETE,
        &format!("/api/v1/schedules/{id}"),
        None,
    );
    assert_eq!(code, 200, "{removed}");
    spec.check("delete", "/schedules/{id}", 200, &removed);
    assert_eq!(removed, json!({"id": id, "removed": true}));
    let left: Vec<i64> = list(&root)
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(left, [every]);
    let rows = audit(&root);
    for action in ["schedule pause", "schedule resume", "schedule remove"] {
        assert!(
            rows.contains(&("http:ci".into(), action.into(), id.to_string())),
            "{action}: {rows:?}"
        );
    }
    // A removed schedule's firings stay readable.
    let (code, kept) = call(
        READER,
        Method::GET,
        &format!("/api/v1/schedules/{id}/firings"),
        None,
    );
    assert_eq!(code, 200, "{kept}");
    assert!(kept.as_array().unwrap().len() >= 2, "{kept}");
    for (method, path, spec_path, spec_method) in [
        (
            Method::DELETE,
            "/api/v1/schedules/999",
            "/schedules/{id}",
            "delete",
        ),
        (
            Method::POST,
            "/api/v1/schedules/999/pause",
            "/schedules/{id}/pause",
            "post",
        ),
        (
            Method::POST,
            "/api/v1/schedules/999/resume",
            "/schedules/{id}/resume",
            "post",
        ),
        (
            Method::GET,
            "/api/v1/schedules/999/firings",
            "/schedules/{id}/firings",
            "get",
        ),
    ] {
        let (code, problem) = call(TOKEN, method, path, None);
        assert_eq!(code, 404, "{path}: {problem}");
        spec.check(spec_method, spec_path, 404, &problem);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("no schedule 999"),
            "{problem}"
        );
    }
    let (code, problem) = call(CI_TOKEN, Method::DELETE, "/api/v1/schedules/three", None);
    assert_eq!(code, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not a schedule id"),
        "{problem}"
    );
    // The command line reads the same record.
    let out = root.run(&["schedule", "firings", &id.to_string(), "--limit", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
}
