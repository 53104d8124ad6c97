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
//! - [`message`]: `UnifiedMessage`, ids, kinds, priorities and body limits.
//! - [`agents`]: agent ids (a strict pattern) and the registry.
//! - [`config`]: the one typed configuration, layered defaults < file < env.
//! - [`coords`]: `config/coordinates.json` and its validation.
//! - [`store`]: the SQLite store (queue, acks, roles, audit log).
//! - [`delivery`]: the delivery-method trait, the inbox method and the
//!   dispatcher.
//! - [`discord`]: the poise slash commands (the only module using serenity).
//! - [`events`]: the in-process event bus (receipts, metrics, devlogs listen).
//! - [`backup`]: full, incremental and differential backups, point-in-time
//!   restore, verification, retention and drills.
//! - [`app`]: the application core every front door calls.
//! - [`service`]: `acp run`, the long-running service.
//! - [`init`]: `acp init`.
//! - [`cli`]: the `acp` command line (the only module using `anyhow`, with
//!   `main.rs`).

pub mod agents;
pub mod app;
pub mod backup;
pub mod cli;
pub mod config;
pub mod coords;
pub mod delivery;
pub mod discord;
pub mod events;
pub mod init;
pub mod message;
pub mod service;
pub mod store;
