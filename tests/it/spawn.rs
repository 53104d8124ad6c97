//! Agents that come and go: `acp spawn` starts one in a project (a real
//! tmux window, a real git worktree), `acp stop` retires it.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Root, stderr, stdout, wait_until};
use crate::tmux::Tmux;

pub(crate) const LIMIT: Duration = Duration::from_secs(30);

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// A repository with one commit.
pub(crate) fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    fs::write(dir.path().join("README"), "a web app\n").unwrap();
    git(dir.path(), &["add", "README"]);
    git(dir.path(), &["commit", "-q", "-m", "first"]);
    dir
}

/// A root with project `web`: the recording prompt in a worktree per
/// agent, on `tmux`'s server; submissions recorded under `records`. The
/// prompt is ready when its input line is empty (earlier lines show what
/// was submitted after a `>` too).
pub(crate) fn project_root(tmux: &Tmux, repo: &Path, records: &Path) -> Root {
    let root = Root::new(1);
    root.fast();
    add_project(&root, tmux, repo, records, "");
    root
}

/// Adds project `web` to `root`'s config (`extra`: more keys).
fn add_project(root: &Root, tmux: &Tmux, repo: &Path, records: &Path, extra: &str) {
    let prompt = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/prompt.py");
    let path = root.path().join("config/acp.toml");
    let mut config = fs::read_to_string(&path).unwrap();
    let table = format!(
        "\n[[projects]]\nname = \"web\"\npath = \"{}\"\ncommand = [\"/usr/bin/python3\", \
         \"{prompt}\", \"{}\"]\nfirst_prompt = \"You are a web agent: end each task with a \
         devlog\"\nworktree = true\nsocket = \"{}\"\nguard = \"^python\"\nidle_pattern = \
         \"^>$\"\n{extra}",
        repo.display(),
        records.display(),
        tmux.socket
    );
    config.push_str(&table);
    fs::write(path, config).unwrap();
}

pub(crate) fn submitted(records: &Path, agent: &str) -> Vec<Value> {
    fs::read_to_string(records.join(format!("{agent}.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn texts(records: &Path, agent: &str) -> Vec<String> {
    submitted(records, agent)
        .iter()
        .filter_map(|s| s["text"].as_str().map(str::to_owned))
        .collect()
}

pub(crate) fn agent_ids(root: &Root) -> Vec<String> {
    let out = root.run(&["--json", "agents"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn delivery(root: &Root, id: &str) -> Value {
    let out = root.run(&["--json", "inbox", "read", id]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["deliveries"][0].clone()
}

#[test]
fn a_spawned_agent_gets_its_worktree_onboarding_then_task_survives_a_restart_and_stops() {
    let tmux = Tmux::new();
    let repo = repo();
    let records = tempfile::tempdir().unwrap();
    let root = project_root(&tmux, repo.path(), records.path());
    let service = root.service();
    wait_until(LIMIT, || {
        !crate::support::status(&root)["service_config"].is_null()
    });

    let out = root.run(&["spawn", "web", "--task", "fix the login redirect"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("web-1 started in tmux pane %"), "{text}");
    assert!(text.contains("took the agent in"), "{text}");
    // The onboarding prompt, then the task, each once, in that order,
    // typed into the new agent's own pane once its prompt was ready.
    wait_until(LIMIT, || texts(records.path(), "web-1").len() >= 2);
    assert_eq!(
        texts(records.path(), "web-1"),
        [
            "You are a web agent: end each task with a devlog",
            "fix the login redirect"
        ]
    );
    // Its own worktree and branch.
    let worktree = root.path().join("worktrees/web/web-1");
    assert!(worktree.join("README").is_file());
    assert!(git(repo.path(), &["branch", "--list", "acp/web-1"]).contains("acp/web-1"));
    assert!(agent_ids(&root).contains(&"web-1".to_owned()));

    // A restart keeps it: messages still reach its pane.
    let (exit, log) = service.terminate();
    assert!(exit.success(), "{log}");
    let service = root.service();
    let out = root.run(&["send", "--to", "web-1", "--wait", "after the restart"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(LIMIT, || texts(records.path(), "web-1").len() >= 3);
    assert_eq!(texts(records.path(), "web-1")[2], "after the restart");

    // The next one gets the next number.
    let out = root.run(&["spawn", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("web-2 started"), "{}", stdout(&out));
    wait_until(LIMIT, || texts(records.path(), "web-2").len() == 1);
    // A restart: a new window in the same worktree, its onboarding again.
    let out = root.run(&["restart", "web-2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("web-2 restarted in tmux pane %"),
        "{}",
        stdout(&out)
    );
    wait_until(LIMIT, || texts(records.path(), "web-2").len() == 2);
    let out = root.run(&["send", "--to", "web-2", "--wait", "still there?"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(LIMIT, || texts(records.path(), "web-2").len() == 3);

    // A message waiting for web-1 when it is stopped fails, saying why.
    let (exit, log) = service.terminate();
    assert!(exit.success(), "{log}");
    let inbox = root.inbox("web-1");
    fs::remove_dir_all(&inbox).unwrap();
    fs::write(&inbox, "in the way").unwrap();
    let out = root.run(&["send", "--to", "web-1", "--via", "inbox", "never read"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let waiting = stdout(&out).lines().next().unwrap().trim().to_owned();
    assert_eq!(delivery(&root, &waiting)["state"], "queued");

    // A worktree with changes is not removed, and nothing is stopped.
    fs::write(worktree.join("notes.txt"), "half done\n").unwrap();
    let out = root.run(&["stop", "web-1", "--remove-worktree"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("notes.txt"), "{}", stderr(&out));
    assert!(agent_ids(&root).contains(&"web-1".to_owned()));

    let out = root.run(&["stop", "web-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("web-1 stopped (window closed); 1 queued message(s) failed"),
        "{}",
        stdout(&out)
    );
    let d = delivery(&root, &waiting);
    assert_eq!(d["state"], "failed", "{d}");
    assert!(
        d["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("web-1 was stopped"),
        "{d}"
    );
    assert!(worktree.join("notes.txt").is_file(), "the worktree stays");
    assert!(!agent_ids(&root).contains(&"web-1".to_owned()));
    assert!(agent_ids(&root).contains(&"web-2".to_owned()));
    // Once is once; a configured agent is not acp's to stop.
    let out = root.run(&["stop", "web-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already stopped"), "{}", stderr(&out));
    let out = root.run(&["stop", "Agent-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("config/acp.toml"), "{}", stderr(&out));
    // An unknown project says which there are.
    let out = root.run(&["spawn", "api"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the projects are web"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_project_on_another_machine_is_started_there_through_the_hub() {
    use crate::cluster::{Nats, Swarm, start};
    let nats = Nats::start(None);
    let swarm = Swarm::new(&nats.url());
    let tmux = Tmux::new();
    let repo = repo();
    let records = tempfile::tempdir().unwrap();
    // One config on every machine: project web runs on desk-2.
    for root in std::iter::once(&swarm.hub).chain(swarm.nodes.values()) {
        add_project(
            root,
            &tmux,
            repo.path(),
            records.path(),
            "node = \"desk-2\"\n",
        );
    }
    let _d2 = start(swarm.node("desk-2"));
    let _d3 = start(swarm.node("desk-3"));
    let _hub = start(&swarm.hub);
    wait_until(LIMIT, || {
        !crate::support::status(&swarm.hub)["service_config"].is_null()
    });
    let out = swarm.hub.run(&["spawn", "web", "--task", "ship the page"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("web-1 started in tmux pane %"),
        "{}",
        stdout(&out)
    );
    // The onboarding and the task, from the hub, typed on desk-2.
    wait_until(Duration::from_secs(60), || {
        texts(records.path(), "web-1").len() >= 2
    });
    assert_eq!(
        texts(records.path(), "web-1"),
        [
            "You are a web agent: end each task with a devlog",
            "ship the page"
        ]
    );
    // Both machines know it: the hub routes to desk-2, desk-2 delivers.
    let agents: Value =
        serde_json::from_str(&stdout(&swarm.hub.run(&["--json", "agents"]))).unwrap();
    let web = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "web-1")
        .expect("the hub lists web-1");
    assert_eq!(web["node"], "desk-2", "{web}");
    assert!(agent_ids(swarm.node("desk-2")).contains(&"web-1".to_owned()));
    // The worktree was made by desk-2's acp run (one machine here, so the
    // same path).
    assert!(
        swarm
            .node("desk-2")
            .path()
            .join("worktrees/web/web-1/README")
            .is_file()
    );
}
