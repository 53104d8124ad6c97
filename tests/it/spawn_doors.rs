//! Agents that come and go, from the doors: the HTTP API (`POST`,
//! `DELETE` and `.../restart` under `/api/v1/agents`) and Discord
//! (`/spawn`, `/stop` with its confirmation, `/restart`), each starting a
//! real tmux window in a real git worktree.

use std::fs;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::spawn::{LIMIT, agent_ids, delivery, git, project_root, repo, texts};
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
    let tmux = Tmux::new();
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
    assert_eq!(panes(&tmux), [new_pane.clone()], "the old window is closed");
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
