//! Integration tests: one binary (link time), a module per area. Everything
//! runs on real parts: real SQLite files, real directories, the real `acp`
//! binary in child processes.

mod cli;
mod crash;
mod pipeline;
mod support;
