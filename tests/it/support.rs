//! Helpers: temporary roots, running the `acp` binary, reading inboxes.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use acp::config::{Config, Env};

/// A temporary acp root made by `acp init`, removed on drop.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    /// A root made by `acp init` with `agents` agents.
    pub fn new(agents: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        acp::app::init(dir.path(), agents).unwrap();
        let root = Self { dir };
        // Tests run many services at once: each HTTP server takes a free
        // port, which its log names.
        root.edit_config("bind = \"127.0.0.1:7420\"", "bind = \"127.0.0.1:0\"");
        root
    }

    /// Replaces a line of the generated `config/acp.toml` (which must be
    /// there), e.g. `("max_attempts = 5", "max_attempts = 2")`.
    pub fn edit_config(&self, from: &str, to: &str) -> &Self {
        let path = self.path().join("config/acp.toml");
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(from),
            "{from:?} is not in the config template"
        );
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self
    }

    /// Adds keys to one agent's `[[agents]]` table.
    pub fn agent_config(&self, agent: &str, lines: &str) -> &Self {
        let id_line = format!("id = \"{agent}\"\n");
        self.edit_config(&id_line, &format!("{id_line}{lines}\n"))
    }

    /// Fast retries and polling, for tests that wait on them.
    pub fn fast(&self) -> &Self {
        self.edit_config("retry_base_ms = 500", "retry_base_ms = 20")
            .edit_config("retry_max_ms = 60000", "retry_max_ms = 100")
            .edit_config("poll_ms = 100", "poll_ms = 20")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> Config {
        Config::load(self.path(), &Env::new()).unwrap()
    }

    pub fn inbox(&self, agent: &str) -> PathBuf {
        self.path()
            .join("agent_workspaces")
            .join(agent)
            .join("inbox")
    }

    /// The visible files of an agent's inbox (what `ls` shows, without
    /// `files/`, where attachments go), sorted.
    pub fn inbox_files(&self, agent: &str) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.inbox(agent)) {
            Ok(entries) => entries
                .map(Result::unwrap)
                .filter(|e| !e.file_type().unwrap().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Message id -> number of inbox files carrying it, for one agent.
    pub fn inbox_ids(&self, agent: &str) -> BTreeMap<String, usize> {
        let mut ids = BTreeMap::new();
        for name in self.inbox_files(agent) {
            let id = name
                .trim_end_matches(".md")
                .rsplit('_')
                .next()
                .unwrap()
                .to_owned();
            *ids.entry(id).or_default() += 1;
        }
        ids
    }

    /// An `acp` command with `--root` set and a clean environment.
    pub fn acp(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acp"));
        cmd.arg("--root").arg(self.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("ACP_") || key.starts_with("DISCORD_") {
                cmd.env_remove(key);
            }
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `acp ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.acp().args(args).output().unwrap()
    }

    /// Starts `acp run` in the background.
    pub fn service(&self) -> Service {
        self.service_with_env(&[])
    }

    /// Starts `acp run` in the background with these environment
    /// variables (`TMUX_TMPDIR`, for a private tmux folder).
    pub fn service_with_env(&self, vars: &[(&str, &std::ffi::OsStr)]) -> Service {
        // The log goes to a file: a pipe nobody reads could fill and stall it.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("service.log"))
            .unwrap();
        let child = self
            .acp()
            .envs(vars.iter().copied())
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let service = Service {
            child,
            log: self.path().join("service.log"),
        };
        // Ready when it holds the service lock.
        wait_until(Duration::from_secs(20), || {
            acp::app::ServiceLock::is_held(self.path())
        });
        service
    }
}

/// A running `acp run`.
pub struct Service {
    pub child: Child,
    log: PathBuf,
}

impl Service {
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status and stderr.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        (
            status,
            fs::read_to_string(self.log.clone()).unwrap_or_default(),
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `f` until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        // Polling interval: the condition is the evidence, `limit` the deadline.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `acp status --json`, parsed.
pub fn status(root: &Root) -> serde_json::Value {
    let out = root.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Deliveries in a state, summed over priorities.
pub fn count(status: &serde_json::Value, state: &str) -> u64 {
    status["queue"][state]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}
