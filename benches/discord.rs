//! Discord commander benchmark: latency from `INTERACTION_CREATE` sent by
//! the stand-in to the interaction callback received, p50 and p99 over
//! 1,000 `/status` commands, and the resident memory of the `acp bot`
//! process idle and after them. Prints a markdown table.
//!
//! Run: `cargo bench --bench discord` (or `make bench`).

#[path = "../tests/it/standin.rs"]
#[allow(dead_code, reason = "shared with the tests; the bench uses part of it")]
mod standin;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use standin::{GatewayCmd, StandIn, interaction};

const COMMANDS: u64 = 1_000;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let standin = StandIn::start();
    let dir = tempfile::tempdir().unwrap();
    acp::app::init(dir.path(), 8).unwrap();
    let config = dir.path().join("config/acp.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "api_base = \"\"",
        &format!(
            "api_base = \"{}\"\nguild_id = 200000000000000001",
            standin.base
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut bot = Command::new(env!("CARGO_BIN_EXE_acp"))
        .arg("--root")
        .arg(dir.path())
        .arg("bot")
        .env("DISCORD_TOKEN", "bench-token")
        .env("ACP_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    standin.wait_for(0, Duration::from_secs(60), |r| r.method == "PUT");
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(bot.id());

    let mut latencies = Vec::new();
    for i in 0..COMMANDS {
        let id = 400_000_000_000_000_000 + i;
        let from = standin.requests().len();
        let sent = Instant::now();
        standin.gateway(GatewayCmd::Dispatch(
            "INTERACTION_CREATE",
            interaction(id, "status", &json!([]), &[]),
        ));
        let callback = format!("/interactions/{id}/token-{id}/callback");
        let got = standin.wait_for(from, Duration::from_secs(10), |r| r.path == callback);
        latencies.push(got.at.duration_since(sent));
    }
    let after = rss_kib(bot.id());
    let _ = bot.kill();
    let _ = bot.wait();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index"
        )]
        let i = ((latencies.len() - 1) as f64 * q).round() as usize;
        ms(latencies[i])
    };
    println!("| commands | p50 (ms) | p99 (ms) | max (ms) | RSS idle (MiB) | RSS after (MiB) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    #[expect(clippy::cast_precision_loss, reason = "MiB for a table")]
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "| {COMMANDS} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
        p(0.5),
        p(0.99),
        ms(*latencies.last().unwrap()),
        mib(idle),
        mib(after)
    );
    standin.assert_no_violations();
}
