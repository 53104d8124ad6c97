// Over 400 lines: each test drives real tmux panes running a recording prompt, end to end.

//! tmux delivery into real panes: a private tmux server per test, each pane
//! running `tests/support/prompt.py`, which records every submission.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Root, stderr, stdout, wait_until};

const LIMIT: Duration = Duration::from_secs(30);

/// A private tmux server with one window per agent.
pub(crate) struct Tmux {
    pub(crate) socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts the server and a pane per name, each running the prompt;
    /// waits until every prompt shows.
    pub(crate) fn start(names: &[&str]) -> Self {
        let tmux = Self::new();
        let panes: Vec<(&str, String)> = names
            .iter()
            .map(|name| (*name, tmux.prompt_command(name)))
            .collect();
        tmux.open(&panes);
        for name in names {
            // capture-pane drops trailing spaces: the empty prompt is ">".
            wait_until(LIMIT, || {
                tmux.screen(name).lines().any(|l| l.starts_with('>'))
            });
        }
        tmux
    }

    /// The command line of the recording prompt for `name`.
    pub(crate) fn prompt_command(&self, name: &str) -> String {
        let prompt = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/prompt.py");
        format!("/usr/bin/python3 {prompt} {}", self.record(name).display())
    }

    /// A server with no panes yet.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = format!(
            "acp-test-{}",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "")
        );
        Self { socket, dir }
    }

    /// Opens a window per (name, command line) in session `agents`.
    pub(crate) fn open(&self, panes: &[(&str, String)]) {
        for (i, (name, cmd)) in panes.iter().enumerate() {
            let args: Vec<&str> = if i == 0 {
                vec![
                    "new-session",
                    "-d",
                    "-s",
                    "agents",
                    "-n",
                    name,
                    "-x",
                    "200",
                    "-y",
                    "40",
                    cmd,
                ]
            } else {
                vec!["new-window", "-t", "agents", "-n", name, cmd]
            };
            assert!(self.cmd(&args).status().unwrap().success());
        }
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        c
    }

    /// The target of an agent's pane.
    pub(crate) fn target(name: &str) -> String {
        format!("agents:{name}.0")
    }

    pub(crate) fn record(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.jsonl"))
    }

    /// What the agent's prompt recorded: each submission.
    pub(crate) fn submitted(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.record(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(crate) fn screen(&self, name: &str) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", &Self::target(name)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn flag(&self, name: &str, flag: &str) -> PathBuf {
        PathBuf::from(format!("{}.{flag}", self.record(name).display()))
    }

    /// The agent's config line: tmux first, then the inbox.
    pub(crate) fn agent_config(&self, name: &str, extra: &str) -> String {
        format!(
            "delivery = [\"tmux\", \"inbox\"]\ntmux = {{ target = \"{}\", socket = \"{}\", \
             command = \"^python\", idle_pattern = \"^>\", pre_submit_delay_ms = 50{extra} }}",
            Self::target(name),
            self.socket
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

/// `acp send --to AGENT --wait BODY` (from standard input); the id.
pub(crate) fn send(root: &Root, agent: &str, body: &str) -> String {
    let mut child = root
        .acp()
        .args(["send", "--to", agent, "--wait", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    stdout(&out).lines().next().unwrap().to_owned()
}

pub(crate) fn delivery(root: &Root, id: &str) -> Value {
    let out = root.run(&["--json", "inbox", "read", id]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["deliveries"][0].clone()
}

pub(crate) fn tmux_root(tmux: &Tmux, agents: &[(&str, &str)]) -> Root {
    let root = Root::new(u32::try_from(agents.len()).unwrap());
    root.fast();
    for (name, extra) in agents {
        root.agent_config(name, &tmux.agent_config(name, extra));
    }
    root
}

#[test]
fn every_body_arrives_whole_in_its_own_pane_submitted_once() {
    let tmux = Tmux::start(&["Agent-1", "Agent-2"]);
    let root = tmux_root(&tmux, &[("Agent-1", ""), ("Agent-2", "")]);
    let bodies = [
        "first line\nsecond line\n\n  indented third".to_owned(),
        "x".repeat(10_000),
        "accents éèç, emoji 🚀🧪, CJK 漢字かな한국어".to_owned(),
        "tmux and shell syntax: a; b && c $(rm -rf /) `id` #{pane_id} #[fg=red] \\e[31m ~ !! %% \\; end".to_owned(),
    ];
    for body in &bodies {
        let id = send(&root, "Agent-1", body);
        let d = delivery(&root, &id);
        assert_eq!(d["method"], "tmux", "{d}");
        assert!(
            d["detail"].as_str().unwrap().contains("running python3"),
            "{d}"
        );
    }
    let got: Vec<String> = tmux
        .submitted("Agent-1")
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, bodies, "each body whole, in order, once");
    assert!(
        tmux.submitted("Agent-2").is_empty(),
        "nothing in the other pane"
    );
    // And the other pane gets its own.
    send(&root, "Agent-2", "only for two");
    assert_eq!(tmux.submitted("Agent-2")[0]["text"], "only for two");
    assert_eq!(tmux.submitted("Agent-1").len(), bodies.len());
}

#[test]
fn a_busy_agent_gets_nothing_until_it_is_idle() {
    let tmux = Tmux::start(&["Agent-1"]);
    let root = tmux_root(&tmux, &[("Agent-1", ", when_busy = \"wait\"")]);
    let shown = |root: &Root| {
        let out = root.run(&["--json", "agents"]);
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        v[0]["terminal"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(shown(&root), "idle");
    std::fs::write(tmux.flag("Agent-1", "busy"), "").unwrap();
    wait_until(LIMIT, || tmux.screen("Agent-1").contains("working..."));
    // acp agents (and /agents, acp status and the status page) read the
    // same probe.
    assert_eq!(shown(&root), "busy");
    let out = root.run(&["--json", "status"]);
    let status: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["terminals"]["Agent-1"], "busy", "{status}");
    let _service = root.service();
    let out = root.run(&["send", "--to", "Agent-1", "while you work"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).lines().next().unwrap().to_owned();
    // acp looked, saw it busy, and kept the message queued: the attempt
    // says so.
    wait_until(LIMIT, || {
        delivery(&root, &id)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is busy"))
    });
    assert!(
        tmux.submitted("Agent-1").is_empty(),
        "typed into a busy agent"
    );
    std::fs::remove_file(tmux.flag("Agent-1", "busy")).unwrap();
    wait_until(LIMIT, || delivery(&root, &id)["state"] == "delivered");
    assert_eq!(
        delivery(&root, &id)["method"],
        "tmux",
        "not gone around to the inbox"
    );
    let got = tmux.submitted("Agent-1");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["text"], "while you work");
    assert_eq!(got[0]["busy"], false);
}

#[test]
fn a_missing_pane_or_another_program_falls_back_to_the_inbox_saying_why() {
    let tmux = Tmux::start(&["Agent-1"]);
    let root = Root::new(2);
    root.fast();
    // Agent-1's pane runs python3, but it wants claude; Agent-2's pane is
    // not there at all.
    root.agent_config(
        "Agent-1",
        &tmux
            .agent_config("Agent-1", "")
            .replace("^python", "^claude$"),
    );
    root.agent_config(
        "Agent-2",
        &tmux
            .agent_config("Agent-1", "")
            .replace("agents:Agent-1.0", "agents:nowhere.0"),
    );
    let a = send(&root, "Agent-1", "not for python");
    let d = delivery(&root, &a);
    assert_eq!(d["method"], "inbox", "{d}");
    let why = d["tried"].to_string();
    assert!(
        why.contains("runs \\\"python3\\\", not matching tmux.command"),
        "{why}"
    );
    let b = send(&root, "Agent-2", "no pane");
    let d = delivery(&root, &b);
    assert_eq!(d["method"], "inbox", "{d}");
    assert!(d["tried"].to_string().contains("is not there"), "{d}");
    assert!(tmux.submitted("Agent-1").is_empty());
    assert!(root.inbox_ids("Agent-1").contains_key(&a));
    assert!(root.inbox_ids("Agent-2").contains_key(&b));
}

#[test]
fn a_lost_submit_is_pressed_again_and_recorded() {
    let tmux = Tmux::start(&["Agent-1"]);
    let root = tmux_root(&tmux, &[("Agent-1", "")]);
    std::fs::write(tmux.flag("Agent-1", "drop-enter"), "").unwrap();
    let id = send(&root, "Agent-1", "please run the tests");
    let d = delivery(&root, &id);
    assert!(
        d["detail"].as_str().unwrap().contains("pressed again"),
        "{d}"
    );
    assert!(
        !tmux.flag("Agent-1", "drop-enter").exists(),
        "the first Enter was swallowed"
    );
    let got = tmux.submitted("Agent-1");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["text"], "please run the tests");
}

#[test]
fn two_processes_delivering_to_one_pane_never_interleave() {
    let tmux = Tmux::start(&["Agent-1"]);
    let root = tmux_root(&tmux, &[("Agent-1", "")]);
    let bodies: Vec<String> = ["A", "B", "C", "D"]
        .iter()
        .map(|c| format!("{}\n{}", c.repeat(3000), c.repeat(500)))
        .collect();
    std::thread::scope(|s| {
        for body in &bodies {
            let root = &root;
            s.spawn(move || send(root, "Agent-1", body));
        }
    });
    let mut got: Vec<String> = tmux
        .submitted("Agent-1")
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, bodies, "each body whole and alone");
}

#[test]
fn tmux_attach_shows_what_the_guard_sees_and_the_line_to_add() {
    let tmux = Tmux::start(&["Agent-1"]);
    let root = Root::new(1);
    let pane = Tmux::target("Agent-1");
    let out = root.run(&["tmux", "attach", "Agent-1", &pane, "--socket", &tmux.socket]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("running python"), "{text}");
    assert!(text.contains("guard: ok"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("tmux = {")),
        "{text}"
    );
    // --save records it in the agent's table; acp then delivers there.
    let out = root.run(&[
        "tmux",
        "attach",
        "Agent-1",
        &pane,
        "--socket",
        &tmux.socket,
        "--save",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("saved in"), "{}", stdout(&out));
    let id = send(&root, "Agent-1", "attached");
    assert_eq!(delivery(&root, &id)["method"], "tmux");
    assert_eq!(tmux.submitted("Agent-1")[0]["text"], "attached");
    // Saved once, the table is left for a person to change.
    let out = root.run(&[
        "tmux",
        "attach",
        "Agent-1",
        &pane,
        "--socket",
        &tmux.socket,
        "--save",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("edit it by hand"), "{}", stderr(&out));
    // A pane that is not there: refused, exit 1.
    let out = root.run(&[
        "tmux",
        "attach",
        "Agent-1",
        "agents:nowhere.0",
        "--socket",
        &tmux.socket,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("refused"), "{}", stdout(&out));
}

#[test]
fn tmux_attach_save_under_a_running_service_says_it_was_picked_up_and_is_used() {
    let tmux = Tmux::start(&["Agent-1"]);
    let root = Root::new(1);
    root.fast();
    let _service = root.service();
    wait_until(Duration::from_secs(20), || {
        !crate::support::status(&root)["service_config"].is_null()
    });
    let pane = Tmux::target("Agent-1");
    let out = root.run(&[
        "tmux",
        "attach",
        "Agent-1",
        &pane,
        "--socket",
        &tmux.socket,
        "--save",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the running acp run picked up the new config"),
        "{}",
        stdout(&out)
    );
    // Delivered by the service, through the pane it was just told of.
    let id = send(&root, "Agent-1", "after the reload");
    assert_eq!(delivery(&root, &id)["method"], "tmux");
    assert_eq!(tmux.submitted("Agent-1")[0]["text"], "after the reload");
}

#[test]
fn init_can_write_tmux_agents() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["--root"])
        .arg(dir.path())
        .args(["init", "--agents", "2", "--tmux", "swarm"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config = acp::config::Config::load(dir.path(), &acp::config::Env::new()).unwrap();
    for (n, agent) in config.agents.all().iter().enumerate() {
        assert_eq!(agent.delivery[0], acp::model::MethodName::Tmux);
        let tmux = agent.tmux.as_ref().unwrap();
        assert_eq!(tmux.target, format!("swarm:Agent-{}.0", n + 1));
        // A real guard: the agents' programs, never a shell.
        let guard = tmux.command.as_ref().expect("init writes a command guard");
        assert!(
            guard.is_match("claude") && guard.is_match("codex"),
            "{guard}"
        );
        for shell in ["bash", "sh", "zsh", "fish"] {
            assert!(!guard.is_match(shell), "{guard} lets {shell} in");
        }
    }
}
