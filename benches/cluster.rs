//! Several machines benchmark: hub-to-node delivery over JetStream on
//! loopback against local delivery on the hub, in one run. A real
//! `nats-server -js` on 127.0.0.1, a hub root and a node root, each its own
//! `acp run` (release build). Messages are accepted through the library on
//! the hub (as the bot and the HTTP API do); a delivery counts when the
//! hub's store says it was delivered: for the node, after its outcome came
//! back (the true receipt).
//!
//! - latency: 200 messages one at a time, p50 and p99 from accept to the
//!   hub's record;
//! - throughput: 2,000 messages at once, until the last is recorded.
//!
//! Run: `cargo bench --bench cluster` (or `make bench-cluster`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acp::app::{App, SendRequest};
use acp::config::{Config, Env};
use acp::model::{Draft, Kind, Priority, Recipient, Via};

const LATENCY_ROUNDS: usize = 200;
const BURST: usize = 2000;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nats_server() -> Option<PathBuf> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A root for `node`, with Agent-1 on the hub (desk-1) and Agent-2 on
/// desk-2, polling every 5 ms for work accepted by other processes.
fn root(dir: &Path, node: &str, url: &str) -> PathBuf {
    let root = dir.join(node);
    acp::app::init(&root, 2).unwrap();
    let path = root.join("config/acp.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "id = \"Agent-1\"\n",
            "id = \"Agent-1\"\nnode = \"desk-1\"\n",
            1,
        )
        .replacen(
            "id = \"Agent-2\"\n",
            "id = \"Agent-2\"\nnode = \"desk-2\"\n",
            1,
        )
        .replacen("poll_ms = 100", "poll_ms = 5", 1)
        .replacen("bind = \"127.0.0.1:7420\"", "bind = \"127.0.0.1:0\"", 1)
        + "\n[cluster]\nhub = \"desk-1\"\n";
    std::fs::write(&path, text).unwrap();
    std::fs::write(
        root.join(".env"),
        format!("ACP_NATS_URL={url}\nACP_NODE={node}\n"),
    )
    .unwrap();
    root
}

fn run(root: &Path) -> Proc {
    let log = std::fs::File::create(root.join("service.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_acp"))
        .arg("--root")
        .arg(root)
        .arg("run")
        .env_remove("ACP_ROOT")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !acp::app::ServiceLock::is_held(root) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "acp run did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Proc(child)
}

fn delivered(db: &rusqlite::Connection, ids: &[String]) -> usize {
    let mut stmt = db
        .prepare_cached("SELECT state FROM deliveries WHERE message_id = ?1")
        .unwrap();
    ids.iter()
        .filter(|id| {
            stmt.query_row([id.as_str()], |r| r.get::<_, String>(0))
                .is_ok_and(|s| s == "delivered")
        })
        .count()
}

fn wait_delivered(db: &rusqlite::Connection, ids: &[String], limit: Duration) {
    let start = Instant::now();
    while delivered(db, ids) < ids.len() {
        assert!(start.elapsed() < limit, "not delivered within {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

async fn send(app: &App, agent: &str, body: String) -> String {
    let message = app
        .send(SendRequest {
            draft: Draft {
                from: "bench".into(),
                to: Recipient::Agent(agent.parse().unwrap()),
                kind: Kind::Human,
                priority: Priority::Normal,
                body,
                tags: vec![],
                reply_to: None,
            },
            via: Via::Auto,
        })
        .await
        .unwrap();
    message.id.to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list of samples"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let Some(nats) = nats_server() else {
        println!("nats-server is missing (apt-get install nats-server): nothing measured");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let server = Proc(
        Command::new(nats)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path().join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let hub_root = root(dir.path(), "desk-1", &url);
    let node_root = root(dir.path(), "desk-2", &url);
    let hub = run(&hub_root);
    let node = run(&node_root);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = Arc::new(App::open(Config::load(&hub_root, &Env::new()).unwrap()).unwrap());
    let db = rusqlite::Connection::open(hub_root.join("data/acp.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();

    println!(
        "| delivery | latency p50 (ms) | latency p99 (ms) | throughput, {BURST} at once (msg/s) |"
    );
    println!("|---|---:|---:|---:|");
    for (label, agent) in [
        ("local on the hub (inbox)", "Agent-1"),
        (
            "hub → node over JetStream (inbox on desk-2, outcome back)",
            "Agent-2",
        ),
    ] {
        let mut lat = Vec::with_capacity(LATENCY_ROUNDS);
        for i in 0..LATENCY_ROUNDS {
            let t = Instant::now();
            let id = runtime.block_on(send(&app, agent, format!("latency {i}")));
            wait_delivered(&db, &[id], Duration::from_secs(30));
            lat.push(t.elapsed());
        }
        lat.sort();
        let t = Instant::now();
        let ids: Vec<String> = runtime.block_on(async {
            let sends = (0..BURST).map(|i| send(&app, agent, format!("burst {i}")));
            futures_util::future::join_all(sends).await
        });
        wait_delivered(&db, &ids, Duration::from_secs(600));
        let secs = t.elapsed().as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "a message count")]
        let rate = BURST as f64 / secs;
        println!(
            "| {label} | {:.1} | {:.1} | {rate:.0} |",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
    drop((node, hub, server));
}
