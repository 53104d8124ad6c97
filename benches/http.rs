//! HTTP benchmark: durable accepts per second through `POST /api/v1/messages`
//! (keep-alive, 64 concurrent clients), against the library API and against
//! `acp send` processes, in one run; and the status page's time to first
//! byte. Prints a markdown table (copied into BENCHMARKS.md).
//!
//! Run: `cargo bench --bench http` (or `make bench`).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acp::app::{App, SendRequest};
use acp::config::{Config, Env};
use acp::model::{Draft, Kind, Priority, Recipient, Via};
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 20_000;
const CLIENTS: usize = 64;
const CLI_MESSAGES: usize = 200;
const PAGE_LOADS: usize = 100;
const AGENTS: usize = 4;
const TOKEN: &str = "bench-token-0123456789abcdef";

fn root() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    acp::app::init(dir.path(), u32::try_from(AGENTS).unwrap()).unwrap();
    let mut env = Env::new();
    env.insert("ACP_API_TOKENS".into(), format!("api:read+send={TOKEN}"));
    env.insert("ACP_HTTP_BIND".into(), "127.0.0.1:0".into());
    let config = Config::load(dir.path(), &env).unwrap();
    (dir, config)
}

fn rate(n: usize, d: Duration) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "a rate for a table")]
    let r = n as f64 / d.as_secs_f64();
    r
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a small vector"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn library(app: &Arc<App>) -> Duration {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CLIENTS {
        let app = Arc::clone(app);
        tasks.spawn(async move {
            for i in (t..MESSAGES).step_by(CLIENTS) {
                app.send(SendRequest {
                    draft: Draft {
                        from: "bench".into(),
                        to: Recipient::Agent(format!("Agent-{}", i % AGENTS + 1).parse().unwrap()),
                        kind: Kind::Human,
                        priority: Priority::Normal,
                        body: format!("benchmark message {i}"),
                        tags: vec![],
                        reply_to: None,
                    },
                    via: Via::Auto,
                })
                .await
                .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

async fn over_http(base: &str) -> Duration {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CLIENTS {
        let (client, url) = (client.clone(), format!("{base}/api/v1/messages"));
        tasks.spawn(async move {
            for i in (t..MESSAGES).step_by(CLIENTS) {
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({
                        "to": format!("Agent-{}", i % AGENTS + 1),
                        "body": format!("benchmark message {i}"),
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

/// Time to first byte (the response's headers) of `path`, sequential.
async fn ttfb(base: &str, path: &str) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..PAGE_LOADS {
        let start = Instant::now();
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        times.push(start.elapsed());
        assert!(r.status().is_success());
        let _ = r.bytes().await.unwrap();
    }
    times.sort();
    times
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The library API and HTTP on one core (accept only: no dispatcher
        // runs, as in the pipeline benchmark's accept column).
        let (dir, config) = root();
        let app = Arc::new(App::open(config).unwrap());
        let server = acp::http::bind(Arc::clone(&app)).await.unwrap();
        let base = format!("http://{}", server.addr().unwrap());
        let cancel = CancellationToken::new();
        let serving = tokio::spawn(server.run(cancel.clone()));

        let lib = library(&app).await;
        let http = over_http(&base).await;
        let page = ttfb(&base, "/").await;
        let health = ttfb(&base, "/healthz").await;
        cancel.cancel();
        serving.await.unwrap();
        drop(dir);

        // `acp send` processes, one per message, no service running.
        let (cli_dir, _) = root();
        let start = Instant::now();
        for i in 0..CLI_MESSAGES {
            let out = Command::new(env!("CARGO_BIN_EXE_acp"))
                .arg("--root")
                .arg(cli_dir.path())
                .args(["send", "--to", &format!("Agent-{}", i % AGENTS + 1), "cli message"])
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        let cli = start.elapsed();

        println!("| path | durable accepts/s |");
        println!("|---|---:|");
        println!("| library `App::send`, {CLIENTS} tasks | {:.0} |", rate(MESSAGES, lib));
        println!(
            "| HTTP `POST /api/v1/messages`, {CLIENTS} keep-alive clients | {:.0} |",
            rate(MESSAGES, http)
        );
        println!("| `acp send` processes, sequential | {:.0} |", rate(CLI_MESSAGES, cli));
        println!();
        println!("| page | time to first byte p50 / p99 (ms) |");
        println!("|---|---:|");
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
        println!(
            "| `/` (status page, after {} messages) | {} / {} |",
            MESSAGES * 2,
            ms(percentile(&page, 0.5)),
            ms(percentile(&page, 0.99))
        );
        println!(
            "| `/healthz` | {} / {} |",
            ms(percentile(&health, 0.5)),
            ms(percentile(&health, 0.99))
        );
        println!(
            "\n{MESSAGES} messages for each of the first two rows, {CLI_MESSAGES} for the third; {PAGE_LOADS} sequential loads per page."
        );
    });
}
