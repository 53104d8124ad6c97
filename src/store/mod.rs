//! The durable store: one SQLite file (`data/acp.db`) in WAL mode, shared by
//! the service and every CLI process.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions with `synchronous = FULL`, so
//! a message is on disk before anyone is told it was accepted. One `impl`
//! block per table family: [`queue`] (messages, deliveries, attempts),
//! [`views`] (status, inbox listings, acks), [`roles`] (role assignments,
//! captain, audit log), [`discord`] (the outbox's receipts, threads and
//! posts), [`devlogs`] (the devlog ledger), [`hooks`] (inbound webhooks'
//! delivery ids and recent bodies), [`cluster`] (work handed between
//! machines, and their heartbeats), [`attention`] (agents' states, prompts
//! and their decisions), [`waiting`] (a waiting prompt's one reminder, and
//! prompts' times for the metrics), [`relay`] (those states, prompts and
//! decisions carried between machines), [`retry`] (failed deliveries
//! queued again by a person), [`ids`] (ids given by a prefix),
//! [`feed`] (the activity feed, in commit order, that `acp watch`
//! follows), [`people`] (people's inboxes), [`spawned`] (agents acp
//! started), [`schedules`] (stored schedules and their firings), [`pulse`]
//! (agents' newest activity and the quiet spells nudged).

pub mod activity;
pub mod attention;
pub mod backups;
pub mod cluster;
pub mod devlogs;
pub mod discord;
pub mod feed;
pub mod hooks;
pub mod ids;
pub mod people;
pub mod pulse;
pub mod queue;
pub mod relay;
pub mod retention;
pub mod retry;
pub mod roles;
pub mod schedules;
pub mod spawned;
mod sql;
pub mod views;
pub mod waiting;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use queue::{Claimed, Outcome, OutcomeState, Submission, TriedMethod};
pub use views::{AckResult, DeliveryView, InboxEntry, Status};

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store {path} is gone but its write-ahead log is still there: it was deleted while \
         in use. Stop acp run, then restore it with `acp backup restore latest --in-place` \
         (starting an empty store would lose the log)"
    )]
    Orphaned { path: String },
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the store at {path} has schema version {found}, newer than this acp understands \
         ({known}): upgrade acp, or restore a backup made by this version"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the store operation was interrupted by shutdown")]
    Interrupted,
    #[error("the store holds a row this acp cannot read ({0}): run `acp doctor`")]
    Corrupt(String),
}

/// What an integrity check of a store file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Ok,
    /// SQLite's report of the damage (or that it is no database at all).
    Damaged(String),
    /// Another process holds it locked.
    Busy(String),
    /// It cannot be opened or read (permissions, I/O).
    Unreadable(String),
}

/// Versioned migrations; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the message queue, acks, roles and the audit log.
    r"
    CREATE TABLE messages (
        id          TEXT PRIMARY KEY,
        sender      TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        body        TEXT NOT NULL,
        tags        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        reply_to    TEXT,
        via         TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        id              INTEGER PRIMARY KEY,
        message_id      TEXT NOT NULL REFERENCES messages(id),
        agent           TEXT NOT NULL,
        priority        INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('queued','delivering','delivered','failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        claimed_by      TEXT,
        method          TEXT,
        detail          TEXT,
        updated_at      INTEGER NOT NULL,
        UNIQUE (message_id, agent)
    );
    CREATE INDEX deliveries_ready ON deliveries (state, priority DESC, message_id);
    CREATE INDEX deliveries_agent ON deliveries (agent, message_id);
    CREATE TABLE attempts (
        id           INTEGER PRIMARY KEY,
        delivery_id  INTEGER NOT NULL REFERENCES deliveries(id),
        attempt      INTEGER NOT NULL,
        method       TEXT NOT NULL,
        started_at   INTEGER NOT NULL,
        finished_at  INTEGER NOT NULL,
        outcome      TEXT NOT NULL,
        error        TEXT
    );
    CREATE INDEX attempts_delivery ON attempts (delivery_id);
    CREATE TABLE acks (
        message_id  TEXT NOT NULL REFERENCES messages(id),
        agent       TEXT NOT NULL,
        acked_by    TEXT NOT NULL,
        acked_at    INTEGER NOT NULL,
        PRIMARY KEY (message_id, agent)
    ) WITHOUT ROWID;
    CREATE TABLE role_assignments (
        agent       TEXT PRIMARY KEY,
        role        TEXT NOT NULL,
        updated_by  TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE settings (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        updated_by  TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        id       INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        actor    TEXT NOT NULL,
        action   TEXT NOT NULL,
        target   TEXT,
        outcome  TEXT NOT NULL,
        detail   TEXT
    );
    ",
    // 2: the Discord outbox: receipts owed to commands, the agents'
    // threads, and each part posted (so a retry never posts it twice).
    r"
    CREATE TABLE discord_receipts (
        message_id      TEXT PRIMARY KEY REFERENCES messages(id),
        channel_id      INTEGER NOT NULL,
        application_id  INTEGER NOT NULL,
        token           TEXT NOT NULL,
        reply_id        INTEGER,
        followup        INTEGER NOT NULL,
        asked_at        INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('owed','late','done')),
        updated_at      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX discord_receipts_state ON discord_receipts (state);
    CREATE TABLE discord_threads (
        agent       TEXT PRIMARY KEY,
        channel_id  INTEGER NOT NULL,
        thread_id   INTEGER NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE discord_posts (
        message_id  TEXT NOT NULL REFERENCES messages(id),
        part        INTEGER NOT NULL,
        channel_id  INTEGER NOT NULL,
        discord_id  INTEGER NOT NULL,
        posted_at   INTEGER NOT NULL,
        PRIMARY KEY (message_id, part)
    ) WITHOUT ROWID;
    ",
    // 3: the devlog ledger: each content version of each agent's devlogs,
    // and the message that posted it (none: seen before watching began).
    r"
    CREATE TABLE devlogs (
        agent       TEXT NOT NULL,
        hash        TEXT NOT NULL,
        path        TEXT NOT NULL,
        message_id  TEXT REFERENCES messages(id),
        seen_at     INTEGER NOT NULL,
        PRIMARY KEY (agent, hash)
    ) WITHOUT ROWID;
    CREATE INDEX devlogs_path ON devlogs (path, seen_at);
    ",
    // 4: inbound webhooks' deliveries, so a redelivered event is handled
    // once.
    r"
    CREATE TABLE hook_deliveries (
        source       TEXT NOT NULL,
        delivery_id  TEXT NOT NULL,
        message_id   TEXT REFERENCES messages(id),
        received_at  INTEGER NOT NULL,
        PRIMARY KEY (source, delivery_id)
    ) WITHOUT ROWID;
    ",
    // 5: recent activity (the status page) reads deliveries by time.
    r"
    CREATE INDEX deliveries_updated ON deliveries (updated_at);
    ",
    // 6: several machines. Which machine delivered (or holds) a delivery;
    // on a node, the deliveries the hub handed over and whether their
    // outcome went back; on the hub, each machine's last heartbeat.
    r"
    ALTER TABLE deliveries ADD COLUMN node TEXT;
    CREATE TABLE cluster_inbound (
        message_id   TEXT NOT NULL REFERENCES messages(id),
        agent        TEXT NOT NULL,
        received_at  INTEGER NOT NULL,
        reported_at  INTEGER,
        PRIMARY KEY (message_id, agent)
    ) WITHOUT ROWID;
    CREATE INDEX cluster_inbound_unreported ON cluster_inbound (reported_at);
    CREATE TABLE cluster_nodes (
        node       TEXT PRIMARY KEY,
        last_seen  INTEGER NOT NULL,
        detail     TEXT NOT NULL
    ) WITHOUT ROWID;
    ",
    // 7: a hash of each body a webhook sent lately, so the same signed
    // body sent again under a new delivery id (a replay) is refused.
    r"
    CREATE TABLE hook_bodies (
        source       TEXT NOT NULL,
        body_hash    TEXT NOT NULL,
        message_id   TEXT REFERENCES messages(id),
        received_at  INTEGER NOT NULL,
        PRIMARY KEY (source, body_hash)
    ) WITHOUT ROWID;
    CREATE INDEX hook_bodies_received ON hook_bodies (received_at);
    ",
    // 8: what agents are doing and what they ask of a person: each agent's
    // state and its transitions, the prompts (permissions, questions) with
    // the one decision each gets and the one reminder that pings people
    // (the message, and whom it may ping), and when an agent took a
    // delivered message (its own hook saw it in a prompt).
    r"
    CREATE TABLE agent_states (
        agent     TEXT PRIMARY KEY,
        state     TEXT NOT NULL,
        since     INTEGER NOT NULL,
        evidence  TEXT NOT NULL,
        detail    TEXT
    ) WITHOUT ROWID;
    CREATE TABLE agent_transitions (
        id        INTEGER PRIMARY KEY,
        agent     TEXT NOT NULL,
        state     TEXT NOT NULL,
        at        INTEGER NOT NULL,
        evidence  TEXT NOT NULL,
        detail    TEXT
    );
    CREATE INDEX agent_transitions_agent ON agent_transitions (agent, at);
    CREATE TABLE state_posts (
        agent       TEXT PRIMARY KEY,
        message_id  TEXT NOT NULL REFERENCES messages(id),
        first_at    INTEGER NOT NULL,
        body        TEXT NOT NULL,
        edit_owed   INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE prompts (
        id               TEXT PRIMARY KEY,
        agent            TEXT NOT NULL,
        source           TEXT NOT NULL,
        tool             TEXT,
        summary          TEXT NOT NULL,
        detail           TEXT NOT NULL,
        allow_session    INTEGER NOT NULL,
        session          TEXT,
        created_at       INTEGER NOT NULL,
        post_id          TEXT REFERENCES messages(id),
        fingerprint      TEXT,
        choices          TEXT NOT NULL DEFAULT '[]',
        mentioned_at     INTEGER,
        answered         TEXT,
        mention_id       TEXT REFERENCES messages(id),
        mention_to       TEXT,
        decision         TEXT,
        reason           TEXT,
        decided_by       TEXT,
        decided_at       INTEGER,
        post_updated_at  INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX prompts_open ON prompts (decided_at, agent);
    CREATE INDEX prompts_post ON prompts (post_id);
    CREATE INDEX prompts_mention ON prompts (mention_id);
    ALTER TABLE deliveries ADD COLUMN seen_at INTEGER;
    ",
    // 9: agents' states and prompts between machines. On a node: whether
    // the hub has each state change, each prompt and what its agent got.
    // On the hub: the machine a prompt came from, whether that machine has
    // the hub's decision, and the node's own order of its state changes
    // (a late redelivery never undoes a newer one). What happened before
    // counts as told.
    r"
    ALTER TABLE prompts ADD COLUMN node TEXT;
    ALTER TABLE prompts ADD COLUMN reported_at INTEGER;
    ALTER TABLE prompts ADD COLUMN outcome_reported_at INTEGER;
    ALTER TABLE prompts ADD COLUMN decision_sent_at INTEGER;
    ALTER TABLE agent_transitions ADD COLUMN reported_at INTEGER;
    ALTER TABLE agent_transitions ADD COLUMN node_seq INTEGER;
    UPDATE prompts SET reported_at = created_at, outcome_reported_at = decided_at
        WHERE decided_at IS NOT NULL;
    UPDATE agent_transitions SET reported_at = at;
    CREATE INDEX prompts_unreported ON prompts (created_at)
        WHERE outcome_reported_at IS NULL AND node IS NULL;
    CREATE INDEX prompts_decisions_owed ON prompts (decided_at)
        WHERE node IS NOT NULL AND decision_sent_at IS NULL AND decided_at IS NOT NULL;
    CREATE INDEX agent_transitions_unreported ON agent_transitions (id)
        WHERE reported_at IS NULL;
    CREATE INDEX agent_transitions_node_seq ON agent_transitions (agent, node_seq)
        WHERE node_seq IS NOT NULL;
    ",
    // 10: failed deliveries queued again by a person (`acp retry`): the
    // attempts made before the last retry, so the retry budget and the
    // backoff count from it while the history keeps every attempt.
    r"
    ALTER TABLE deliveries ADD COLUMN retry_from INTEGER NOT NULL DEFAULT 0;
    ",
    // 11: the activity feed `acp watch` follows from any process: one row
    // per message stored, delivery outcome, ack, agent state and prompt,
    // numbered in commit order and never reused.
    r"
    CREATE TABLE activity (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        at     INTEGER NOT NULL,
        event  TEXT NOT NULL,
        data   TEXT NOT NULL
    );
    CREATE INDEX activity_at ON activity (at);
    ",
    // 12: agents acp started in a project (`acp spawn`): where each runs
    // and whether it still does. Numbers per project are never reused.
    r"
    CREATE TABLE spawned (
        id          TEXT PRIMARY KEY,
        project     TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        dir         TEXT NOT NULL,
        worktree    TEXT,
        branch      TEXT,
        target      TEXT NOT NULL,
        socket      TEXT,
        guard       TEXT NOT NULL,
        profile     TEXT,
        node        TEXT,
        state       TEXT NOT NULL CHECK (state IN ('starting','running','stopped')),
        task        TEXT,
        spawned_at  INTEGER NOT NULL,
        spawned_by  TEXT NOT NULL,
        stopped_at  INTEGER,
        stopped_by  TEXT,
        -- On the hub, for an agent another machine runs: when its start
        -- was handed to that machine, and why it could not start there.
        handed_at   INTEGER,
        error       TEXT,
        -- ...and when its stop was handed to that machine.
        stop_handed_at INTEGER
    );
    CREATE UNIQUE INDEX spawned_project_seq ON spawned (project, seq);
    CREATE INDEX spawned_to_hand ON spawned (spawned_at)
        WHERE state = 'starting' AND node IS NOT NULL AND handed_at IS NULL;
    CREATE INDEX spawned_stops_to_hand ON spawned (stopped_at)
        WHERE state = 'stopped' AND node IS NOT NULL AND stop_handed_at IS NULL
          AND error IS NULL;
    ",
    // 13: stored schedules (`acp schedule`) and each firing, one per
    // schedule and due time: the key decides that a firing happens once.
    r"
    CREATE TABLE schedules (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        cron        TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        body        TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        when_busy   TEXT NOT NULL CHECK (when_busy IN ('wait','skip','deliver')),
        catch_up    INTEGER NOT NULL,
        paused      INTEGER NOT NULL DEFAULT 0,
        created_by  TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        from_at     INTEGER NOT NULL
    );
    CREATE TABLE firings (
        schedule_id INTEGER NOT NULL,
        due         INTEGER NOT NULL,
        outcome     TEXT NOT NULL
            CHECK (outcome IN ('sent','caught_up','skipped','missed','failed')),
        message_id  TEXT,
        detail      TEXT,
        at          INTEGER NOT NULL,
        PRIMARY KEY (schedule_id, due)
    ) WITHOUT ROWID;
    ",
    // 14: how long a `wait` schedule waits for its busy agent to go idle
    // before the firing is skipped (seconds).
    r"
    ALTER TABLE schedules ADD COLUMN wait_secs INTEGER NOT NULL DEFAULT 600;
    ",
    // 15: retention. The devlog ledger keeps its hashes when the message
    // that posted a version is removed, so its message id no longer
    // refers to `messages` (rebuilt without the reference); webhook
    // records are found by message.
    r"
    CREATE TABLE devlogs_kept (
        agent       TEXT NOT NULL,
        hash        TEXT NOT NULL,
        path        TEXT NOT NULL,
        message_id  TEXT,
        seen_at     INTEGER NOT NULL,
        PRIMARY KEY (agent, hash)
    ) WITHOUT ROWID;
    INSERT INTO devlogs_kept SELECT agent, hash, path, message_id, seen_at FROM devlogs;
    DROP TABLE devlogs;
    ALTER TABLE devlogs_kept RENAME TO devlogs;
    CREATE INDEX devlogs_path ON devlogs (path, seen_at);
    CREATE INDEX hook_deliveries_message ON hook_deliveries (message_id)
        WHERE message_id IS NOT NULL;
    CREATE INDEX hook_bodies_message ON hook_bodies (message_id)
        WHERE message_id IS NOT NULL;
    ",
    // 16: the pulse. Each quiet spell nudged, keyed by its agent and the
    // activity it follows (so it is nudged once, whichever process or
    // restart looks), with the nudge and the note that told the person;
    // signs of life no other table keeps (a hook event that left the
    // state as it was, a tmux pane that changed); and indexes for each
    // agent's newest delivery, message and ack.
    r"
    CREATE TABLE pulses (
        agent       TEXT NOT NULL,
        spell_from  INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        message_id  TEXT NOT NULL,
        note_id     TEXT,
        PRIMARY KEY (agent, spell_from)
    ) WITHOUT ROWID;
    CREATE INDEX pulses_note ON pulses (note_id) WHERE note_id IS NOT NULL;
    CREATE TABLE agent_seen (
        agent     TEXT PRIMARY KEY,
        at        INTEGER NOT NULL,
        evidence  TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX messages_sender ON messages (sender, created_at);
    CREATE INDEX deliveries_delivered ON deliveries (agent, updated_at)
        WHERE state = 'delivered';
    CREATE INDEX acks_agent ON acks (agent, acked_at);
    ",
    // 17: `acp status` and the page in constant time however many
    // deliveries are kept: deliveries counted per agent, state, priority
    // and whether acknowledged, kept by triggers in the same transaction
    // as every change; each agent's last finished delivery by index.
    r"
    CREATE INDEX deliveries_agent_done ON deliveries (agent, updated_at)
        WHERE state IN ('delivered','failed');
    CREATE TABLE delivery_counts (
        agent     TEXT NOT NULL,
        state     TEXT NOT NULL,
        priority  INTEGER NOT NULL,
        acked     INTEGER NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (agent, state, priority, acked)
    ) WITHOUT ROWID;
    INSERT INTO delivery_counts
        SELECT d.agent, d.state, d.priority,
               EXISTS (SELECT 1 FROM acks a WHERE a.message_id = d.message_id AND a.agent = d.agent),
               COUNT(*)
        FROM deliveries d GROUP BY 1, 2, 3, 4;
    CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries BEGIN
        INSERT INTO delivery_counts (agent, state, priority, acked, n)
            VALUES (NEW.agent, NEW.state, NEW.priority,
                EXISTS (SELECT 1 FROM acks a WHERE a.message_id = NEW.message_id AND a.agent = NEW.agent),
                1)
            ON CONFLICT (agent, state, priority, acked) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER delivery_counts_delete AFTER DELETE ON deliveries BEGIN
        UPDATE delivery_counts SET n = n - 1
            WHERE agent = OLD.agent AND state = OLD.state AND priority = OLD.priority
              AND acked = EXISTS (SELECT 1 FROM acks a
                  WHERE a.message_id = OLD.message_id AND a.agent = OLD.agent);
    END;
    CREATE TRIGGER delivery_counts_update AFTER UPDATE OF agent, state, priority ON deliveries
        WHEN OLD.agent IS NOT NEW.agent OR OLD.state IS NOT NEW.state
          OR OLD.priority IS NOT NEW.priority BEGIN
        UPDATE delivery_counts SET n = n - 1
            WHERE agent = OLD.agent AND state = OLD.state AND priority = OLD.priority
              AND acked = EXISTS (SELECT 1 FROM acks a
                  WHERE a.message_id = OLD.message_id AND a.agent = OLD.agent);
        INSERT INTO delivery_counts (agent, state, priority, acked, n)
            VALUES (NEW.agent, NEW.state, NEW.priority,
                EXISTS (SELECT 1 FROM acks a WHERE a.message_id = NEW.message_id AND a.agent = NEW.agent),
                1)
            ON CONFLICT (agent, state, priority, acked) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER delivery_counts_ack AFTER INSERT ON acks BEGIN
        UPDATE delivery_counts SET n = n - 1
            WHERE acked = 0 AND (agent, state, priority) IN (SELECT d.agent, d.state, d.priority
                FROM deliveries d WHERE d.message_id = NEW.message_id AND d.agent = NEW.agent);
        INSERT INTO delivery_counts (agent, state, priority, acked, n)
            SELECT d.agent, d.state, d.priority, 1, 1 FROM deliveries d
                WHERE d.message_id = NEW.message_id AND d.agent = NEW.agent
            ON CONFLICT (agent, state, priority, acked) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER delivery_counts_unack AFTER DELETE ON acks BEGIN
        UPDATE delivery_counts SET n = n - 1
            WHERE acked = 1 AND (agent, state, priority) IN (SELECT d.agent, d.state, d.priority
                FROM deliveries d WHERE d.message_id = OLD.message_id AND d.agent = OLD.agent);
        INSERT INTO delivery_counts (agent, state, priority, acked, n)
            SELECT d.agent, d.state, d.priority, 0, 1 FROM deliveries d
                WHERE d.message_id = OLD.message_id AND d.agent = OLD.agent
            ON CONFLICT (agent, state, priority, acked) DO UPDATE SET n = n + 1;
    END;
    ",
    // 18: the page's deliveries-per-minute chart counts from an index of
    // the delivered ones alone (one range count per minute, never a row).
    r"
    CREATE INDEX deliveries_delivered_at ON deliveries (updated_at)
        WHERE state = 'delivered';
    ",
    // 19: each backup's summary, written by the process that committed it
    // (keyed by its manifest's file name), so the page and the schedule
    // never read a large manifest whole for five fields.
    r"
    CREATE TABLE backup_summaries (
        file     TEXT PRIMARY KEY,
        summary  TEXT NOT NULL
    ) WITHOUT ROWID;
    ",
];

/// The store. Cheap to share behind an `Arc`; one connection, used by one
/// caller at a time (callers run on blocking threads).
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch, now.
#[must_use]
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A submission for the store's tests: `body` from `from` to `to`, queued
/// for `dests`.
#[cfg(test)]
pub(crate) fn test_submission(
    from: &str,
    to: crate::model::Recipient,
    kind: crate::model::Kind,
    body: &str,
    dests: Vec<crate::model::Destination>,
) -> Submission {
    let message = crate::model::Draft {
        from: from.into(),
        to,
        kind,
        priority: crate::model::Priority::Urgent,
        body: body.into(),
        tags: vec![],
        reply_to: None,
    }
    .build(1 << 16)
    .unwrap();
    Submission {
        to: dests,
        message,
        via: crate::model::Via::Auto,
        audit: None,
    }
}

/// Creates the store's directory (0700) and an empty store file (0600)
/// when they are missing: the store holds every message, so only its owner
/// reads it. SQLite gives the WAL and shared-memory files the store file's
/// mode.
fn create_private(dir: &Path, file: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Switches to WAL once per database. Changing the journal mode takes an
/// exclusive lock and SQLite does not call the busy handler for it, so
/// processes opening a new store at the same moment retry here.
fn set_wal(conn: &Connection) -> Result<(), rusqlite::Error> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl Store {
    /// What `PRAGMA integrity_check` finds in the store file at `path`,
    /// opened read-only (for `acp doctor`).
    #[must_use]
    pub fn integrity(path: &Path) -> Integrity {
        use rusqlite::ErrorCode;
        let found = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)));
        match found {
            Ok(v) if v == "ok" => Integrity::Ok,
            Ok(v) => Integrity::Damaged(v),
            Err(e) => match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                    Integrity::Damaged(e.to_string())
                }
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                    Integrity::Busy(e.to_string())
                }
                _ => Integrity::Unreadable(e.to_string()),
            },
        }
    }

    /// Opens (creating if needed) the store and brings its schema up to date.
    ///
    /// # Errors
    /// [`StoreError`] if the file cannot be opened or is from a newer acp.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let wal = path.with_extension("db-wal");
        if !path.exists() && wal.exists() {
            // Deleted while in use: a new empty store would shadow the
            // messages in the WAL, and SQLite would truncate it.
            return Err(StoreError::Orphaned {
                path: path.display().to_string(),
            });
        }
        if let Some(dir) = path.parent() {
            create_private(dir, path).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // A new store gives free space back while acp runs (retention);
        // on an existing one this does nothing until `acp store compact`.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(open_err)?;
        set_wal(&conn).map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let store = Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Where the SQLite file is.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits it.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` on a read snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        f(&tx)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        self.write(|tx| {
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version > known {
                return Err(StoreError::TooNew {
                    path: self.path.display().to_string(),
                    found: version,
                    known,
                });
            }
            for (i, sql) in MIGRATIONS
                .iter()
                .enumerate()
                .skip(usize::try_from(version).unwrap_or(0))
            {
                tx.execute_batch(sql)?;
                tx.pragma_update(
                    None,
                    "user_version",
                    i64::try_from(i + 1).unwrap_or(i64::MAX),
                )?;
            }
            Ok(())
        })
    }

    /// Takes the write lock and lets it go, writing nothing: whether the
    /// store takes writes now.
    ///
    /// # Errors
    /// [`StoreError`] saying why not.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.rollback()?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: `Ok(())` or the problems SQLite found.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] with SQLite's report.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let report: Vec<String> = self.read(|tx| {
            let mut stmt = tx.prepare("PRAGMA integrity_check")?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        if report == ["ok"] {
            Ok(())
        } else {
            Err(StoreError::Corrupt(report.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("data/acp.db");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        store.integrity_check().unwrap();
        let mode: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("acp.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open(&path).unwrap_err().to_string();
        assert!(err.contains("newer") && err.contains("99"), "{err}");
    }
}
