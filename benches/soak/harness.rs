//! The soak: a year of traffic compressed into steps, on one acp root, with
//! `acp run` killed by SIGKILL at random moments, retention and backups on
//! their schedule. Shared by the benchmark (`benches/soak.rs`, `make
//! bench-soak`) and the integration test (`tests/it/soak.rs`), which
//! differ only in their [`Params`].
//!
//! Each step stands for `12 / steps` months: senders store a step's share
//! of the messages through the library (`App::send`, which returns once the
//! message is durable) while `acp run`, a real process, delivers them to
//! the agents' inboxes and is killed after a random number of further
//! deliveries (evidence, not a guessed sleep) and started again. Then the
//! step drains, retention runs with `keep_days` set to the last
//! `keep_steps` steps (90 days of a compressed year is three monthly
//! steps), a backup is taken (full every `full_every` steps, incremental
//! otherwise), and a row is printed.
//!
//! Losses and duplicates are counted from the inbox files, whose names
//! carry the message id: an id accepted in a step without a file in its
//! agent's inbox once the step drained is lost; an id ever seen with two
//! files is duplicated. (Retention then takes the files of the messages
//! it removes, so each step checks its own.)

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use acp::app::{App, SendRequest};
use acp::config::{Config, Env};
use acp::model::{Draft, Kind, Priority, Recipient, Via};

/// What one soak does.
#[derive(Debug, Clone)]
pub struct Params {
    /// Messages over the whole run, spread evenly over the steps.
    pub messages: usize,
    /// Inbox agents, `Agent-1` .. `Agent-N`.
    pub agents: u32,
    /// Steps of the compressed year (12: a step is a month).
    pub steps: usize,
    /// SIGKILLs of `acp run` over the whole run, spread over the steps.
    pub kills: usize,
    /// The random seed (kill points); printed, replayed by `ACP_TEST_SEED`.
    pub seed: u64,
    /// A full backup every this many steps (the first step's is full),
    /// incremental otherwise.
    pub full_every: usize,
    /// Retention keeps the messages of the last this many steps.
    pub keep_steps: usize,
    /// Concurrent sending tasks.
    pub senders: usize,
    /// Requests per step for the page and `acp status` timings.
    pub samples: usize,
    /// How long a step may take to drain before what is missing counts as
    /// lost.
    pub drain_limit: Duration,
}

impl Params {
    /// The seed from `ACP_TEST_SEED`, else from the clock.
    #[must_use]
    pub fn seed_from_env() -> u64 {
        std::env::var("ACP_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                u64::try_from(nanos % u128::from(u64::MAX)).unwrap() | 1
            })
    }
}

/// A small xorshift generator, so a seed replays the same kill points.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One step's figures.
#[derive(Debug, Clone)]
pub struct Row {
    pub step: usize,
    pub accepted: usize,
    /// Accepted ids whose inbox file was there once their step drained.
    pub delivered: usize,
    pub duplicates: usize,
    pub losses: usize,
    pub kills: usize,
    pub backup_kind: &'static str,
    /// What the step's backup added to the repository.
    pub backup_stored_bytes: u64,
    pub backup_ms: u64,
    pub measured: Measured,
    /// Wall time of the step, sends to row.
    pub elapsed: Duration,
}

/// What is measured once a step drained.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Rows in the store's `messages` table after retention.
    pub stored_messages: u64,
    /// The store file plus its WAL.
    pub store_bytes: u64,
    pub repository_bytes: u64,
    pub page_p50: Duration,
    pub page_max: Duration,
    pub status_p50: Duration,
    pub status_max: Duration,
    /// `VmRSS`, `RssAnon` (what is not the store's file pages) and `VmHWM`
    /// of `acp run`, in bytes.
    pub rss: u64,
    pub rss_anon: u64,
    pub rss_peak: u64,
}

/// The whole run.
#[derive(Debug)]
pub struct Outcome {
    pub rows: Vec<Row>,
    pub accepted: usize,
    pub duplicates: usize,
    pub losses: usize,
    pub kills: usize,
    /// Messages retention removed over the run, from `acp store prune`.
    pub pruned: u64,
    pub backups: usize,
    pub elapsed: Duration,
}

/// The header of the table [`Row::markdown`] prints.
pub const HEADER: &str = "| step | accepted | delivered | duplicates | losses | kills | messages in store | store (MB) | repository (MB) | backup: kind, stored (KB), time (ms) | page TTFB p50 / max (ms) | `acp status` p50 / max (ms) | `acp run` RSS / anon / peak (MB) | step time (s) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|";

fn mb(b: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a size for a table")]
    let m = b as f64 / 1_048_576.0;
    format!("{m:.1}")
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

impl Row {
    /// The row in markdown, under [`HEADER`].
    #[must_use]
    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}, {}, {} | {} / {} | {} / {} | {} / {} / {} | {:.1} |",
            self.step,
            self.accepted,
            self.delivered,
            self.duplicates,
            self.losses,
            self.kills,
            self.measured.stored_messages,
            mb(self.measured.store_bytes),
            mb(self.measured.repository_bytes),
            self.backup_kind,
            self.backup_stored_bytes / 1024,
            self.backup_ms,
            ms(self.measured.page_p50),
            ms(self.measured.page_max),
            ms(self.measured.status_p50),
            ms(self.measured.status_max),
            mb(self.measured.rss),
            mb(self.measured.rss_anon),
            mb(self.measured.rss_peak),
            self.elapsed.as_secs_f64(),
        )
    }
}

/// A running `acp run` and the log it writes.
struct Service {
    child: Child,
    log: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The soak's root, its `acp` binary and its running service.
struct Soak<'a> {
    root: &'a Path,
    acp: &'a Path,
    service: Option<Service>,
    starts: usize,
}

/// Waits for `f` with a deadline; false if the deadline passed.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            return false;
        }
        // Polling interval: `f` is the evidence, `limit` the deadline.
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

impl Soak<'_> {
    fn acp(&self) -> Command {
        let mut cmd = Command::new(self.acp);
        cmd.arg("--root").arg(self.root);
        for (key, _) in std::env::vars() {
            if key.starts_with("ACP_") || key.starts_with("DISCORD_") {
                cmd.env_remove(key);
            }
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `acp ARGS`, which must succeed; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self.acp().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "acp {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.run(&all)).unwrap()
    }

    /// Starts `acp run`; ready when it holds the service lock.
    fn start(&mut self) {
        self.starts += 1;
        let log = self.root.join(format!("service-{}.log", self.starts));
        let child = self
            .acp()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.service = Some(Service { child, log });
        assert!(
            wait_for(Duration::from_secs(30), || acp::app::ServiceLock::is_held(
                self.root
            )),
            "acp run did not start"
        );
    }

    /// SIGKILL, no warning.
    fn kill(&mut self) {
        let mut service = self.service.take().unwrap();
        service.child.kill().unwrap();
        service.child.wait().unwrap();
    }

    /// The status page's address, from the running service's log.
    fn address(&self) -> String {
        let log = &self.service.as_ref().unwrap().log;
        let mut base = String::new();
        let found = wait_for(Duration::from_secs(30), || {
            let text = fs::read_to_string(log).unwrap_or_default();
            if let Some(at) = text.find("(/metrics) at http://") {
                let rest = &text[at + "(/metrics) at http://".len()..];
                let end = rest.find(['/', ' ', '\n']).unwrap_or(rest.len());
                rest[..end].clone_into(&mut base);
            }
            !base.is_empty()
        });
        assert!(found, "acp run never logged its HTTP address");
        base
    }

    /// `VmRSS`, `RssAnon` and `VmHWM` of `acp run`, in bytes.
    fn rss(&self) -> (u64, u64, u64) {
        let pid = self.service.as_ref().unwrap().child.id();
        let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (field("VmRSS:"), field("RssAnon:"), field("VmHWM:"))
    }

    fn inbox(&self, agent: u32) -> PathBuf {
        self.root
            .join("agent_workspaces")
            .join(format!("Agent-{agent}"))
            .join("inbox")
    }

    /// Inbox files over all agents of messages made at or after `since`
    /// (a file name begins with its message's time, so this reads only
    /// names). Retention (also `acp run`'s at each start) takes older
    /// messages' files, never these: a step counts its own.
    fn files_since(&self, agents: u32, since: &str) -> usize {
        (1..=agents)
            .map(|a| {
                fs::read_dir(self.inbox(a)).map_or(0, |d| {
                    d.filter_map(Result::ok)
                        .filter(|e| {
                            let name = e.file_name();
                            let name = name.to_string_lossy();
                            !name.starts_with('.') && *name >= *since
                        })
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                        .count()
                })
            })
            .sum()
    }

    /// Message id -> inbox files carrying it, per agent (file names end
    /// `_ID.md`).
    fn inbox_ids(&self, agents: u32) -> Vec<HashMap<String, usize>> {
        (1..=agents)
            .map(|a| {
                let mut ids = HashMap::new();
                if let Ok(dir) = fs::read_dir(self.inbox(a)) {
                    for e in dir.filter_map(Result::ok) {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_file()) {
                            continue;
                        }
                        let id = name.trim_end_matches(".md").rsplit('_').next().unwrap();
                        *ids.entry(id.to_owned()).or_default() += 1;
                    }
                }
                ids
            })
            .collect()
    }

    /// Sets `[store] keep_days` in the config (each `acp` run reads it).
    fn set_keep_days(&self, days: f64) {
        let path = self.root.join("config/acp.toml");
        let text = fs::read_to_string(&path).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("keep_days =") {
                    format!("keep_days = {days:.9}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(&path, text).unwrap();
    }
}

/// Time to the first byte of `GET /` on the status page.
fn page_ttfb(address: &str) -> Duration {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let start = Instant::now();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).unwrap();
    let ttfb = start.elapsed();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    let head = String::from_utf8_lossy(&rest[..rest.len().min(20)]).into_owned();
    assert!(
        head.starts_with("TTP/1.1 200"),
        "GET / answered {}{head}",
        char::from(first[0])
    );
    ttfb
}

fn p50_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

fn request(i: usize, agents: u32) -> (u32, SendRequest) {
    let agent = u32::try_from(i % agents as usize).unwrap() + 1;
    let (kind, from) = if i.is_multiple_of(3) {
        (Kind::Human, "soak-human".to_owned())
    } else {
        (
            Kind::AgentToAgent,
            format!("Agent-{}", (agent % agents) + 1),
        )
    };
    let priority = match i % 50 {
        0 => Priority::Critical,
        1..=4 => Priority::Urgent,
        _ => Priority::Normal,
    };
    let req = SendRequest {
        draft: Draft {
            from,
            to: Recipient::Agent(format!("Agent-{agent}").parse().unwrap()),
            kind,
            priority,
            body: format!(
                "soak message {i}: rebase the feature branch on main, run the tests, \
                 fix what fails and report back with the commit id and anything left open"
            ),
            tags: vec!["soak".into()],
            reply_to: None,
        },
        via: Via::Auto,
    };
    (agent, req)
}

/// Stores messages `range` from `senders` tasks; each accepted id is
/// recorded once `App::send` returned it (durable).
async fn send_batch(
    app: Arc<App>,
    range: std::ops::Range<usize>,
    senders: usize,
    agents: u32,
    accepted: Arc<Mutex<Vec<(u32, String)>>>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..senders {
        let (app, accepted, range) = (Arc::clone(&app), Arc::clone(&accepted), range.clone());
        tasks.spawn(async move {
            for i in range.skip(t).step_by(senders) {
                let (agent, req) = request(i, agents);
                let message = app.send(req).await.unwrap();
                accepted
                    .lock()
                    .unwrap()
                    .push((agent, message.id.to_string()));
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// Now, as an inbox file's name begins: retention takes inbox files with
/// their messages, so each step counts the files of the messages it sent,
/// those named from its start on.
fn file_time_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S%.3fZ")
        .to_string()
}

/// Kills `acp run` `kills` times during the step that began at `since`
/// (as [`Soak::files_since`] reads it), each after a random number of
/// further inbox files (at most `spread`), and starts it again.
fn kill_during(
    soak: &mut Soak<'_>,
    rng: &mut Rng,
    (kills, spread): (usize, usize),
    agents: u32,
    since: &str,
) {
    for _ in 0..kills {
        let target = soak.files_since(agents, since)
            + 1
            + usize::try_from(rng.below(spread as u64)).unwrap();
        assert!(
            wait_for(Duration::from_secs(300), || soak.files_since(agents, since)
                >= target),
            "deliveries stopped before the kill point ({target} inbox files)"
        );
        soak.kill();
        soak.start();
    }
}

/// Counts what arrived: (delivered, duplicates, losses).
/// Losses and duplicates so far.
#[derive(Default)]
struct Tally {
    /// Accepted ids checked (the first ones of the accepted list).
    checked: usize,
    delivered: usize,
    losses: usize,
    /// Every id seen with two files.
    duplicated: HashSet<String>,
}

impl Tally {
    /// Drains the step, then checks the ids accepted since the last step.
    fn step(&mut self, soak: &Soak<'_>, params: &Params, sent: &[(u32, String)], since: &str) {
        let new = &sent[self.checked..];
        drain(soak, params.agents, new, since, params.drain_limit);
        let ids = soak.inbox_ids(params.agents);
        for (agent, id) in new {
            if ids[*agent as usize - 1].contains_key(id) {
                self.delivered += 1;
            } else {
                self.losses += 1;
            }
        }
        self.duplicated.extend(
            ids.iter()
                .flat_map(HashMap::iter)
                .filter(|(_, n)| **n > 1)
                .map(|(id, _)| id.clone()),
        );
        self.checked = sent.len();
    }
}

/// Waits until every id `new` this step (begun at `since`) has its file
/// and nothing is queued or in flight, up to `limit`.
fn drain(soak: &Soak<'_>, agents: u32, new: &[(u32, String)], since: &str, limit: Duration) {
    let want: Vec<HashSet<&str>> = (1..=agents)
        .map(|a| {
            new.iter()
                .filter(|(x, _)| *x == a)
                .map(|(_, id)| id.as_str())
                .collect()
        })
        .collect();
    wait_for(limit, || {
        soak.files_since(agents, since) >= new.len() && {
            let ids = soak.inbox_ids(agents);
            want.iter()
                .zip(&ids)
                .all(|(w, have)| w.iter().all(|id| have.contains_key(*id)))
        }
    });
    wait_for(limit, || {
        let s = soak.json(&["status"]);
        ["queued", "delivering"].iter().all(|state| {
            s["queue"][state]
                .as_object()
                .is_none_or(|m| m.values().all(|v| v.as_u64() == Some(0)))
        })
    });
}

/// The store, the repository, the page, `acp status` and `acp run`'s memory.
fn measure(soak: &Soak<'_>, samples: usize) -> Measured {
    let stats = soak.json(&["store", "stats"]);
    let stored_messages = stats["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "messages")
        .and_then(|t| t["rows"].as_u64())
        .unwrap_or(0);
    let address = soak.address();
    let pages = (0..samples).map(|_| page_ttfb(&address)).collect();
    let statuses = (0..samples)
        .map(|_| {
            let t = Instant::now();
            soak.run(&["status"]);
            t.elapsed()
        })
        .collect();
    let (page_p50, page_max) = p50_max(pages);
    let (status_p50, status_max) = p50_max(statuses);
    let (rss, rss_anon, rss_peak) = soak.rss();
    Measured {
        stored_messages,
        store_bytes: stats["file"]["bytes"].as_u64().unwrap_or(0)
            + stats["wal_bytes"].as_u64().unwrap_or(0),
        repository_bytes: tree_bytes(&soak.root.join("backups")),
        page_p50,
        page_max,
        status_p50,
        status_max,
        rss,
        rss_anon,
        rss_peak,
    }
}

/// The run's totals and where the store's bytes are.
fn summarize(soak: &Soak<'_>, params: &Params, outcome: &Outcome, out: &mut dyn Write) {
    let mut summary = String::new();
    let _ = write!(
        summary,
        "\n{} messages to {} agents in {} steps, {} SIGKILLs of `acp run`, {} backups, {} messages removed by `acp store prune` (more by `acp run` at each start), seed {} (replay with ACP_TEST_SEED={}), {:.0} s",
        outcome.accepted,
        params.agents,
        params.steps,
        outcome.kills,
        outcome.backups,
        outcome.pruned,
        params.seed,
        params.seed,
        outcome.elapsed.as_secs_f64()
    );
    writeln!(out, "{summary}").unwrap();
    // Where the store's bytes are at the end: the largest tables.
    let stats = soak.json(&["store", "stats"]);
    let mut tables = String::from("\nLargest tables at the end:");
    for t in stats["tables"].as_array().unwrap().iter().take(6) {
        let _ = write!(
            tables,
            " {} {} rows {} MB;",
            t["name"].as_str().unwrap_or("?"),
            t["rows"],
            mb(t["bytes"].as_u64().unwrap_or(0))
        );
    }
    let _ = write!(
        tables,
        " free {} MB",
        mb(stats["file"]["free_bytes"].as_u64().unwrap_or(0))
    );
    writeln!(out, "{tables}").unwrap();
}

/// Runs the soak on a fresh root in a temporary directory with the `acp`
/// binary `acp_bin`, printing the table to `out` as it goes.
///
/// # Panics
/// When a part of the run fails outright (`acp` exits non-zero, `acp run`
/// stops delivering); losses and duplicates are counted, not panicked on.
pub fn run(params: &Params, acp_bin: &Path, out: &mut dyn Write) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    acp::app::init(dir.path(), params.agents).unwrap();
    let mut soak = Soak {
        root: dir.path(),
        acp: acp_bin,
        service: None,
        starts: 0,
    };
    // Tests and benches may run beside another service: any free port.
    let config = dir.path().join("config/acp.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replacen("bind = \"127.0.0.1:7420\"", "bind = \"127.0.0.1:0\"", 1),
    )
    .unwrap();
    let app = Arc::new(App::open(Config::load(dir.path(), &Env::new()).unwrap()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = Rng(params.seed | 1);
    let accepted: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let started = Instant::now();
    let mut step_starts = Vec::new();
    let mut tally = Tally::default();
    let mut outcome = Outcome {
        rows: Vec::new(),
        accepted: 0,
        duplicates: 0,
        losses: 0,
        kills: 0,
        pruned: 0,
        backups: 0,
        elapsed: Duration::ZERO,
    };
    writeln!(out, "{HEADER}").unwrap();
    soak.start();
    for step in 0..params.steps {
        let step_start = Instant::now();
        step_starts.push(step_start);
        let since = file_time_now();
        let range =
            params.messages * step / params.steps..params.messages * (step + 1) / params.steps;
        let kills = params.kills * (step + 1) / params.steps - params.kills * step / params.steps;
        let spread = range.len() / (kills + 1);
        let senders = runtime.spawn(send_batch(
            Arc::clone(&app),
            range,
            params.senders,
            params.agents,
            Arc::clone(&accepted),
        ));
        kill_during(&mut soak, &mut rng, (kills, spread), params.agents, &since);
        outcome.kills += kills;
        runtime.block_on(senders).unwrap();
        let sent = accepted.lock().unwrap().clone();
        tally.step(&soak, params, &sent, &since);

        // Retention keeps the last `keep_steps` steps.
        if step + 1 >= params.keep_steps {
            let oldest_kept = step_starts[step + 1 - params.keep_steps];
            soak.set_keep_days(oldest_kept.elapsed().as_secs_f64() / 86_400.0);
            let pruned = soak.json(&["store", "prune"]);
            outcome.pruned += pruned["removed"]["messages"].as_u64().unwrap_or(0);
        }
        let kind = if step % params.full_every.max(1) == 0 {
            "full"
        } else {
            "incremental"
        };
        let backup_start = Instant::now();
        let backup = soak.json(&["backup", "create", "--kind", kind, "--progress", "none"]);
        let backup_ms = u64::try_from(backup_start.elapsed().as_millis()).unwrap();
        outcome.backups += 1;

        let row = Row {
            step: step + 1,
            accepted: sent.len(),
            delivered: tally.delivered,
            duplicates: tally.duplicated.len(),
            losses: tally.losses,
            kills: outcome.kills,
            backup_kind: kind,
            backup_stored_bytes: backup["backup"]["stats"]["stored_bytes"]
                .as_u64()
                .unwrap_or(0),
            backup_ms,
            measured: measure(&soak, params.samples),
            elapsed: step_start.elapsed(),
        };
        writeln!(out, "{}", row.markdown()).unwrap();
        out.flush().unwrap();
        outcome.rows.push(row);
    }
    let last = outcome.rows.last().unwrap();
    outcome.accepted = last.accepted;
    outcome.duplicates = last.duplicates;
    outcome.losses = last.losses;
    outcome.elapsed = started.elapsed();
    summarize(&soak, params, &outcome, out);
    drop(soak);
    outcome
}

/// Bytes of the files under `dir` (what `du --apparent-size` counts).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
