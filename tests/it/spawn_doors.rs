//! Agents that come and go, from the doors: the HTTP API (`POST`,
//! `DELETE` and `.../restart` under `/api/v1/agents`) and Discord
//! (`/spawn`, `/stop` with its confirmation, `/restart`), each starting a
//! real tmux window in a real git worktree.

use std::fs;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::discord::{ADMIN, OPERATOR, assert_ephemeral, command, start};
use crate::outbox::{as_agent, swarm, token_in_dotenv};
use crate::spawn::{LIMIT, agent_ids, delivery, git, project_root, repo, texts};
use crate::standin::{
    APP_ID, CHANNEL_ID, GatewayCmd, ORIGINAL_ID, StandIn, button_press, interaction, interaction_in,
};
use crate::support::{Root, stderr, wait_until};
use crate::tmux::Tmux;
use crate::web::{CI_TOKEN, Spec, TOKEN, Web, serve};

const ONBOARDING: &str = "You are a web agent: end each task with a devlog";

/// The pane ids on the test's tmux server.
fn panes(tmux: &Tmux) -> Vec<String> {
    let out = tmux
        .cmd(&["list-panes", "-a", "-F", "#{pane_id}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A tmux server that outlives the agents' windows (its own window runs
/// on), so pane ids are never given twice.
fn tmux_server() -> Tmux {
    let tmux = Tmux::new();
    tmux.open(&[("keep", "sleep 600".to_owned())]);
    tmux
}

/// What a pane shows.
fn screen(tmux: &Tmux, pane: &str) -> String {
    let out = tmux
        .cmd(&["capture-pane", "-p", "-t", pane])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes the recording prompt of `agent` (in `pane`) busy, and waits until
/// it shows it: messages for it wait in the queue.
pub(crate) fn busy(tmux: &Tmux, records: &Path, agent: &str, pane: &str) {
    fs::write(records.join(format!("{agent}.jsonl.busy")), "").unwrap();
    wait_until(LIMIT, || screen(tmux, pane).contains("working..."));
}

/// The audit log, newest first.
fn audit(root: &Root) -> Vec<Value> {
    let out = root.run(&["audit", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Whether the audit log has `actor` doing `action` to `target` with
/// `outcome`.
fn audited(root: &Root, actor: &str, action: &str, target: &str, outcome: &str) -> bool {
    audit(root).iter().any(|e| {
        e["actor"].as_str().is_some_and(|a| a.starts_with(actor))
            && e["action"] == action
            && e["target"] == target
            && e["outcome"] == outcome
    })
}

fn call(web: &Web, token: &str, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    web.call_as(token, method, path, body)
}

#[test]
fn the_api_starts_stops_and_restarts_agents_with_the_admin_scope() {
    let tmux = tmux_server();
    let repo = repo();
    let records = tempfile::tempdir().unwrap();
    let root = project_root(&tmux, repo.path(), records.path());
    let web = serve(&root, "");
    let spec = Spec::of(&web);
    wait_until(LIMIT, || {
        !crate::support::status(&root)["service_config"].is_null()
    });

    // A token that may only send: refused, nothing started.
    let start = json!({"project": "web", "task": "fix the login redirect"});
    let (code, problem) = call(&web, CI_TOKEN, Method::POST, "/api/v1/agents", Some(&start));
    assert_eq!(code, 403, "{problem}");
    spec.check("post", "/agents", 403, &problem);
    assert!(
        problem["detail"].as_str().unwrap().contains("admin scope"),
        "{problem}"
    );
    assert!(!agent_ids(&root).contains(&"web-1".to_owned()));
    // An unknown project: 404 naming the projects there are.
    let (code, problem) = web.post("/api/v1/agents", &json!({"project": "api"}));
    assert_eq!(code, 404, "{problem}");
    spec.check("post", "/agents", 404, &problem);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("the projects are web"),
        "{problem}"
    );

    // Started: a window, its worktree and branch, taken in by the running
    // service (the request does not hold up the reload it asks for).
    let (code, report) = web.post("/api/v1/agents", &start);
    assert_eq!(code, 201, "{report}");
    spec.check("post", "/agents", 201, &report);
    assert_eq!(report["agent"]["id"], "web-1", "{report}");
    assert_eq!(report["agent"]["branch"], "acp/web-1", "{report}");
    assert_eq!(
        report["service"], "the running acp run took the agent in",
        "{report}"
    );
    let pane = report["agent"]["target"].as_str().unwrap().to_owned();
    assert!(panes(&tmux).contains(&pane), "{pane}: {:?}", panes(&tmux));
    let worktree = root.path().join("worktrees/web/web-1");
    assert!(worktree.join("README").is_file());
    assert!(git(repo.path(), &["branch", "--list", "acp/web-1"]).contains("acp/web-1"));
    wait_until(LIMIT, || texts(records.path(), "web-1").len() >= 2);
    assert_eq!(
        texts(records.path(), "web-1"),
        [ONBOARDING, "fix the login redirect"]
    );
    // The id is never given twice.
    let (code, problem) = web.post("/api/v1/agents", &json!({"project": "web", "id": "web-1"}));
    assert_eq!(code, 409, "{problem}");
    spec.check("post", "/agents", 409, &problem);

    // Restarted: a new window in the same worktree, its onboarding again.
    let (code, problem) = call(
        &web,
        CI_TOKEN,
        Method::POST,
        "/api/v1/agents/web-1/restart",
        None,
    );
    assert_eq!(code, 403, "{problem}");
    let (code, report) = call(
        &web,
        TOKEN,
        Method::POST,
        "/api/v1/agents/web-1/restart",
        None,
    );
    assert_eq!(code, 200, "{report}");
    spec.check("post", "/agents/{agent}/restart", 200, &report);
    let new_pane = report["agent"]["target"].as_str().unwrap().to_owned();
    assert_ne!(new_pane, pane);
    assert!(panes(&tmux).contains(&new_pane));
    assert!(!panes(&tmux).contains(&pane), "the old window is closed");
    wait_until(LIMIT, || texts(records.path(), "web-1").len() == 3);
    assert_eq!(texts(records.path(), "web-1")[2], ONBOARDING);

    // A message waiting for it when it stops fails, saying why.
    busy(&tmux, records.path(), "web-1", &new_pane);
    let (code, sent) = web.post(
        "/api/v1/messages",
        &json!({"to": "web-1", "body": "never read"}),
    );
    assert_eq!(code, 201, "{sent}");
    let waiting = sent["id"].as_str().unwrap().to_owned();
    wait_until(LIMIT, || {
        delivery(&root, &waiting)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is busy"))
    });

    // A worktree with changes is not removed, and nothing is stopped: 409.
    fs::write(worktree.join("notes.txt"), "half done\n").unwrap();
    let (code, problem) = call(
        &web,
        TOKEN,
        Method::DELETE,
        "/api/v1/agents/web-1?remove_worktree=true",
        None,
    );
    assert_eq!(code, 409, "{problem}");
    spec.check("delete", "/agents/{agent}", 409, &problem);
    assert!(
        problem["detail"].as_str().unwrap().contains("notes.txt"),
        "{problem}"
    );
    assert!(agent_ids(&root).contains(&"web-1".to_owned()));
    let (code, _) = call(&web, CI_TOKEN, Method::DELETE, "/api/v1/agents/web-1", None);
    assert_eq!(code, 403);
    assert!(panes(&tmux).contains(&new_pane));

    // Stopped, once.
    let (code, report) = call(&web, TOKEN, Method::DELETE, "/api/v1/agents/web-1", None);
    assert_eq!(code, 200, "{report}");
    spec.check("delete", "/agents/{agent}", 200, &report);
    assert_eq!(report["window_closed"], true, "{report}");
    assert_eq!(report["failed"], json!([waiting]), "{report}");
    assert_eq!(report["worktree_removed"], false, "{report}");
    assert!(!panes(&tmux).contains(&new_pane), "its window is closed");
    let d = delivery(&root, &waiting);
    assert_eq!(d["state"], "failed", "{d}");
    assert!(
        d["detail"]
            .as_str()
            .unwrap()
            .contains("web-1 was stopped by http:api"),
        "{d}"
    );
    assert!(!agent_ids(&root).contains(&"web-1".to_owned()));
    let (code, problem) = call(&web, TOKEN, Method::DELETE, "/api/v1/agents/web-1", None);
    assert_eq!(code, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already stopped"),
        "{problem}"
    );
    // Not an agent acp started: 404; a configured one: 409, saying why.
    let (code, problem) = call(&web, TOKEN, Method::DELETE, "/api/v1/agents/web-9", None);
    assert_eq!(code, 404, "{problem}");
    spec.check("delete", "/agents/{agent}", 404, &problem);
    let (code, problem) = call(&web, TOKEN, Method::DELETE, "/api/v1/agents/Agent-1", None);
    assert_eq!(code, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("config/acp.toml"),
        "{problem}"
    );

    // Each audited as the token.
    for action in ["agent.spawn", "agent.restart", "agent.stop"] {
        assert!(
            audited(&root, "http:api", action, "web-1", "ok"),
            "{action}: {:#?}",
            audit(&root)
        );
    }
}

/// A slash command's options.
fn options(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(name, value)| json!({"name": name, "type": 3, "value": value}))
        .collect()
}

/// Sends interaction `id` and returns its callback, and the gateway
/// session it went to.
fn interact(standin: &StandIn, id: u64, payload: Value) -> (Value, usize) {
    let from = standin.requests().len();
    let session = standin.gateway(GatewayCmd::Dispatch("INTERACTION_CREATE", payload));
    let callback = standin
        .wait_for(from, LIMIT, |r| {
            r.method == "POST" && r.path == format!("/interactions/{id}/token-{id}/callback")
        })
        .body;
    (callback, session)
}

/// The follow-up of deferred interaction `id`: the reply.
fn follow_up(standin: &StandIn, id: u64) -> Value {
    let path = format!("/webhooks/{APP_ID}/token-{id}");
    standin
        .wait_for(0, LIMIT, |r| r.method == "POST" && r.path == path)
        .body
}

/// What the member typing `typed` into `option` of `command` is offered.
fn offered(standin: &StandIn, id: u64, command: &str, option: &str, typed: &str) -> Vec<String> {
    let mut payload = interaction(
        id,
        command,
        &json!([{"name": option, "type": 3, "value": typed, "focused": true}]),
        &[ADMIN],
    );
    payload["type"] = json!(4);
    let (answer, _) = interact(standin, id, payload);
    assert_eq!(answer["type"], 8, "{answer}");
    answer["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap().to_owned())
        .collect()
}

/// The pane a start's or restart's reply names.
fn pane_in(reply: &str) -> String {
    let at = reply.find("tmux pane `").unwrap() + "tmux pane `".len();
    reply[at..].split('`').next().unwrap().to_owned()
}

/// The user the stand-in gives interaction `id`.
fn user_of(id: u64) -> u64 {
    600_000_000_000_000_000 + id % 1_000_000
}

fn content(v: &Value) -> &str {
    v["data"]["content"]
        .as_str()
        .or_else(|| v["content"].as_str())
        .unwrap_or_default()
}

#[test]
fn discord_starts_an_agent_in_its_thread_and_asks_before_stopping_it() {
    let standin = StandIn::start();
    let tmux = tmux_server();
    let repo = repo();
    let records = tempfile::tempdir().unwrap();
    let root = project_root(&tmux, repo.path(), records.path());
    token_in_dotenv(&root);
    swarm(&root);
    root.edit_config("agent_threads = false", "agent_threads = true");
    let bot = start(&root, &standin);

    // An operator may not start agents: refused to them alone, audited.
    let spawn_web = options(&[("project", "web"), ("task", "fix the login redirect")]);
    let reply = command(&standin, 1, "spawn", &spawn_web, &[OPERATOR]);
    assert_ephemeral(&reply, "needs the **admin** level");
    assert!(!agent_ids(&root).contains(&"web-1".to_owned()));
    assert!(audit(&root).iter().any(|e| {
        e["action"] == "/spawn"
            && e["outcome"] == "refused"
            && e["actor"]
                .as_str()
                .unwrap()
                .starts_with(&format!("discord:{}", user_of(1)))
    }));
    // The projects come from the config.
    assert_eq!(offered(&standin, 2, "spawn", "project", "w"), ["web"]);

    // An admin starts one: deferred, then where it runs and that the
    // service took it in.
    let (deferred, session) = interact(&standin, 3, interaction(3, "spawn", &spawn_web, &[ADMIN]));
    assert_eq!(deferred["type"], 5, "{deferred}");
    let reply = follow_up(&standin, 3);
    let text = content(&reply);
    for says in [
        "**web-1** started in project web: tmux pane `%",
        "on branch `acp/web-1`",
        "The running acp run took the agent in",
        &format!("Its thread in <#{CHANNEL_ID}>"),
    ] {
        assert!(text.contains(says), "{says}: {text}");
    }
    assert!(panes(&tmux).contains(&pane_in(text)));
    assert!(root.path().join("worktrees/web/web-1/README").is_file());
    assert!(git(repo.path(), &["branch", "--list", "acp/web-1"]).contains("acp/web-1"));
    wait_until(LIMIT, || texts(records.path(), "web-1").len() >= 2);
    assert_eq!(
        texts(records.path(), "web-1"),
        [ONBOARDING, "fix the login redirect"]
    );
    // Its thread, made by the start's post, as an agent's first post makes
    // one.
    let posts = standin.wait_posts(LIMIT, |p| {
        p.iter()
            .any(|p| p.content.starts_with("**web-1**: started by"))
    });
    let start_post = posts
        .iter()
        .find(|p| p.content.starts_with("**web-1**: started by"))
        .unwrap();
    assert!(
        start_post
            .content
            .contains(&format!("started by <@{}> in project web", user_of(3))),
        "{}",
        start_post.content
    );
    assert!(start_post.content.contains("fix the login redirect"));
    let thread = start_post.channel.clone();
    assert_eq!(
        standin.threads(),
        [(CHANNEL_ID.to_owned(), thread.clone(), "web-1".to_owned())]
    );
    standin.wait_live_after(session, LIMIT);

    // The agent and its thread survive a restart of acp run.
    assert!(bot.terminate().success());
    let from = standin.requests().len();
    let _bot = crate::discord::spawn(&root, &standin, "standin-token", "run");
    standin.wait_for(from, LIMIT, |r| {
        r.method == "PUT" && r.path.ends_with("/commands")
    });
    let out = as_agent(
        &root,
        "web-1",
        &["send", "--to", "discord", "redirect fixed"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    standin.wait_posts(LIMIT, |p| {
        p.iter()
            .any(|p| p.channel == thread && p.content == "**web-1**: redirect fixed")
    });
    assert_eq!(standin.threads().len(), 1, "no second thread");
    // Typed in its thread, a message needs no agent.
    let reply = command_in(&standin, 4, &[("text", "now the signup page")], &thread);
    assert!(content(&reply).contains("Accepted"), "{reply}");
    wait_until(LIMIT, || texts(records.path(), "web-1").len() >= 3);
    assert_eq!(texts(records.path(), "web-1")[2], "now the signup page");

    // A restart: a new window, its onboarding again.
    assert_eq!(offered(&standin, 5, "restart", "agent", ""), ["web-1"]);
    let (deferred, session) = interact(
        &standin,
        6,
        interaction(6, "restart", &options(&[("agent", "web-1")]), &[ADMIN]),
    );
    assert_eq!(deferred["type"], 5, "{deferred}");
    let old_pane = pane_in(text);
    let reply = follow_up(&standin, 6);
    assert!(content(&reply).contains("**web-1** restarted"), "{reply}");
    let pane = pane_in(content(&reply));
    assert_ne!(pane, old_pane);
    assert!(
        !panes(&tmux).contains(&old_pane),
        "the old window is closed"
    );
    wait_until(LIMIT, || texts(records.path(), "web-1").len() >= 4);
    assert_eq!(texts(records.path(), "web-1")[3], ONBOARDING);
    standin.wait_live_after(session, LIMIT);

    // Only started agents are offered for a stop; asking shows buttons,
    // and Cancel leaves it running.
    assert_eq!(offered(&standin, 7, "stop", "agent", ""), ["web-1"]);
    let stop = options(&[("agent", "web-1")]);
    let ask = command(&standin, 8, "stop", &stop, &[ADMIN]);
    assert_eq!(ask["type"], 4, "{ask}");
    assert!(content(&ask).contains("Stop **web-1**"), "{ask}");
    let buttons = ask["data"]["components"][0]["components"].clone();
    let custom_id = |label: &str| {
        buttons
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["label"].as_str().unwrap().starts_with(label))
            .unwrap()["custom_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let press = |id: u64, label: &str, roles: &[&str], user: u64| {
        button_press(id, &custom_id(label), ORIGINAL_ID, CHANNEL_ID, roles, user)
    };
    let (cancelled, _) = interact(&standin, 9, press(9, "Cancel", &[ADMIN], user_of(8)));
    assert_eq!(cancelled["type"], 7, "{cancelled}");
    assert!(content(&cancelled).contains("cancelled by"), "{cancelled}");
    assert_eq!(cancelled["data"]["components"], json!([]));
    assert!(panes(&tmux).contains(&pane));

    // A message waiting for it (it is busy) when it stops.
    busy(&tmux, records.path(), "web-1", &pane);
    let out = root.run(&["send", "--to", "web-1", "never read"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let waiting = crate::support::stdout(&out)
        .lines()
        .next()
        .unwrap()
        .to_owned();
    wait_until(LIMIT, || {
        delivery(&root, &waiting)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is busy"))
    });

    // Asked again: only the admin who asked may answer.
    let asker = user_of(10);
    let ask = command(&standin, 10, "stop", &stop, &[ADMIN]);
    let buttons = ask["data"]["components"][0]["components"].clone();
    let custom_id = |label: &str| {
        buttons
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["label"].as_str().unwrap().starts_with(label))
            .unwrap()["custom_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let press = |id: u64, label: &str, roles: &[&str], user: u64| {
        button_press(id, &custom_id(label), ORIGINAL_ID, CHANNEL_ID, roles, user)
    };
    let (refused, _) = interact(&standin, 11, press(11, "Stop", &[ADMIN], asker + 1));
    assert_ephemeral(&refused, &format!("only <@{asker}>, who asked"));
    let (refused, _) = interact(&standin, 12, press(12, "Stop", &[OPERATOR], asker));
    assert_ephemeral(&refused, "needs the admin level");
    assert!(panes(&tmux).contains(&pane));
    assert!(audit(&root).iter().any(|e| e["action"] == "agent.stop"
        && e["outcome"] == "refused"
        && e["target"] == "web-1"));

    // Two presses at once: the store decides, the post says what was done,
    // and the other press is told it changed nothing.
    let from = standin.requests().len();
    let session = standin.gateway(GatewayCmd::Dispatch(
        "INTERACTION_CREATE",
        press(13, "Stop", &[ADMIN], asker),
    ));
    standin.gateway(GatewayCmd::Dispatch(
        "INTERACTION_CREATE",
        press(14, "Stop", &[ADMIN], asker),
    ));
    let edited = standin.wait_for(from, LIMIT, |r| {
        r.method == "PATCH" && r.path.ends_with("/messages/@original")
    });
    let winner: u64 = if edited.path.contains("token-13/") {
        13
    } else {
        14
    };
    let loser = 27 - winner;
    assert!(
        content(&edited.body).contains(&format!("**web-1** stopped by <@{asker}>")),
        "{}",
        edited.body
    );
    assert!(
        content(&edited.body).contains("1 queued message(s) failed"),
        "{}",
        edited.body
    );
    assert_eq!(edited.body["components"], json!([]));
    let told = standin.wait_for(from, LIMIT, |r| {
        r.method == "POST"
            && (r.path == format!("/interactions/{loser}/token-{loser}/callback")
                && r.body["type"] == 4
                || r.path == format!("/webhooks/{APP_ID}/token-{loser}"))
    });
    assert_eq!(
        told.body["data"]["flags"]
            .as_u64()
            .or(told.body["flags"].as_u64()),
        Some(64),
        "{}",
        told.body
    );
    assert!(
        content(&told.body).contains("already stopped"),
        "{}",
        told.body
    );
    assert_eq!(
        standin
            .requests()
            .iter()
            .skip(from)
            .filter(|r| r.method == "PATCH")
            .count(),
        1,
        "one press edits the post"
    );
    // Its window is gone, the waiting message failed saying why, and it is
    // no agent any more.
    assert!(!panes(&tmux).contains(&pane));
    let d = delivery(&root, &waiting);
    assert_eq!(d["state"], "failed", "{d}");
    assert!(
        d["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("web-1 was stopped by discord:{asker}")),
        "{d}"
    );
    assert!(!agent_ids(&root).contains(&"web-1".to_owned()));
    standin.wait_live_after(session, LIMIT);
    // A later press, and a later /stop, say so.
    let (late, _) = interact(&standin, 15, press(15, "Stop", &[ADMIN], asker));
    assert_ephemeral(&late, &format!("already stopped by <@{asker}>"));
    let reply = command(&standin, 16, "stop", &stop, &[ADMIN]);
    assert_ephemeral(&reply, "already stopped");
    assert!(offered(&standin, 17, "stop", "agent", "").is_empty());

    for action in ["agent.spawn", "agent.restart", "agent.stop"] {
        assert!(
            audited(&root, "discord:", action, "web-1", "ok"),
            "{action}: {:#?}",
            audit(&root)
        );
    }
    standin.assert_no_violations();
}

/// `/message` typed in `channel` (a thread) by an operator.
fn command_in(standin: &StandIn, id: u64, pairs: &[(&str, &str)], channel: &str) -> Value {
    let payload = interaction_in(id, "message", &options(pairs), &[OPERATOR], channel);
    interact(standin, id, payload).0
}
