//! `acp doctor`: prints the core's checks; exits 1 if any failed.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use acp::app::doctor::{self, Check, Level};
use acp::app::{Config, ConfigError};

/// The report when the config cannot be loaded: nothing else can be
/// checked until it is fixed.
///
/// # Errors
/// Only output errors.
pub(crate) fn config_failed(error: &ConfigError, json_out: bool) -> Result<ExitCode> {
    print(&[doctor::config_failed(error)], true, json_out)?;
    Ok(ExitCode::from(super::EXIT_FAILURE))
}

/// Prints every check; exits 1 if any failed.
///
/// # Errors
/// Only output errors.
pub(crate) async fn run(config: &Config, json_out: bool) -> Result<ExitCode> {
    let mut all = tokio::task::block_in_place(|| doctor::checks(config));
    all.extend(doctor::discord_checks(config).await);
    all.extend(doctor::cluster_checks(config).await);
    let failed = all.iter().any(|c| c.level == Level::Fail);
    print(&all, failed, json_out)?;
    Ok(if failed {
        ExitCode::from(super::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(all: &[Check], failed: bool, json_out: bool) -> Result<()> {
    if json_out {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"ok": !failed, "checks": all}))?
        );
        return Ok(());
    }
    for c in all {
        let tag = match c.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        outln!("{tag}  {:<15} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            outln!("      {:<15} fix: {fix}", "");
        }
    }
    Ok(())
}
