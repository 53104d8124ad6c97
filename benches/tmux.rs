//! tmux delivery benchmark: acp's tmux method (bracketed paste, submit,
//! submit check) against a plain `tmux send-keys` loop with a 0.5 s sleep
//! before Enter (Tmux-Orchestrator's method), for 100, 2,000 and 10,000
//! characters, into a pane running the tests' recording prompt. Latency is
//! from the start of the delivery until the prompt has recorded the
//! submission. Prints a markdown table (copied into BENCHMARKS.md).
//!
//! Run: `cargo bench --bench tmux` (or `make bench-tmux`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use acp::config::{Config, Env};
use acp::delivery::{DeliveryMethod, Target};
use acp::model::{Draft, Kind, Priority, Recipient};

const ROUNDS: usize = 10;
const SIZES: [usize; 3] = [100, 2000, 10_000];

fn tmux(socket: &str, args: &[&str]) {
    let ok = Command::new("tmux")
        .args(["-L", socket, "-f", "/dev/null"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "tmux {args:?} failed");
}

fn submissions(record: &Path) -> usize {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .count()
}

/// Waits until the prompt has recorded `n` submissions.
fn wait_for(record: &Path, n: usize) {
    let start = Instant::now();
    while submissions(record) < n {
        assert!(start.elapsed() < Duration::from_secs(60), "no submission");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("acp-bench-{}", std::process::id());
    let record: PathBuf = dir.path().join("prompt.jsonl");
    let prompt = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/prompt.py");
    let cmd = format!("/usr/bin/python3 {prompt} {}", record.display());
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "bench",
            "-x",
            "200",
            "-y",
            "50",
            &cmd,
        ],
    );
    // Until the prompt shows.
    let start = Instant::now();
    loop {
        let out = Command::new("tmux")
            .args(["-L", &socket, "capture-pane", "-p", "-t", "bench:0.0"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).starts_with('>') {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no prompt");
        std::thread::sleep(Duration::from_millis(10));
    }

    let root = dir.path().join("root");
    acp::app::init(&root, 1).unwrap();
    let path = root.join("config/acp.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = format!(
        "id = \"Agent-1\"\ndelivery = [\"tmux\"]\ntmux = {{ target = \"bench:0.0\", socket = \"{socket}\", command = \"^python\", idle_pattern = \"^>\" }}"
    );
    std::fs::write(&path, text.replacen("id = \"Agent-1\"", &line, 1)).unwrap();
    let config = Config::load(&root, &Env::new()).unwrap();
    let agent = config.agents.all()[0].clone();
    let method = acp::delivery::tmux::TmuxMethod::new(root.join("data/tmux"));

    println!(
        "| characters | acp tmux (bracketed paste, 200 ms, submit check) p50 (ms) | `send-keys -l`, sleep 0.5 s, Enter p50 (ms) |"
    );
    println!("|---:|---:|---:|");
    let mut done = 0;
    for size in SIZES {
        let body: String = "abcdefghij".repeat(size / 10);
        let mut acp_times = Vec::new();
        let mut plain_times = Vec::new();
        for _ in 0..ROUNDS {
            let message = Draft {
                from: "bench".into(),
                to: Recipient::Agent(agent.id.clone()),
                kind: Kind::Human,
                priority: Priority::Normal,
                body: body.clone(),
                tags: vec![],
                reply_to: None,
            }
            .build(1 << 20)
            .unwrap();
            let start = Instant::now();
            method.deliver(Target::Agent(&agent), &message).unwrap();
            done += 1;
            wait_for(&record, done);
            acp_times.push(start.elapsed());

            let start = Instant::now();
            tmux(&socket, &["send-keys", "-t", "bench:0.0", "-l", &body]);
            std::thread::sleep(Duration::from_millis(500));
            tmux(&socket, &["send-keys", "-t", "bench:0.0", "Enter"]);
            done += 1;
            wait_for(&record, done);
            plain_times.push(start.elapsed());
        }
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
        println!(
            "| {size} | {} | {} |",
            ms(median(acp_times)),
            ms(median(plain_times))
        );
    }
    tmux(&socket, &["kill-server"]);
    println!(
        "\n{ROUNDS} deliveries per cell, alternating, into one pane running tests/support/prompt.py."
    );
}
