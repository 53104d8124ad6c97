//! A shell in an agent's pane runs whatever is pasted into it: acp never
//! pastes there, whatever `tmux.command` says, unless the agent's table
//! says `paste_into_shell_runs_messages = true`. Real shells in real tmux
//! panes, messages that would run commands.

use std::path::Path;
use std::time::Duration;

use crate::support::{Root, stderr, stdout, wait_until};
use crate::tmux::{Tmux, delivery, send};

const LIMIT: Duration = Duration::from_secs(30);
const SHELL: &str = "/bin/bash --norc --noprofile";

/// The tmux table for `name`'s pane with `extra` keys.
fn table(tmux: &Tmux, name: &str, extra: &str) -> String {
    format!(
        "delivery = [\"tmux\", \"inbox\"]\ntmux = {{ target = \"{}\", socket = \"{}\", \
         pre_submit_delay_ms = 50{extra} }}",
        Tmux::target(name),
        tmux.socket
    )
}

fn command_in(tmux: &Tmux, name: &str) -> String {
    let out = tmux
        .cmd(&[
            "display-message",
            "-p",
            "-t",
            &Tmux::target(name),
            "#{pane_current_command}",
        ])
        .output()
        .unwrap();
    stdout(&out).trim().to_owned()
}

/// A message whose lines create `marker` if a shell runs them.
fn attack(marker: &Path) -> String {
    format!(
        "please review\ntouch {m}\n$(touch {m}) `touch {m}`",
        m = marker.display()
    )
}

#[test]
fn a_shell_pane_is_never_pasted_into_whatever_the_config_says() {
    let tmux = Tmux::new();
    // Agent-1: a bare shell, no command guard (what `acp init --tmux`
    // used to write). Agent-2: the agent that exits back to its shell,
    // with a guard a person wrote to let bash in. Agent-3: a shell, with
    // the key that says in words that messages run as commands.
    tmux.open(&[
        ("Agent-1", SHELL.to_owned()),
        ("Agent-2", SHELL.to_owned()),
        ("Agent-3", SHELL.to_owned()),
    ]);
    // Agent-2's agent is started from its shell, as people do.
    wait_until(LIMIT, || command_in(&tmux, "Agent-2") == "bash");
    let start = tmux.prompt_command("Agent-2");
    assert!(
        tmux.cmd(&["send-keys", "-t", &Tmux::target("Agent-2"), &start, "Enter"])
            .status()
            .unwrap()
            .success()
    );
    wait_until(LIMIT, || {
        command_in(&tmux, "Agent-1") == "bash"
            && command_in(&tmux, "Agent-2") == "python3"
            && tmux.screen("Agent-2").lines().any(|l| l.starts_with('>'))
            && command_in(&tmux, "Agent-3") == "bash"
    });
    let root = Root::new(3);
    root.fast();
    root.agent_config("Agent-1", &table(&tmux, "Agent-1", ""));
    root.agent_config(
        "Agent-2",
        &table(&tmux, "Agent-2", ", command = \"^(python3|bash)$\""),
    );
    root.agent_config(
        "Agent-3",
        &table(&tmux, "Agent-3", ", paste_into_shell_runs_messages = true"),
    );
    let marks = tempfile::tempdir().unwrap();

    // Into a bare shell: nothing typed, the inbox has it, and why is said.
    let marker = marks.path().join("one");
    let id = send(&root, "Agent-1", &attack(&marker));
    let d = delivery(&root, &id);
    assert_eq!(d["method"], "inbox", "{d}");
    let why = d["tried"].to_string();
    assert!(why.contains("runs \\\"bash\\\", a shell"), "{why}");
    assert!(why.contains("would run as commands"), "{why}");
    assert!(root.inbox_ids("Agent-1").contains_key(&id));
    assert!(
        !tmux.screen("Agent-1").contains("touch"),
        "typed into the shell"
    );

    // The agent at work gets its message; once it exits and its shell is
    // back, the next message is not typed there, though the guard names bash.
    let first = send(&root, "Agent-2", "while the agent runs");
    assert_eq!(delivery(&root, &first)["method"], "tmux");
    assert_eq!(tmux.submitted("Agent-2")[0]["text"], "while the agent runs");
    let pid = tmux
        .cmd(&[
            "display-message",
            "-p",
            "-t",
            &Tmux::target("Agent-2"),
            "#{pane_pid}",
        ])
        .output()
        .unwrap();
    let shell = stdout(&pid).trim().to_owned();
    assert!(
        std::process::Command::new("pkill")
            .args(["-P", &shell, "python3"])
            .status()
            .unwrap()
            .success()
    );
    wait_until(LIMIT, || command_in(&tmux, "Agent-2") == "bash");
    let marker2 = marks.path().join("two");
    let id = send(&root, "Agent-2", &attack(&marker2));
    let d = delivery(&root, &id);
    assert_eq!(d["method"], "inbox", "{d}");
    assert!(d["tried"].to_string().contains("a shell"), "{d}");
    assert!(d["tried"].to_string().contains("start it again"), "{d}");
    assert_eq!(tmux.submitted("Agent-2").len(), 1);

    // The same message where the person allowed it runs: the test would
    // see a paste into a shell if the guard let one through.
    let marker3 = marks.path().join("three");
    let id = send(&root, "Agent-3", &attack(&marker3));
    assert_eq!(delivery(&root, &id)["method"], "tmux");
    wait_until(LIMIT, || marker3.exists());
    assert!(
        !marker.exists() && !marker2.exists(),
        "a refused message ran"
    );
}

#[test]
fn tmux_attach_refuses_a_shell_and_never_suggests_one() {
    let tmux = Tmux::new();
    tmux.open(&[("Agent-1", SHELL.to_owned())]);
    wait_until(LIMIT, || command_in(&tmux, "Agent-1") == "bash");
    let root = Root::new(1);
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
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("guard: refused"), "{text}");
    assert!(text.contains("a shell"), "{text}");
    assert!(!text.contains("saved in"), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("tmux = {"))
        .unwrap_or_else(|| panic!("no line to add: {text}"));
    assert!(!line.contains("bash"), "{line}");
    assert!(line.contains("claude"), "{line}");
    let config = std::fs::read_to_string(root.path().join("config/acp.toml")).unwrap();
    assert!(!config.contains("tmux ="), "saved a shell pane: {config}");
}
