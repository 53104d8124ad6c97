//! Integration tests: one binary (link time), a module per area. Everything
//! runs on real parts: real SQLite files, real directories, the real `acp`
//! binary in child processes.

#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads best as one story, from set-up to the user's checks"
)]

mod approvals;
mod backup;
mod backup_chunks;
mod browser;
mod cli;
mod cluster;
mod cluster_prompts;
mod crash;
mod desktop;
mod devlogs;
mod discord;
mod discover;
mod doctor;
mod everyday;
mod gui;
mod gui_focus;
mod layers;
mod mcp;
mod operator;
mod outbox;
mod panes;
mod pipeline;
mod pulse;
mod reload;
mod retention;
mod schedule_doors;
mod schedules;
mod sec_cluster;
mod sec_files;
mod sec_http;
mod sec_misc;
mod security;
mod service;
mod shells;
mod soak;
mod spawn;
mod spawn_doors;
mod standin;
mod support;
mod tmux;
mod web;
