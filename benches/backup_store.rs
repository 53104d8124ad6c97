// Over 400 lines: the store, its traffic, the run of each tool and the chunk-size table are one
// measurement.

//! The store case: a store of about 120 MB in acp's own schema (made by
//! `acp init` and the store's migrations, then filled with messages,
//! deliveries, attempts and activity rows shaped as acp writes them), and
//! two hours of traffic: 200 messages an hour, each in the three
//! transactions acp makes (accept, claim, delivered); the second hour also
//! deletes the 200 oldest messages with their rows, as retention does,
//! so freed pages are reused across the file. After each hour, an
//! incremental backup: what it stores, as a share of the store.
//!
//! Then the chunk sizes against each other on the same captured stores:
//! the bytes each choice would store per hour (zstd level 3, 40-byte seal
//! per chunk) plus the manifest's list of chunk hashes.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use acp::backup::{self, Catalog, Kind, Quiet, Repo};
use acp::config::{Config, Env};
use rusqlite::{Connection, params};

use crate::{MIB, Tool, du, restic, run, settle, timed};

/// Messages an hour: "a few thousand a day", busy.
const HOUR: usize = 200;
const AGENTS: usize = 8;
const WORDS: [&str; 20] = [
    "agent", "message", "deliver", "inbox", "the", "swarm", "commit", "test", "build", "fix",
    "review", "merge", "branch", "error", "ok", "done", "pending", "please", "check", "file",
];

/// A seeded generator, so every tool sees the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
    fn body(&mut self) -> String {
        let n = 30 + self.below(270);
        (0..n)
            .map(|_| WORDS[self.below(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }
    fn id(&mut self, ms: u64) -> String {
        ulid::Ulid::from_parts(ms, u128::from(self.next())).to_string()
    }
}

/// The traffic so far: the clock, the generator, the next row ids.
struct Traffic {
    rng: Rng,
    ms: u64,
    delivery: i64,
    attempt: i64,
}

impl Traffic {
    fn new(db: &Connection) -> Self {
        let max = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        let newest = max("SELECT coalesce(max(created_at), 1780000000000) FROM messages");
        Self {
            rng: Rng(0x5eed),
            // Time goes on from the newest message, as it does.
            ms: u64::try_from(newest).unwrap(),
            delivery: max("SELECT coalesce(max(id), 0) FROM deliveries"),
            attempt: max("SELECT coalesce(max(id), 0) FROM attempts"),
        }
    }

    /// One message as acp writes it: accepted (message, its deliveries, a
    /// `sent` activity row), claimed, and delivered (an attempt, the
    /// delivery's final state, a `delivered` activity row). `one_tx` puts
    /// it all in one transaction (the fill), else three (live traffic).
    fn message(&mut self, db: &Connection, one_tx: bool) {
        self.ms += 5_000 + self.rng.next() % 30_000;
        let ms = self.ms;
        let id = self.rng.id(ms);
        let body = self.rng.body();
        let broadcast = self.rng.below(10) == 0;
        let to = if broadcast {
            "broadcast".to_owned()
        } else {
            format!("Agent-{}", 1 + self.rng.below(AGENTS))
        };
        let agents: Vec<String> = if broadcast {
            (1..=AGENTS).map(|a| format!("Agent-{a}")).collect()
        } else {
            vec![to.clone()]
        };
        let ms = i64::try_from(ms).unwrap();
        let tx = |sql: &str| {
            if !one_tx {
                db.execute_batch(sql).unwrap();
            }
        };
        tx("BEGIN IMMEDIATE");
        db.execute(
            "INSERT INTO messages (id, sender, recipient, kind, priority, body, tags, created_at, \
             reply_to, via) VALUES (?1, ?2, ?3, 'agent_to_agent', 0, ?4, '[]', ?5, NULL, 'auto')",
            params![
                id,
                format!("Agent-{}", 1 + self.rng.below(AGENTS)),
                to,
                body,
                ms
            ],
        )
        .unwrap();
        let first = self.delivery + 1;
        for agent in &agents {
            self.delivery += 1;
            db.execute(
                "INSERT INTO deliveries (id, message_id, agent, priority, state, attempts, \
                 next_attempt_at, updated_at) VALUES (?1, ?2, ?3, 0, 'queued', 0, ?4, ?4)",
                params![self.delivery, id, agent, ms],
            )
            .unwrap();
        }
        let preview: String = body.chars().take(80).collect();
        db.execute(
            "INSERT INTO activity (at, event, data) VALUES (?1, 'sent', ?2)",
            params![
                ms,
                format!(
                    r#"{{"event":"sent","message_id":"{id}","to":"{to}","preview":"{preview}"}}"#
                )
            ],
        )
        .unwrap();
        tx("COMMIT");
        tx("BEGIN IMMEDIATE");
        db.execute(
            "UPDATE deliveries SET state = 'delivering', claimed_by = 'dispatcher-1' WHERE id >= ?1",
            params![first],
        )
        .unwrap();
        tx("COMMIT");
        tx("BEGIN IMMEDIATE");
        for (i, agent) in agents.iter().enumerate() {
            let delivery = first + i64::try_from(i).unwrap();
            self.attempt += 1;
            let path = format!("/home/me/swarm/agent_workspaces/{agent}/inbox/{id}.md");
            db.execute(
                "INSERT INTO attempts (id, delivery_id, attempt, method, started_at, finished_at, \
                 outcome) VALUES (?1, ?2, 1, 'inbox', ?3, ?3, 'ok')",
                params![self.attempt, delivery, ms + 3],
            )
            .unwrap();
            db.execute(
                "UPDATE deliveries SET state = 'delivered', attempts = 1, method = 'inbox', \
                 detail = ?1, claimed_by = NULL, updated_at = ?2 WHERE id = ?3",
                params![path, ms + 3, delivery],
            )
            .unwrap();
            db.execute(
                "INSERT INTO activity (at, event, data) VALUES (?1, 'delivered', ?2)",
                params![
                    ms + 3,
                    format!(
                        r#"{{"event":"delivered","message_id":"{id}","to":"{agent}","method":"inbox","detail":"{path}"}}"#
                    )
                ],
            )
            .unwrap();
        }
        tx("COMMIT");
    }

    /// Deletes the `n` oldest messages with their rows, 50 at a time.
    fn retire(db: &Connection, n: usize) {
        for _ in 0..n / 50 {
            db.execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TEMP TABLE IF NOT EXISTS gone (id TEXT PRIMARY KEY);
                 DELETE FROM gone;
                 INSERT INTO gone SELECT id FROM messages ORDER BY id LIMIT 50;
                 DELETE FROM attempts WHERE delivery_id IN
                   (SELECT id FROM deliveries WHERE message_id IN (SELECT id FROM gone));
                 DELETE FROM deliveries WHERE message_id IN (SELECT id FROM gone);
                 DELETE FROM messages WHERE id IN (SELECT id FROM gone);
                 DELETE FROM activity WHERE seq IN (SELECT seq FROM activity ORDER BY seq LIMIT 150);
                 COMMIT;",
            )
            .unwrap();
        }
    }
}

/// A store of about `mb` MB in acp's schema; returns its path.
fn template(scratch: &Path, mb: u64) -> PathBuf {
    let root = scratch.join("store-template");
    acp::app::init(&root, u32::try_from(AGENTS).unwrap()).unwrap();
    drop(acp::app::App::open(Config::load(&root, &Env::new()).unwrap()).unwrap());
    let path = root.join("data/acp.db");
    let db = Connection::open(&path).unwrap();
    let mut traffic = Traffic::new(&db);
    loop {
        db.execute_batch("BEGIN").unwrap();
        for _ in 0..2000 {
            traffic.message(&db, true);
        }
        db.execute_batch("COMMIT").unwrap();
        let pages: i64 = db.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        if u64::try_from(pages).unwrap() * 4096 >= mb * 1_000_000 {
            break;
        }
    }
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    drop(db);
    path
}

/// A consistent copy of the live store, through SQLite's online backup
/// API (what restic is given: it cannot read a store under a writer).
fn capture(db: &Path, to: &Path) {
    let src = Connection::open(db).unwrap();
    let mut dst = Connection::open(to).unwrap();
    let backup = rusqlite::backup::Backup::new(&src, &mut dst).unwrap();
    while backup.step(-1).unwrap() != rusqlite::backup::StepResult::Done {}
}

/// One tool's run over the store.
struct StoreRow {
    tool: &'static str,
    full: Duration,
    after_full: u64,
    /// Per hour: the incremental's time and the repository's growth.
    hours: Vec<(Duration, u64)>,
    restore: Duration,
}

/// The store after each step, for the chunk-size table.
struct Captured {
    store_bytes: Vec<u64>,
    files: Vec<PathBuf>,
}

fn round(
    tool: Tool,
    template: &Path,
    scratch: &Path,
    key: &str,
    keep: bool,
) -> (StoreRow, Captured) {
    let root = scratch.join(format!(
        "store-{}",
        tool.name().replace([' ', '(', ')'], "")
    ));
    let _ = fs::remove_dir_all(&root);
    acp::app::init(&root, u32::try_from(AGENTS).unwrap()).unwrap();
    let db = root.join("data/acp.db");
    fs::copy(template, &db).unwrap();
    let repo_dir = root.join("repo");
    let mut env = Env::new();
    env.insert(
        "ACP_BACKUP_REPOSITORY".into(),
        repo_dir.display().to_string(),
    );
    if matches!(tool, Tool::AcpEncrypted) {
        env.insert("ACP_BACKUP_KEY".into(), key.into());
    }
    let config = Config::load(&root, &env).unwrap();
    let scope = acp::app::backup_scope(&config);
    let copy_dir = root.join("capture");
    fs::create_dir_all(&copy_dir).unwrap();
    let mut captured = Captured {
        store_bytes: Vec::new(),
        files: Vec::new(),
    };
    let step = |kind: Kind, captured: &mut Captured| {
        let n = captured.files.len();
        if keep {
            let file = root.join(format!("step-{n}.db"));
            capture(&db, &file);
            captured
                .store_bytes
                .push(fs::metadata(&file).unwrap().len());
            captured.files.push(file);
        } else {
            captured.store_bytes.push(fs::metadata(&db).unwrap().len());
            captured.files.push(PathBuf::new());
        }
        settle();
        timed(|| match tool {
            Tool::Restic => {
                capture(&db, &copy_dir.join("acp.db"));
                run(restic(&repo_dir).arg("backup").arg(&copy_dir));
            }
            Tool::Acp | Tool::AcpEncrypted => {
                backup::create(&scope, kind, &Quiet).unwrap();
            }
        })
    };
    if matches!(tool, Tool::Restic) {
        run(restic(&repo_dir).arg("init"));
    }
    let full = step(Kind::Full, &mut captured);
    let after_full = du(&repo_dir);
    let mut hours = Vec::new();
    for retention in [false, true] {
        let conn = Connection::open(&db).unwrap();
        let mut traffic = Traffic::new(&conn);
        traffic.ms += if retention { 3_600_000 } else { 0 };
        traffic.rng.0 ^= u64::from(retention) + 1;
        if retention {
            Traffic::retire(&conn, HOUR);
        }
        for _ in 0..HOUR {
            traffic.message(&conn, false);
        }
        drop(conn);
        let before = du(&repo_dir);
        let elapsed = step(Kind::Incremental, &mut captured);
        hours.push((elapsed, du(&repo_dir) - before));
    }
    settle();
    let dest = root.join("restored");
    let restore = timed(|| match tool {
        Tool::Restic => run(restic(&repo_dir)
            .args(["restore", "latest", "--target"])
            .arg(&dest)),
        Tool::Acp | Tool::AcpEncrypted => {
            let repo = Repo::open(&config.backup).unwrap();
            let catalog = Catalog::read(&repo).unwrap();
            backup::restore_to(&repo, &catalog, "latest", &dest, false, &Quiet).unwrap();
        }
    });
    let _ = fs::remove_dir_all(&dest);
    let _ = fs::remove_dir_all(&repo_dir);
    let _ = fs::remove_dir_all(repo_dir.with_extension("cache"));
    (
        StoreRow {
            tool: tool.name(),
            full,
            after_full,
            hours,
            restore,
        },
        captured,
    )
}

/// What each chunk size would store for the hours, from the captures.
fn chunk_table(captured: &Captured) {
    let sizes: [(usize, usize, usize); 6] = [
        (2 << 10, 4 << 10, 16 << 10),
        (4 << 10, 16 << 10, 64 << 10),
        (16 << 10, 32 << 10, 128 << 10),
        (16 << 10, 64 << 10, 256 << 10),
        (64 << 10, 128 << 10, 512 << 10),
        (256 << 10, 1 << 20, 4 << 20),
    ];
    let stores: Vec<Vec<u8>> = captured.files[..3]
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();
    println!(
        "| chunks min/avg/max | chunks in the store | hour 1: new data | + chunk list | % of store | hour 2 (with deletes): new data | + chunk list | % of store |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut zstd = zstd::bulk::Compressor::new(3).unwrap();
    for (min, avg, max) in sizes {
        let cut = |data: &[u8]| -> Vec<(usize, usize)> {
            fastcdc::v2020::FastCDC::new(data, min, avg, max)
                .map(|c| (c.offset, c.length))
                .collect()
        };
        let mut cells = Vec::new();
        let mut count = 0;
        for hour in 0..2 {
            let (old, new) = (&stores[hour], &stores[hour + 1]);
            let have: HashSet<blake3::Hash> = cut(old)
                .into_iter()
                .map(|(o, l)| blake3::hash(&old[o..o + l]))
                .collect();
            let chunks = cut(new);
            count = chunks.len();
            let data: usize = chunks
                .iter()
                .filter(|(o, l)| !have.contains(&blake3::hash(&new[*o..*o + *l])))
                .map(|(o, l)| zstd.compress(&new[*o..*o + *l]).unwrap().len() + 40)
                .sum();
            // A hash in the manifest: 64 hex digits, quotes, comma and
            // indentation, as serde_json's pretty printer writes them.
            let list = chunks.len() * 80;
            cells.push(format!(
                "{:.0} KiB | {:.0} KiB | {:.2}%",
                data as f64 / 1024.0,
                list as f64 / 1024.0,
                100.0 * (data + list) as f64 / new.len() as f64
            ));
        }
        println!(
            "| {}/{}/{} KiB | {count} | {} | {} |",
            min >> 10,
            avg >> 10,
            max >> 10,
            cells[0],
            cells[1]
        );
    }
}

/// Runs the store case and prints its tables.
pub fn run_all(scratch: &Path, key: &str) {
    let mb: u64 = std::env::var("ACP_BENCH_STORE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let template = template(scratch, mb);
    let messages: i64 = Connection::open(&template)
        .unwrap()
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    let mut rows = Vec::new();
    let mut captured = None;
    for tool in [Tool::Restic, Tool::Acp, Tool::AcpEncrypted] {
        let (row, c) = round(tool, &template, scratch, key, matches!(tool, Tool::Acp));
        if matches!(tool, Tool::Acp) {
            captured = Some(c);
        }
        rows.push(row);
    }
    let captured = captured.unwrap();
    let store = |i: usize| captured.store_bytes[i] as f64;
    println!(
        "Store: {:.1} MB in acp's schema ({messages} messages); an hour = {HOUR} messages, each in \
         the three transactions acp writes; hour 2 also deletes the {HOUR} oldest messages and \
         their rows (as retention does). \"stored\" = the repository's growth (packs and \
         manifest; restic: packs, index and snapshot). restic backs up a copy taken through \
         SQLite's backup API, and its times include taking that copy.\n",
        store(0) / 1e6
    );
    println!(
        "| tool | full | repository | hour 1: incremental | stored | % of store | hour 2: incremental | stored | % of store | restore |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let hour = |h: usize| {
            let (elapsed, grew) = r.hours[h];
            format!(
                "{:.2} s | {:.0} KiB | {:.2}%",
                elapsed.as_secs_f64(),
                grew as f64 / 1024.0,
                100.0 * grew as f64 / store(h + 1)
            )
        };
        println!(
            "| {} | {:.2} s | {:.1} MiB | {} | {} | {:.2} s |",
            r.tool,
            r.full.as_secs_f64(),
            r.after_full as f64 / MIB,
            hour(0),
            hour(1),
            r.restore.as_secs_f64()
        );
    }
    println!("\nChunk sizes on the same stores (acp's choice: 16/64/256 KiB):\n");
    chunk_table(&captured);
}
