//! acp (Agent Cellphone) lets one person steer a swarm of AI coding agents
//! from Discord and the command line. A request becomes a
//! [`UnifiedMessage`](message::UnifiedMessage), is stored durably, and is
//! delivered to the agent: into its chat window by keyboard and mouse, or as a
//! file in its workspace inbox.
//!
//! Three promises: a message is never lost (it is committed to SQLite before
//! anyone is told it was accepted, and deliveries interrupted by a crash are
//! resumed), it never lands in the wrong agent's place (agent ids cannot name
//! paths, inbox writes are atomic and idempotent), and the sender sees what
//! really happened (every attempt is recorded; receipts say which method
//! delivered, or why it failed).
//!
//! # Layout
//!
//! Four layers; a module names only its own layer and those below, and a
//! test (`tests/it/layers.rs`) reads the source to hold it to that.
//!
//! - The **model** imports nothing else of the crate:
//!   - [`model`]: agent ids and agents, `UnifiedMessage` and its ids, kinds,
//!     priorities and body limits, the delivery vocabulary (`MethodName`,
//!     `Via`, `DeliveryState`, failure kinds), audit outcomes, and each
//!     agent's keyboard-and-mouse settings as data.
//! - The **engines** get their own settings, never the whole config:
//!   - [`lockfile`]: OS file locks with a deadline, the one way acp locks
//!     a file.
//!   - [`untrusted`]: reading files an agent can write (devlogs, `--file`):
//!     open without following links, then check what was opened, bounded.
//!   - [`launch`]: agents' programs started in tmux windows and git
//!     worktrees, and ended (`acp spawn`, `acp stop`).
//!   - [`watch`]: file changes (not reads) under folders, for the devlog
//!     watcher and the config reload.
//!   - [`config`]: the one typed configuration (defaults < file < env),
//!     each engine's settings struct, what counts as a secret in text
//!     (`config::redact`, for the log and recorded errors), and each
//!     setting in effect with its origin (`acp config show`).
//!   - [`coords`]: `config/coordinates.json` and its validation.
//!   - [`events`]: the in-process event bus that wakes receipts (the store
//!     stays the record).
//!   - [`store`]: the SQLite store (queue, typed views, roles, audit log,
//!     retries, ids by prefix).
//!   - [`delivery`]: the delivery-method trait, the inbox,
//!     keyboard-and-mouse and Discord (the outbox: replies, reports,
//!     devlogs) methods, and the dispatcher.
//!   - [`backup`]: full, incremental and differential backups,
//!     point-in-time restore, verification, retention and drills.
//!   - [`cluster`]: several machines through NATS JetStream: the
//!     `cluster` delivery method, a node's intake and reports, the hub's
//!     streams, outcomes and heartbeats, and agents' states, prompts and
//!     decisions carried between a node and the hub's bot.
//! - The **core**, the only API the front doors use:
//!   - [`app`]: messages (send, reply, follow, ack, retry; ids whole or by a
//!     unique prefix), devlogs, receipts
//!     owed to Discord commands, roles and the audit log,
//!     backups (each audited and announced whichever door asks), agents
//!     started, stopped and restarted in projects (whichever door asks),
//!     the doctor's checks, `acp init`, and the one error type.
//! - The **front doors** name only the core and the model:
//!   - [`discord`]: the poise slash commands, their buttons (prompts, a
//!     stop's confirmation) and the receipts they owe (serenity's gateway;
//!     besides it only `delivery::discord` uses serenity, for its REST
//!     client).
//!   - [`hook`]: `acp hook`, the command Claude Code and Codex run as a
//!     hook: agents' states, prompts and their decisions.
//!   - [`http`]: the status page, the JSON API (agents started and
//!     stopped too), Prometheus metrics, health checks and signed webhooks
//!     (axum).
//!   - [`mcp`]: `acp mcp`, a stdio MCP server speaking for one agent.
//!   - [`service`]: `acp run`, the long-running service, and the systemd
//!     unit that runs it.
//!   - the `acp` command line lives in the binary (`src/main.rs` and
//!     `src/cli/`), the only place using `anyhow` besides poise's error
//!     type.

pub mod app;
pub mod backup;
pub mod cluster;
pub mod config;
pub mod coords;
pub mod delivery;
pub mod discord;
pub mod events;
pub mod hook;
pub mod http;
pub mod launch;
pub mod lockfile;
pub mod mcp;
pub mod model;
pub mod service;
pub mod store;
pub mod untrusted;
pub mod watch;
