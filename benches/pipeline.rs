//! Pipeline benchmark: durable messages per second through the library API
//! and through `acp send`, for 1 and 8 agents, and latency from accept to
//! inbox file. Prints a markdown table (copied into BENCHMARKS.md).
//!
//! Run: `cargo bench --bench pipeline` (or `make bench`).

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acp::app::{App, SendRequest};
use acp::config::{Config, Env};
use acp::delivery::Methods;
use acp::events::Event;
use acp::model::Via;
use acp::model::{Kind, Priority, Recipient};
use tokio_util::sync::CancellationToken;

const LIBRARY_MESSAGES: usize = 20_000;
const CONCURRENT_SENDERS: usize = 64;
const CLI_MESSAGES: usize = 200;
const PACED_MESSAGES: usize = 1_000;
const PACED_RATE: u64 = 200;

fn root(agents: u32) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    acp::app::init(dir.path(), agents).unwrap();
    let config = Config::load(dir.path(), &Env::new()).unwrap();
    (dir, config)
}

fn request(i: usize, agents: usize) -> SendRequest {
    SendRequest {
        draft: acp::model::Draft {
            from: "bench".into(),
            to: Recipient::Agent(format!("Agent-{}", i % agents + 1).parse().unwrap()),
            kind: Kind::Human,
            priority: Priority::Normal,
            body: format!("benchmark message {i}: implement the next step and report back"),
            tags: vec![],
            reply_to: None,
        },
        via: Via::Auto,
    }
}

/// Sends `n` messages from `CONCURRENT_SENDERS` tasks; returns the elapsed time.
async fn burst(app: &Arc<App>, n: usize, agents: usize) -> Duration {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CONCURRENT_SENDERS {
        let app = Arc::clone(app);
        tasks.spawn(async move {
            for i in (t..n).step_by(CONCURRENT_SENDERS) {
                app.send(request(i, agents)).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    start.elapsed()
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

fn rate(n: usize, d: Duration) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a rate for a table")]
    let r = n as f64 / d.as_secs_f64();
    format!("{r:.0}")
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Row {
    agents: u32,
    accept_only: String,
    end_to_end: String,
    cli: String,
    p50: String,
    p99: String,
    burst_p50: String,
    burst_p99: String,
}

async fn library(agents: u32) -> Row {
    let n_agents = agents as usize;
    // 1. Accept only: durable messages/s with no dispatcher running.
    let (_dir, config) = root(agents);
    let app = Arc::new(App::open(config).unwrap());
    let accept = burst(&app, LIBRARY_MESSAGES, n_agents).await;
    drop(app);

    // 2. End to end: accept and deliver to inbox files, dispatcher running.
    let (_dir2, config) = root(agents);
    let app = Arc::new(App::open(config).unwrap());
    let dispatcher = Arc::new(app.dispatcher(Methods::standard()).unwrap());
    let cancel = CancellationToken::new();
    let mut events = app.events().subscribe();
    let runner = tokio::spawn(Arc::clone(&dispatcher).run(
        app.wake(),
        cancel.clone(),
        Arc::new(std::sync::atomic::AtomicI64::new(0)),
    ));
    let start = Instant::now();
    let collector = tokio::spawn(async move {
        let mut accepted: HashMap<acp::model::MessageId, Instant> = HashMap::new();
        let mut latencies = Vec::new();
        while latencies.len() < LIBRARY_MESSAGES + PACED_MESSAGES {
            match events.recv().await {
                Ok(Event::Accepted { message_id, .. }) => {
                    accepted.insert(message_id, Instant::now());
                }
                Ok(Event::Delivered { message_id, .. }) => {
                    if let Some(t) = accepted.remove(&message_id) {
                        latencies.push((Instant::now(), t.elapsed()));
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("event bus: {e}"),
            }
        }
        latencies
    });
    burst(&app, LIBRARY_MESSAGES, n_agents).await;
    // Wait for the burst to drain before the paced run.
    loop {
        let s = app.status().await.unwrap();
        if s.queue[&acp::model::DeliveryState::Delivered]
            .values()
            .sum::<u64>()
            >= LIBRARY_MESSAGES as u64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end_to_end = start.elapsed();

    // 3. Paced load: latency from accept to inbox file at a steady rate.
    let paced_start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    for i in 0..PACED_MESSAGES {
        ticker.tick().await;
        app.send(request(i, n_agents)).await.unwrap();
    }
    let latencies = collector.await.unwrap();
    cancel.cancel();
    runner.await.unwrap();
    let (burst_lat, paced_lat): (Vec<_>, Vec<_>) =
        latencies.into_iter().partition(|(at, _)| *at < paced_start);
    let mut burst_lat: Vec<Duration> = burst_lat.into_iter().map(|(_, d)| d).collect();
    let mut paced_lat: Vec<Duration> = paced_lat.into_iter().map(|(_, d)| d).collect();
    burst_lat.sort();
    paced_lat.sort();

    // 4. Through the CLI: one `acp send` process per message, no service
    //    running (each process delivers its own message).
    let (dir3, _) = root(agents);
    let start = Instant::now();
    for i in 0..CLI_MESSAGES {
        let out = Command::new(env!("CARGO_BIN_EXE_acp"))
            .arg("--root")
            .arg(dir3.path())
            .args([
                "send",
                "--to",
                &format!("Agent-{}", i % n_agents + 1),
                "cli benchmark message",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let cli = start.elapsed();

    Row {
        agents,
        accept_only: rate(LIBRARY_MESSAGES, accept),
        end_to_end: rate(LIBRARY_MESSAGES, end_to_end),
        cli: rate(CLI_MESSAGES, cli),
        p50: ms(percentile(&paced_lat, 0.5)),
        p99: ms(percentile(&paced_lat, 0.99)),
        burst_p50: ms(percentile(&burst_lat, 0.5)),
        burst_p99: ms(percentile(&burst_lat, 0.99)),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows: Vec<Row> = [1, 8]
        .into_iter()
        .map(|a| runtime.block_on(library(a)))
        .collect();
    println!(
        "| agents | library accept (msg/s) | library accept + inbox delivery (msg/s) | `acp send` processes (msg/s) | accept→inbox p50 / p99 at {PACED_RATE} msg/s (ms) | accept→inbox p50 / p99 in the burst (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} / {} | {} / {} |",
            r.agents, r.accept_only, r.end_to_end, r.cli, r.p50, r.p99, r.burst_p50, r.burst_p99
        );
    }
    println!(
        "\n{LIBRARY_MESSAGES} messages from {CONCURRENT_SENDERS} concurrent senders for the library columns; {CLI_MESSAGES} sequential `acp send` runs; {PACED_MESSAGES} paced messages for the first latency column."
    );
}
