//! Soak benchmark (issue 25): a year of traffic compressed into twelve
//! steps on one root, `acp run` killed by SIGKILL at random moments,
//! retention and backups on their schedule. Prints a markdown table, a row
//! per step (copied into BENCHMARKS.md), and exits 1 if a message was lost
//! or duplicated.
//!
//! Run: `make bench-soak`, or `cargo bench --bench soak`. The size comes
//! from the environment: `SOAK_MESSAGES` (default 120000), `SOAK_AGENTS`
//! (16), `SOAK_STEPS` (12), `SOAK_KILLS` (24), `SOAK_FULL_EVERY` (4: a
//! full backup every fourth step, incremental otherwise), `SOAK_KEEP_STEPS`
//! (3: retention keeps three months of the twelve, as `keep_days = 90`
//! does in a year), `SOAK_SAMPLES` (50 page and status timings per step);
//! `ACP_TEST_SEED` replays a run's kill points.

use std::path::Path;
use std::time::Duration;

#[path = "soak/harness.rs"]
mod harness;

fn param(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let params = harness::Params {
        messages: param("SOAK_MESSAGES", 120_000),
        agents: u32::try_from(param("SOAK_AGENTS", 16)).unwrap(),
        steps: param("SOAK_STEPS", 12),
        kills: param("SOAK_KILLS", 24),
        seed: harness::Params::seed_from_env(),
        full_every: param("SOAK_FULL_EVERY", 4),
        keep_steps: param("SOAK_KEEP_STEPS", 3),
        senders: 32,
        samples: param("SOAK_SAMPLES", 50),
        drain_limit: Duration::from_secs(600),
    };
    eprintln!(
        "soak seed: {} (replay with ACP_TEST_SEED={})",
        params.seed, params.seed
    );
    let outcome = harness::run(
        &params,
        Path::new(env!("CARGO_BIN_EXE_acp")),
        &mut std::io::stdout(),
    );
    if outcome.losses > 0 || outcome.duplicates > 0 {
        eprintln!(
            "FAILED: {} lost, {} duplicated (seed {})",
            outcome.losses, outcome.duplicates, params.seed
        );
        std::process::exit(1);
    }
}
