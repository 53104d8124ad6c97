//! The soak benchmark's harness (`benches/soak/harness.rs`) in a small
//! form: a compressed year on one root with `acp run` killed by SIGKILL at
//! random moments, retention and backups between steps; nothing lost,
//! nothing duplicated. The figures are the benchmark's business
//! (`make bench-soak`); this asserts only what must hold.

use std::path::Path;
use std::time::Duration;

#[path = "../../benches/soak/harness.rs"]
mod harness;

#[test]
fn a_compressed_year_with_sigkills_retention_and_backups_loses_and_duplicates_nothing() {
    let params = harness::Params {
        messages: 2_400,
        agents: 4,
        steps: 6,
        kills: 6,
        seed: harness::Params::seed_from_env(),
        full_every: 3,
        keep_steps: 2,
        senders: 8,
        samples: 3,
        drain_limit: Duration::from_secs(120),
    };
    eprintln!(
        "soak seed: {} (replay with ACP_TEST_SEED={})",
        params.seed, params.seed
    );
    let mut table = Vec::new();
    let outcome = harness::run(&params, Path::new(env!("CARGO_BIN_EXE_acp")), &mut table);
    let table = String::from_utf8(table).unwrap();
    eprintln!("{table}");

    assert_eq!(outcome.accepted, 2_400, "{table}");
    assert_eq!(outcome.losses, 0, "accepted messages lost\n{table}");
    assert_eq!(outcome.duplicates, 0, "messages delivered twice\n{table}");
    assert_eq!(outcome.kills, 6, "{table}");
    assert_eq!(outcome.backups, 6, "{table}");
    // Retention ran inside the run: the store holds fewer messages than
    // were sent, and at least keep_min (100) per agent.
    assert!(outcome.pruned > 0, "retention removed nothing\n{table}");
    let last = outcome.rows.last().unwrap();
    assert!(
        last.measured.stored_messages < 2_400 && last.measured.stored_messages >= 400,
        "{} messages in the store\n{table}",
        last.measured.stored_messages
    );
    assert!(
        last.measured.repository_bytes > 0 && last.measured.rss > 0,
        "{table}"
    );
}
