//! `acp service`: the systemd unit for `acp run`, checked by systemd's own
//! tools (`systemd-analyze verify`, and the manager's parse of the unit
//! from `systemd --test`), then run as systemd would run it; and the log
//! a service writes (the journal, JSON, a file).
//!
//! No systemd runs as the init system here, so the manager cannot start
//! the unit: the test reads how systemd parsed `ExecStart=`,
//! `WorkingDirectory=` and `Environment=`, and starts that itself.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::outbox::{as_agent, swarm};
use crate::standin::StandIn;
use crate::support::{Root, stderr, stdout, wait_until};

const LIMIT: Duration = Duration::from_secs(30);

/// `acp` with a clean environment (no ACP_*, DISCORD_*, no session bus)
/// and `home` as HOME, its config and an empty runtime directory: no
/// `systemctl --user` can reach a real manager from here.
fn acp_in(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acp"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ACP_") || key.starts_with("DISCORD_") || key == "DISPLAY" {
            cmd.env_remove(key);
        }
    }
    let runtime = home.join("run");
    fs::create_dir_all(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null());
    cmd
}

/// A root made by `acp init` at `path`, taking a free port and polling
/// fast.
fn init_root(path: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_acp"))
        .arg("--root")
        .arg(path)
        .args(["init", "--agents", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config = path.join("config/acp.toml");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("bind = \"127.0.0.1:7420\"", "bind = \"127.0.0.1:0\"")
        .replace("poll_ms = 100", "poll_ms = 20");
    fs::write(&config, text).unwrap();
}

/// The one unit file in `home`'s user unit directory.
fn the_unit(home: &Path) -> PathBuf {
    let dir = home.join(".config/systemd/user");
    let units: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    assert_eq!(units.len(), 1, "{units:?}");
    units.into_iter().next().unwrap()
}

/// `systemd-analyze verify` of unit files, in user mode with `home` or in
/// system mode.
fn verify(home: Option<&Path>, unit: &Path) -> Output {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify");
    if let Some(home) = home {
        cmd.arg("--user")
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_RUNTIME_DIR", home.join("run"));
    }
    cmd.arg(unit).output().unwrap()
}

/// How the user manager parses `unit`: the unit's section of `systemd
/// --test --user` (which refuses to run as root, so as nobody then, from a
/// copy of the unit in nobody's home).
fn systemd_parse(unit: &Path) -> Vec<(String, String)> {
    let home = tempfile::tempdir().unwrap();
    let name = unit.file_name().unwrap().to_str().unwrap();
    let dir = home.path().join(".config/systemd/user");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(unit, dir.join(name)).unwrap();
    let runtime = home.path().join("run");
    fs::create_dir_all(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let as_root = rustix::process::getuid().is_root();
    let mut cmd = if as_root {
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for entry in [
            home.path(),
            &home.path().join(".config"),
            &home.path().join(".config/systemd"),
            &dir,
            &dir.join(name),
            &runtime,
        ] {
            std::os::unix::fs::chown(entry, Some(65534), Some(65534)).unwrap();
        }
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/lib/systemd/systemd",
        ]);
        cmd
    } else {
        Command::new("/lib/systemd/systemd")
    };
    let out = cmd
        .args(["--test", "--user", "--no-pager"])
        .arg(format!("--unit={name}"))
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Its section: from "-> Unit NAME:" to the next unit.
    let dump = stdout(&out);
    let mut settings = Vec::new();
    let mut inside = false;
    for line in dump.lines() {
        if let Some(unit) = line.trim().strip_prefix("-> Unit ") {
            inside = unit == format!("{name}:");
            continue;
        }
        if let Some((key, value)) = line.trim().split_once(": ").filter(|_| inside) {
            settings.push((key.to_owned(), value.to_owned()));
        }
    }
    assert!(!settings.is_empty(), "{name} is not in the dump:\n{dump}");
    settings
}

fn get<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The words of a command line as systemd's dump quotes them (a word in
/// double quotes escapes `"`, `\`, `$` and `` ` `` with a backslash), with
/// `$$` then read as `$`, as systemd does when it runs the command.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => word.push(chars.next().unwrap()),
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek().filter(|&&c| c != ' ') {
                word.push(c);
                chars.next();
            }
        }
        words.push(word.replace("$$", "$"));
    }
    words
}

#[test]
fn a_user_unit_systemd_accepts_runs_acp_on_a_root_with_spaces_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    // Spaces, and characters systemd would expand unescaped.
    let root = tmp.path().join("my agents $HOME 100%");
    init_root(&root);
    let home = tmp.path().join("home");
    let out = acp_in(&home)
        .arg("--root")
        .arg(&root)
        .args(["service", "install", "--user"])
        .env("DISPLAY", ":42")
        .output()
        .unwrap();
    // No manager answers here: the unit is written, and the output says
    // what to run where one does.
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let unit = the_unit(&home);
    let name = unit.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("acp-my_agents__HOME_100_-"), "{name}");
    let said = stdout(&out);
    assert!(
        said.contains(&format!("wrote {}", unit.display()))
            && said.contains("systemctl --user daemon-reload")
            && said.contains(&format!("systemctl --user enable --now {name}"))
            && said.contains("loginctl enable-linger"),
        "{said}"
    );

    // systemd's verifier accepts it; and it does catch a broken unit: the
    // same with the working directory quoted, as the command line is.
    let verified = verify(Some(&home), &unit);
    assert!(
        verified.status.success(),
        "{}{}",
        stdout(&verified),
        stderr(&verified)
    );
    let text = fs::read_to_string(&unit).unwrap();
    let broken = unit.with_file_name("acp-broken.service");
    let quoted = text
        .lines()
        .map(|l| match l.strip_prefix("WorkingDirectory=") {
            Some(dir) => format!("WorkingDirectory=\"{dir}\"\n"),
            None => format!("{l}\n"),
        })
        .collect::<String>();
    fs::write(&broken, quoted).unwrap();
    let refused = verify(Some(&home), &broken);
    assert!(!refused.status.success(), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("WorkingDirectory"),
        "{}",
        stderr(&refused)
    );
    fs::remove_file(&broken).unwrap();

    // How the manager reads it.
    let parsed = systemd_parse(&unit);
    assert_eq!(get(&parsed, "WorkingDirectory"), [root.to_str().unwrap()]);
    assert_eq!(get(&parsed, "Environment"), ["DISPLAY=:42"]);
    assert_eq!(get(&parsed, "Type"), ["exec"]);
    assert_eq!(get(&parsed, "Restart"), ["on-failure"]);
    assert_eq!(get(&parsed, "KillSignal"), ["SIGTERM"]);
    assert_eq!(get(&parsed, "KillMode"), ["mixed"]);
    assert_eq!(get(&parsed, "TimeoutStopSec"), ["1min 10s"]);
    assert_eq!(get(&parsed, "PrivateTmp"), ["no"]);
    assert_eq!(get(&parsed, "ProtectHome"), ["no"]);
    // ExecStart=, then ExecReload= (SIGHUP: acp run reloads its config).
    let exec = get(&parsed, "Command Line");
    assert_eq!(exec.len(), 2, "{parsed:?}");
    assert_eq!(
        words(exec[1]),
        ["/bin/kill", "-HUP", "$MAINPID"],
        "{}",
        exec[1]
    );
    let argv = words(exec[0]);
    assert_eq!(
        argv,
        [
            fs::canonicalize(env!("CARGO_BIN_EXE_acp"))
                .unwrap()
                .to_str()
                .unwrap(),
            "--root",
            root.to_str().unwrap(),
            "run"
        ],
        "{}",
        exec[0]
    );

    // Run it as systemd would: that command, in that directory, with that
    // environment and nothing of this one's.
    let log = root.join("service.log");
    let mut service = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(get(&parsed, "WorkingDirectory")[0])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", &home)
        .env("DISPLAY", ":42")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = |home: &Path| {
        let out = acp_in(home)
            .arg("--root")
            .arg(&root)
            .args(["--json", "status"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    wait_until(LIMIT, || status(&home)["service_running"] == true);
    let out = acp_in(&home)
        .arg("--root")
        .arg(&root)
        .args(["send", "--to", "Agent-1", "hello from the unit"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).lines().next().unwrap().trim().to_owned();
    // Delivered by the service (a sender delivers its own message only
    // when no service runs), into the inbox.
    wait_until(LIMIT, || {
        fs::read_to_string(&log)
            .unwrap()
            .contains(&format!("delivered message_id={id}"))
    });
    let inbox = root.join("agent_workspaces/Agent-1/inbox");
    let delivered = fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .any(|n| n.contains(&id));
    assert!(delivered, "not in {}", inbox.display());
    let out = acp_in(&home)
        .arg("--root")
        .arg(&root)
        .args(["service", "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("running on this root (pid {})", service.id())),
        "{}",
        stdout(&out)
    );

    // systemd stops it with SIGTERM: it exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = service.wait().unwrap();
    let log = fs::read_to_string(&log).unwrap();
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
}

#[test]
fn a_system_unit_runs_as_the_owner_of_the_root() {
    let root = Root::new(1);
    let home = tempfile::tempdir().unwrap();
    let out = acp_in(home.path())
        .arg("--root")
        .arg(root.path())
        .args(["service", "install", "--system", "--print"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let owner = fs::metadata(root.path()).unwrap().uid();
    let name = uzers_name(owner);
    assert!(text.contains(&format!("\nUser={name}\n")), "{text}");
    assert!(text.contains("WantedBy=multi-user.target"), "{text}");
    // --print installs nothing.
    assert!(!home.path().join(".config").exists());
    let unit = home.path().join("acp-test.service");
    fs::write(&unit, &text).unwrap();
    let verified = verify(None, &unit);
    assert!(verified.status.success(), "{}", stderr(&verified));
}

/// The account name of `uid`, as `id -nu` says it.
fn uzers_name(uid: u32) -> String {
    let out = Command::new("id")
        .args(["-nu", &uid.to_string()])
        .output()
        .unwrap();
    stdout(&out).trim().to_owned()
}

#[test]
fn status_and_uninstall_say_what_to_do_without_systemctl() {
    let root = Root::new(1);
    let home = tempfile::tempdir().unwrap();
    let no_systemctl = |args: &[&str]| {
        acp_in(home.path())
            .arg("--root")
            .arg(root.path())
            .env("PATH", "/nonexistent")
            .args(args)
            .output()
            .unwrap()
    };
    let out = no_systemctl(&["--json", "service", "install"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = the_unit(home.path());
    let name = unit.file_name().unwrap().to_str().unwrap().to_owned();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unit"], name.as_str());
    assert_eq!(report["file"], unit.to_str().unwrap());
    assert_eq!(report["systemd_error"], "systemctl is not installed");
    assert_eq!(
        report["to_run"],
        serde_json::json!([
            "systemctl --user daemon-reload",
            format!("systemctl --user enable --now {name}")
        ])
    );

    // Not running: exit 1, and what to run.
    let out = no_systemctl(&["service", "status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains(&unit.display().to_string()), "{said}");
    assert!(said.contains("systemctl is not installed"), "{said}");
    assert!(
        said.contains(&format!(
            "not running on this root: `systemctl --user start {name}`"
        )),
        "{said}"
    );

    // Running (here without systemd): exit 0, with its pid.
    let service = root.service();
    let pid = service.child.id();
    let out = no_systemctl(&["--json", "service", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["unit"], name.as_str());
    assert_eq!(status["scope"], "user");
    assert_eq!(status["installed"], true);
    assert_eq!(status["running"], true);
    assert_eq!(status["pid"], pid.to_string());
    assert_eq!(status["systemd_error"], "systemctl is not installed");

    // Enabled by hand where systemctl ran: uninstall removes the link too,
    // says how to stop the service where systemd runs, and that acp run
    // still runs here.
    let wants = home
        .path()
        .join(".config/systemd/user/default.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(&unit, wants.join(&name)).unwrap();
    let out = no_systemctl(&["service", "uninstall"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(!unit.exists() && !wants.join(&name).exists(), "{said}");
    assert!(
        said.contains("systemctl could not be used here (systemctl is not installed)")
            && said.contains(&format!("systemctl --user stop {name}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("acp run still runs on this root (pid {pid})")),
        "{said}"
    );
    let (exit, log) = service.terminate();
    assert!(exit.success(), "{exit:?}\n{log}");
    let out = no_systemctl(&["service", "uninstall"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("nothing to remove"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_root_systemd_cannot_name_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("two\nlines");
    init_root(&root);
    let home = tmp.path().join("home");
    let out = acp_in(&home)
        .arg("--root")
        .arg(&root)
        .args(["service", "install"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("cannot go into a systemd unit")
            && stderr(&out).contains("control character"),
        "{}",
        stderr(&out)
    );
    assert!(!home.join(".config").exists());
}

/// The log lines of `text` that are not empty.
fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn json_logs_are_one_object_a_line_and_keep_secrets_out() {
    const TOKEN: &str = "MTAwMDAwMDAwMDAwMDAwMDAx.GhIjKl.j50n-s3cret-abcdefghijklmnopqrstuv";
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast();
    swarm(&root);
    fs::write(root.path().join(".env"), format!("DISCORD_TOKEN={TOKEN}\n")).unwrap();

    // A bad format is refused before anything runs.
    let out = root
        .acp()
        .env("ACP_LOG_FORMAT", "xml")
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ACP_LOG_FORMAT=\"xml\" is not a log format: use text or json"),
        "{}",
        stderr(&out)
    );
    assert!(!acp::app::ServiceLock::is_held(root.path()));

    // At trace, bodies are logged: an agent's post carrying the token.
    let from = standin.requests().len();
    let log = root.path().join("service.log");
    root.edit_config(
        "api_base = \"\"",
        &format!("api_base = \"{}\"", standin.base),
    );
    let mut run = root
        .acp()
        .env("ACP_LOG_FORMAT", "json")
        .env("ACP_LOG", "info,acp=trace")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    standin.wait_for(from, LIMIT, |r| {
        r.method == "PUT" && r.path.ends_with("/commands")
    });
    let out = as_agent(
        &root,
        "Agent-1",
        &["send", "--to", "discord", &format!("café ✓ {TOKEN}")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    standin.wait_posts(LIMIT, |posts| {
        posts.iter().any(|p| p.content.contains("café ✓"))
    });
    wait_until(LIMIT, || {
        fs::read_to_string(&log)
            .unwrap()
            .contains("posting to Discord")
    });
    Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(run.wait().unwrap().success());

    let text = fs::read_to_string(&log).unwrap();
    assert!(!text.contains(TOKEN), "the token is in the log:\n{text}");
    let mut levels = std::collections::BTreeSet::new();
    let mut body = None;
    for line in lines(&text) {
        let event: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let level = event["level"].as_str().unwrap_or_else(|| panic!("{line}"));
        levels.insert(level.to_owned());
        assert!(event["fields"].is_object(), "{line}");
        assert!(event["timestamp"].is_string(), "{line}");
        assert!(!line.contains('\u{1b}'), "a colour code: {line}");
        if event["fields"]["message"] == "posting to Discord" {
            body = event["fields"]["body"].as_str().map(str::to_owned);
        }
    }
    assert!(
        levels.contains("INFO") && levels.contains("TRACE"),
        "{levels:?}"
    );
    let body = body.expect("the post's trace line");
    assert!(
        body.contains("café ✓") && body.contains("[redacted]"),
        "{body}"
    );
    assert!(text.contains("\"message\":\"stopped cleanly\""), "{text}");
}

#[test]
fn the_journal_gets_priorities_and_no_times_of_ours() {
    let root = Root::new(1);
    let log = root.path().join("journal.log");
    let file = fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    // What systemd sets when stderr is its journal stream: the device and
    // inode of that stream. Another file's pair is not the journal.
    let run = |stream: String| {
        let mut child = root
            .acp()
            .env("JOURNAL_STREAM", stream)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_until(LIMIT, || {
            fs::read_to_string(&log)
                .unwrap()
                .contains("dispatching messages")
        });
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
        fs::read_to_string(&log).unwrap()
    };
    let journal = run(format!("{}:{}", meta.dev(), meta.ino()));
    for line in lines(&journal) {
        assert!(
            line.starts_with("<6>INFO ") || line.starts_with("<4>WARN "),
            "{line}"
        );
    }
    assert!(
        journal.contains("<6>INFO acp::service: stopped cleanly"),
        "{journal}"
    );
    let elsewhere = run(format!("{}:{}", meta.dev(), meta.ino() + 1));
    let stamped = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").unwrap();
    for line in lines(&elsewhere) {
        assert!(stamped.is_match(line), "{line}");
    }
}

#[test]
fn a_log_file_is_appended_to_and_for_its_owner_only() {
    let root = Root::new(1);
    root.fast();
    let path = root.path().join("logs.txt");
    fs::write(&path, "kept from before\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let fresh = root.path().join("fresh.log");
    for file in [&path, &fresh] {
        let errors = root.path().join("stderr.txt");
        let mut child = root
            .acp()
            .arg("--log-file")
            .arg(file)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&errors).unwrap())
            .spawn()
            .unwrap();
        wait_until(LIMIT, || {
            acp::app::ServiceLock::is_held(root.path())
                && fs::read_to_string(file)
                    .unwrap_or_default()
                    .contains("dispatching messages")
        });
        let out = root.run(&["send", "--to", "Agent-1", "logged"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let id = stdout(&out).lines().next().unwrap().trim().to_owned();
        wait_until(LIMIT, || {
            fs::read_to_string(file)
                .unwrap()
                .contains(&format!("delivered message_id={id}"))
        });
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
        // Nothing on stderr: it all went to the file.
        assert_eq!(fs::read_to_string(&errors).unwrap(), "");
        let mode = fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        let text = fs::read_to_string(file).unwrap();
        assert!(text.contains("stopped cleanly"), "{text}");
        assert!(!text.contains('\u{1b}'), "a colour code:\n{text}");
    }
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("kept from before\n"), "{text}");

    // A file that cannot be opened stops the start, saying so.
    let out = root.run(&["--log-file", "/nonexistent/dir/acp.log", "run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot open --log-file /nonexistent/dir/acp.log"),
        "{}",
        stderr(&out)
    );
    assert!(!acp::app::ServiceLock::is_held(root.path()));
}
