// Over 400 lines: two end-to-end stories (tmux servers, an X display) with their fake agents.

//! `acp discover` on real tmux servers and a real X server. The tmux
//! servers live in a private `TMUX_TMPDIR`, so the test never sees the
//! user's own; the agents are fake: a Python script named like each agent
//! program (`claude`, `codex`...), running the recording prompt
//! (tests/support/prompt.py), so a delivery into its pane is recorded.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Root, stderr, stdout, wait_until};

const LIMIT: Duration = Duration::from_secs(30);

/// Tmux servers in a private tmux folder, and fake agent programs.
struct Servers {
    /// `TMUX_TMPDIR`.
    dir: tempfile::TempDir,
    sockets: std::cell::RefCell<Vec<String>>,
}

impl Servers {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        Self {
            dir,
            sockets: std::cell::RefCell::default(),
        }
    }

    fn tmpdir(&self) -> &OsStr {
        self.dir.path().as_os_str()
    }

    /// A fake agent program called `name`: a Python script (so the
    /// process is named `name`, and tmux shows `python3`) that runs the
    /// recording prompt.
    fn program(&self, name: &str) -> PathBuf {
        let prompt = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/prompt.py");
        let path = self.dir.path().join("bin").join(name);
        std::fs::write(
            &path,
            format!(
                "#!/usr/bin/python3\nimport runpy, sys\nsys.argv = [{prompt:?}] + \
                 sys.argv[1:]\nrunpy.run_path({prompt:?}, run_name=\"__main__\")\n"
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        path
    }

    /// Where the prompt in pane `label` records what it gets.
    fn record(&self, label: &str) -> PathBuf {
        self.dir.path().join(format!("{label}.jsonl"))
    }

    /// The command line that runs fake `program`, recording as `label`.
    fn agent(&self, program: &str, label: &str) -> String {
        format!(
            "{} {}",
            self.program(program).display(),
            self.record(label).display()
        )
    }

    fn cmd(&self, socket: &str, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.env("TMUX_TMPDIR", self.tmpdir())
            .args(["-L", socket, "-f", "/dev/null"])
            .args(args);
        c
    }

    /// A window in `session` on server `socket` (named `name`, or named
    /// by tmux after its program) running `command`.
    fn window(&self, socket: &str, session: &str, name: Option<&str>, command: &str) {
        let new = !self.sockets.borrow().iter().any(|s| s == socket);
        let mut args = if new {
            self.sockets.borrow_mut().push(socket.to_owned());
            vec!["new-session", "-d", "-s", session, "-x", "200", "-y", "40"]
        } else {
            vec!["new-window", "-t", session]
        };
        if let Some(name) = name {
            args.extend(["-n", name]);
        }
        args.push(command);
        let out = self.cmd(socket, &args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }

    fn screen(&self, socket: &str, target: &str) -> String {
        let out = self
            .cmd(socket, &["capture-pane", "-p", "-t", target])
            .output()
            .unwrap();
        stdout(&out)
    }

    /// Waits until the prompt shows in a pane.
    fn wait_for_prompt(&self, socket: &str, target: &str) {
        wait_until(LIMIT, || {
            self.screen(socket, target)
                .lines()
                .any(|l| l.starts_with('>'))
        });
    }

    fn submitted(&self, label: &str) -> Vec<String> {
        std::fs::read_to_string(self.record(label))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["text"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for socket in self.sockets.borrow().iter() {
            let _ = self.cmd(socket, &["kill-server"]).status();
        }
    }
}

/// `acp ARGS` with the private tmux folder.
fn acp(root: &Root, servers: &Servers, args: &[&str]) -> Output {
    let out = root
        .acp()
        .env("TMUX_TMPDIR", servers.tmpdir())
        .env_remove("DISPLAY")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    out
}

/// The panes `acp --json discover` found, by (server, target).
fn found(root: &Root, servers: &Servers) -> (Value, Vec<(String, String, Value)>) {
    let v: Value =
        serde_json::from_str(&stdout(&acp(root, servers, &["--json", "discover"]))).unwrap();
    let panes = v["panes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["socket"].as_str().unwrap().to_owned(),
                p["target"].as_str().unwrap().to_owned(),
                p.clone(),
            )
        })
        .collect();
    (v, panes)
}

fn pane<'a>(panes: &'a [(String, String, Value)], socket: &str, target: &str) -> &'a Value {
    &panes
        .iter()
        .find(|(s, t, _)| s == socket && t == target)
        .unwrap_or_else(|| panic!("nothing found in {socket} {target}: {panes:#?}"))
        .2
}

#[test]
fn discover_finds_agents_on_two_servers_and_the_saved_tables_deliver() {
    let servers = Servers::new();
    // Server alpha: Claude Code in a window named "reviewer", Codex in a
    // window tmux names, a shell, Gemini started at an interactive shell's
    // prompt (found under the shell), Claude under a shell script.
    servers.window(
        "alpha",
        "work",
        Some("reviewer"),
        &servers.agent("claude", "reviewer"),
    );
    servers.window("alpha", "work", None, &servers.agent("codex", "codex"));
    servers.window("alpha", "work", None, "bash --norc --noprofile");
    servers.window("alpha", "work", None, "bash --norc --noprofile");
    servers.window(
        "alpha",
        "work",
        None,
        &format!(
            "bash --norc --noprofile -c '{}; echo exited'",
            servers.agent("claude", "scripted")
        ),
    );
    // Server beta: aider (Agent-1's, configured) and OpenCode.
    servers.window("beta", "other", None, &servers.agent("aider", "aider"));
    servers.window(
        "beta",
        "other",
        None,
        &servers.agent("opencode", "opencode"),
    );
    wait_until(LIMIT, || {
        servers.screen("alpha", "work:3.0").contains("bash-")
    });
    let typed = servers.agent("gemini", "gemini");
    let out = servers
        .cmd("alpha", &["send-keys", "-t", "work:3.0", &typed, "Enter"])
        .output()
        .unwrap();
    assert!(out.status.success());
    for (socket, target) in [
        ("alpha", "work:0.0"),
        ("alpha", "work:1.0"),
        ("alpha", "work:3.0"),
        ("alpha", "work:4.0"),
        ("beta", "other:0.0"),
        ("beta", "other:1.0"),
    ] {
        servers.wait_for_prompt(socket, target);
    }

    let root = Root::new(1);
    root.fast();
    root.agent_config(
        "Agent-1",
        "delivery = [\"tmux\", \"inbox\"]\ntmux = { target = \"other:0.0\", socket = \"beta\", \
         command = \"^python3$\" }",
    );
    let before = std::fs::read_to_string(root.path().join("config/acp.toml")).unwrap();

    let (report, panes) = found(&root, &servers);
    let sockets: Vec<(&str, u64)> = report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["socket"].as_str().unwrap(), s["panes"].as_u64().unwrap()))
        .collect();
    assert_eq!(sockets, [("alpha", 5), ("beta", 2)], "{report:#}");
    assert_eq!(
        panes.len(),
        6,
        "every agent, and not the shell pane: {panes:#?}"
    );
    assert!(
        !panes.iter().any(|(_, t, _)| t == "work:2.0"),
        "a shell is no agent"
    );

    let reviewer = pane(&panes, "alpha", "work:reviewer.0");
    assert_eq!(reviewer["program"], "claude");
    assert_eq!(reviewer["status"], "new");
    assert_eq!(reviewer["agent"], "reviewer", "the window's name");
    assert_eq!(reviewer["pane_command"], "python3");
    assert_eq!(reviewer["guard"], "^(claude|python3)$");
    assert_eq!(reviewer["profile"], "claude");
    let table = reviewer["table"].as_str().unwrap();
    assert!(
        table.contains(
            "tmux = { target = \"work:reviewer.0\", socket = \"alpha\", command = \
             \"^(claude|python3)$\", profile = \"claude\" }"
        ),
        "{table}"
    );
    assert!(
        table.contains("delivery = [\"tmux\", \"inbox\"]"),
        "{table}"
    );

    let codex = pane(&panes, "alpha", "work:1.0");
    assert_eq!(
        (&codex["program"], &codex["agent"], &codex["profile"]),
        (&"codex".into(), &"codex-1".into(), &"codex".into()),
        "a window tmux named after its program gives no id"
    );
    let gemini = pane(&panes, "alpha", "work:3.0");
    assert_eq!(
        (&gemini["program"], &gemini["status"], &gemini["agent"]),
        (&"gemini".into(), &"new".into(), &"gemini-1".into()),
        "found under the shell: {gemini:#}"
    );
    let scripted = pane(&panes, "alpha", "work:4.0");
    assert_eq!(scripted["program"], "claude");
    assert_eq!(scripted["status"], "unreachable");
    assert!(
        scripted["reason"].as_str().unwrap().contains("a shell"),
        "{scripted:#}"
    );
    let aider = pane(&panes, "beta", "other:0.0");
    assert_eq!(
        (&aider["status"], &aider["agent"]),
        (&"configured".into(), &"Agent-1".into())
    );
    let opencode = pane(&panes, "beta", "other:1.0");
    assert_eq!(
        (&opencode["agent"], &opencode["profile"]),
        (&"opencode-1".into(), &"generic".into())
    );
    assert!(
        opencode["table"]
            .as_str()
            .unwrap()
            .contains("socket = \"beta\""),
        "{opencode:#}"
    );

    // Looking writes nothing; the text shows what --save would write.
    let text = stdout(&acp(&root, &servers, &["discover"]));
    assert!(text.contains("tmux: 2 server(s)"), "{text}");
    assert!(text.contains("id = \"gemini-1\""), "{text}");
    assert!(text.contains("already configured"), "{text}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("config/acp.toml")).unwrap(),
        before
    );

    // Saved under a running service: it picks the tables up and delivers
    // through them, into each pane by tmux.
    let _service = root.service_with_env(&[("TMUX_TMPDIR", servers.tmpdir())]);
    let text = stdout(&acp(&root, &servers, &["discover", "--save"]));
    assert!(
        text.contains("saved 4 agent(s)")
            && text.contains("reviewer, codex-1, gemini-1, opencode-1"),
        "{text}"
    );
    assert!(
        text.contains("the running acp run picked up the new config"),
        "{text}"
    );
    let after = std::fs::read_to_string(root.path().join("config/acp.toml")).unwrap();
    assert!(after.starts_with(&before), "the file before is kept whole");
    for (agent, label) in [
        ("reviewer", "reviewer"),
        ("codex-1", "codex"),
        ("gemini-1", "gemini"),
        ("opencode-1", "opencode"),
    ] {
        let body = format!("hello {agent}, from acp discover");
        let out = acp(&root, &servers, &["send", "--to", agent, "--wait", &body]);
        let id = stdout(&out).lines().next().unwrap().to_owned();
        let d = crate::tmux::delivery(&root, &id);
        assert_eq!(d["method"], "tmux", "{agent}: {d}");
        assert_eq!(servers.submitted(label), [body], "{agent}");
    }
    assert!(servers.submitted("aider").is_empty());

    // Looked at again: all of them are configured, and nothing is added.
    let (_, panes) = found(&root, &servers);
    let statuses: Vec<&str> = panes
        .iter()
        .map(|(_, _, p)| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "configured",
            "configured",
            "configured",
            "unreachable",
            "configured",
            "configured"
        ]
    );
    let text = stdout(&acp(&root, &servers, &["discover", "--save"]));
    assert!(text.contains("nothing new to add"), "{text}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("config/acp.toml")).unwrap(),
        after
    );
}

/// A Tk window of class `class` titled `title`, until dropped.
struct TkWindow(std::process::Child);

impl TkWindow {
    fn open(display: &str, class: &str, title: &str) -> Self {
        let script = format!(
            "import tkinter as tk\nr = tk.Tk(baseName={:?}, className={class:?})\nr.title({title:?})\n\
             r.geometry('400x300+10+10')\nr.mainloop()\n",
            class.to_lowercase()
        );
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        Self(
            Command::new(python)
                .args(["-c", &script])
                .env("DISPLAY", display)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for TkWindow {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn discover_lists_cursor_windows_with_their_points_unknown() {
    let x11 = crate::desktop::Xvfb::start();
    let _cursor = TkWindow::open(&x11.display, "Cursor", "main.rs - acp - Cursor");
    let _other = TkWindow::open(&x11.display, "Notes", "notes");
    let servers = Servers::new();
    let root = Root::new(1);
    let run = |args: &[&str]| {
        let out = root
            .acp()
            .env("TMUX_TMPDIR", servers.tmpdir())
            .env("DISPLAY", &x11.display)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    let windows = || {
        let v: Value = serde_json::from_str(&run(&["--json", "discover"])).unwrap();
        v["windows"].as_array().unwrap().clone()
    };
    wait_until(LIMIT, || !windows().is_empty());
    let found = windows();
    assert_eq!(found.len(), 1, "only the Cursor window: {found:#?}");
    let w = &found[0];
    assert_eq!(
        (
            &w["app"],
            &w["class"],
            &w["title"],
            &w["status"],
            &w["agent"]
        ),
        (
            &"Cursor".into(),
            &"cursor/Cursor".into(),
            &"main.rs - acp - Cursor".into(),
            &"new".into(),
            &"cursor-1".into()
        )
    );
    let table = w["table"].as_str().unwrap();
    assert!(table.contains("delivery = [\"inbox\"]"), "{table}");
    assert!(
        table.contains("window_class = \"^cursor/Cursor$\""),
        "{table}"
    );
    let text = run(&["discover"]);
    assert!(
        text.contains("points unknown") && text.contains("acp coords capture cursor-1 --save"),
        "{text}"
    );

    // Saved: an inbox agent with its window guard ready; looked at again,
    // the window is its (no point yet, by its class).
    run(&["discover", "--save"]);
    let agents: Value = serde_json::from_str(&run(&["--json", "agents"])).unwrap();
    let cursor = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "cursor-1")
        .unwrap_or_else(|| panic!("{agents:#}"));
    assert_eq!(cursor["delivery"], serde_json::json!(["inbox"]));
    let again = windows();
    assert_eq!(again[0]["status"], "configured", "{again:#?}");
    assert_eq!(again[0]["agent"], "cursor-1");
}

#[test]
fn an_agent_acp_started_is_its_own_and_its_id_is_never_given_again() {
    let servers = Servers::new();
    // A Claude Code of the person's own, and a project whose agents are
    // Claude Code too (so acp spawn names them claude-1, claude-2...).
    servers.window("alpha", "mine", None, &servers.agent("claude", "mine"));
    let project = tempfile::tempdir().unwrap();
    let root = Root::new(1);
    let config = root.path().join("config/acp.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    std::fmt::Write::write_fmt(
        &mut text,
        format_args!(
            "\n[[projects]]\nname = \"claude\"\npath = {:?}\ncommand = [{:?}, {:?}]\nsocket = \
         \"alpha\"\nguard = \"^(claude|python3)$\"\n",
            project.path().display().to_string(),
            servers.program("claude").display().to_string(),
            servers.record("spawned").display().to_string(),
        ),
    )
    .unwrap();
    std::fs::write(&config, text).unwrap();
    let out = acp(&root, &servers, &["spawn", "claude"]);
    assert!(
        stdout(&out).contains("claude-1 started"),
        "{}",
        stdout(&out)
    );

    let (_, panes) = found(&root, &servers);
    let by_record = |label: &str| {
        panes
            .iter()
            .map(|(_, _, p)| p)
            .find(|p| p["target"].as_str().unwrap().starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {panes:#?}"))
            .clone()
    };
    assert_eq!(panes.len(), 2, "{panes:#?}");
    let mine = by_record("mine:");
    assert_eq!(
        (&mine["status"], &mine["agent"]),
        (&"new".into(), &"claude-2".into()),
        "the started agent's id is taken: {mine:#}"
    );
    let started = panes
        .iter()
        .map(|(_, _, p)| p)
        .find(|p| p["status"] == "configured")
        .unwrap_or_else(|| panic!("the started agent is not its own: {panes:#?}"));
    assert_eq!(started["agent"], "claude-1");

    // Stopped and retired, its id still is not given to another.
    acp(&root, &servers, &["stop", "claude-1"]);
    let (_, panes) = found(&root, &servers);
    assert_eq!(panes.len(), 1, "its window is closed: {panes:#?}");
    assert_eq!(panes[0].2["agent"], "claude-2");
}
