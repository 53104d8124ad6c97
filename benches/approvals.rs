//! Approvals benchmark: how fast a person on Discord hears of a prompt and
//! how fast their answer reaches the agent, through the real `acp run` and
//! the stand-in Discord.
//!
//! - hook: from `acp hook` started with Claude Code's `PermissionRequest`
//!   to the post with its buttons; from the Allow press to the hook
//!   printing its answer (process start included, as an agent runs it).
//! - pane: from a Claude-Code-like dialog appearing in a real tmux pane
//!   (`tests/support/prompt.py`) to the post; from the press to the key
//!   arriving in the pane (bounded by `approval.pane_probe_ms`, 100 here).
//!
//! p50 and p99 of each, as a markdown table. Run: `cargo bench --bench
//! approvals` (or `make bench-approvals`); needs tmux.

#[path = "../tests/it/standin.rs"]
#[allow(dead_code, reason = "shared with the tests; the bench uses part of it")]
mod standin;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use standin::{CHANNEL_ID, GatewayCmd, StandIn, button_press};

const HOOK_ROUNDS: usize = 60;
const PANE_ROUNDS: usize = 40;
const OPERATOR: &str = "700000000000000001";
const LIMIT: Duration = Duration::from_secs(30);

fn edit(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(config, text.replacen(from, to, 1)).unwrap();
}

fn tmux(socket: &str, args: &[&str]) {
    let ok = Command::new("tmux")
        .args(["-L", socket, "-f", "/dev/null"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "tmux {args:?} failed (is tmux installed?)");
}

/// The post that carries `text`, once posted, and its Allow button.
fn post_with(standin: &StandIn, text: &str) -> (u64, String) {
    let posts = standin.wait_posts(LIMIT, |posts| {
        posts.iter().any(|p| p.content.contains(text))
    });
    let post = posts
        .into_iter()
        .find(|p| p.content.contains(text))
        .unwrap();
    let allow = post.components[0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (post.id, allow)
}

fn press(standin: &StandIn, n: u64, post: u64, allow: &str) {
    standin.gateway(GatewayCmd::Dispatch(
        "INTERACTION_CREATE",
        button_press(n, allow, post, CHANNEL_ID, &[OPERATOR], 42 + n),
    ));
}

fn table_row(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index"
        )]
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        ms(samples[i])
    };
    println!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        p(0.5),
        p(0.99),
        ms(*samples.last().unwrap())
    );
}

/// A root whose Agent-1 runs in a tmux pane (the recording prompt) and
/// whose Discord is the stand-in: (the root, the agent's record, the tmux
/// socket).
fn setup(standin: &StandIn) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    acp::app::init(dir.path(), 2).unwrap();
    let record = dir.path().join("agent.jsonl");
    let socket = format!("acp-bench-{}", std::process::id());
    let prompt = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/prompt.py");
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "agents",
            "-n",
            "Agent-1",
            "-x",
            "200",
            "-y",
            "40",
            &format!("/usr/bin/python3 {prompt} {}", record.display()),
        ],
    );
    let config = dir.path().join("config/acp.toml");
    edit(
        &config,
        "api_base = \"\"",
        &format!(
            "api_base = \"{}\"\nguild_id = 200000000000000001",
            standin.base
        ),
    );
    edit(
        &config,
        "swarm_channel = 0",
        &format!("swarm_channel = {CHANNEL_ID}"),
    );
    edit(
        &config,
        "operator_roles = []",
        &format!("operator_roles = [{OPERATOR}]"),
    );
    edit(&config, "timeout_secs = 600", "timeout_secs = 120");
    edit(&config, "pane_probe_ms = 500", "pane_probe_ms = 100");
    edit(&config, "poll_ms = 100", "poll_ms = 20");
    edit(
        &config,
        "id = \"Agent-1\"\n",
        &format!(
            "id = \"Agent-1\"\ndelivery = [\"tmux\", \"inbox\"]\ntmux = {{ target = \
             \"agents:Agent-1.0\", socket = \"{socket}\", command = \"^python\", profile = \
             \"claude\" }}\n"
        ),
    );
    std::fs::write(dir.path().join(".env"), "DISCORD_TOKEN=bench-token\n").unwrap();
    (dir, record, socket)
}

fn main() {
    let standin = StandIn::start();
    let (dir, record, socket) = setup(&standin);
    let mut run = Command::new(env!("CARGO_BIN_EXE_acp"))
        .arg("--root")
        .arg(dir.path())
        .arg("run")
        .env("ACP_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    standin.wait_for(0, Duration::from_secs(60), |r| r.method == "PUT");

    // The hook's path.
    let (mut to_post, mut to_answer) = (Vec::new(), Vec::new());
    for n in 0..HOOK_ROUNDS {
        let command = format!("cargo test --round {n}");
        let event = json!({
            "session_id": format!("s{n}"), "hook_event_name": "PermissionRequest",
            "tool_name": "Bash", "tool_input": {"command": command}
        });
        let started = Instant::now();
        let mut hook = Command::new(env!("CARGO_BIN_EXE_acp"))
            .arg("--root")
            .arg(dir.path())
            .arg("hook")
            .env("ACP_AGENT", "Agent-2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        hook.stdin
            .take()
            .unwrap()
            .write_all(event.to_string().as_bytes())
            .unwrap();
        let (post, allow) = post_with(&standin, &command);
        to_post.push(started.elapsed());
        let pressed = Instant::now();
        press(&standin, 5_000 + n as u64, post, &allow);
        let out = hook.wait_with_output().unwrap();
        to_answer.push(pressed.elapsed());
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            answer["hookSpecificOutput"]["decision"]["behavior"],
            "allow"
        );
    }

    // The pane's path.
    let (mut pane_to_post, mut pane_to_key) = (Vec::new(), Vec::new());
    let keys = |record: &Path| {
        std::fs::read_to_string(record)
            .unwrap_or_default()
            .matches("dialog_key")
            .count()
    };
    for n in 0..PANE_ROUNDS {
        let command = format!("make deploy-{n}");
        let started = Instant::now();
        std::fs::write(format!("{}.dialog", record.display()), &command).unwrap();
        let (post, allow) = post_with(&standin, &command);
        pane_to_post.push(started.elapsed());
        let pressed = Instant::now();
        press(&standin, 6_000 + n as u64, post, &allow);
        while keys(&record) <= n {
            assert!(pressed.elapsed() < LIMIT, "the key never came");
            std::thread::sleep(Duration::from_millis(2));
        }
        pane_to_key.push(pressed.elapsed());
    }
    let _ = run.kill();
    let _ = run.wait();
    tmux(&socket, &["kill-server"]);

    println!("| path | n | p50 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---:|---:|---:|---:|");
    table_row("hook called → post with buttons", to_post);
    table_row("press → hook's answer printed", to_answer);
    table_row("dialog in the pane → post with buttons", pane_to_post);
    table_row("press → key in the pane", pane_to_key);
    standin.assert_no_violations();
}
