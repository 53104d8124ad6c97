//! `acp discover [--save]`.

use std::process::ExitCode;

use anyhow::Result;

use acp::app::{App, Discovery, Standing};

/// Finds the running agents, prints them with the tables that would add
/// them, and with `save` writes those and waits for the running service
/// to pick them up.
pub(crate) async fn run(app: &App, save: bool, json_out: bool) -> Result<ExitCode> {
    let found = app.discover().await?;
    let saved = if save {
        let saved = app.save_discovered(&found)?;
        let pickup = if saved.agents.is_empty() {
            None
        } else {
            Some(app.await_pickup(super::PICKUP).await.describe())
        };
        Some((saved, pickup))
    } else {
        None
    };
    if json_out {
        let mut value = serde_json::to_value(&found)?;
        if let Some((saved, pickup)) = &saved {
            value["saved"] = serde_json::to_value(saved)?;
            value["pickup"] = serde_json::to_value(pickup)?;
        }
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_found(&found)?;
    let new = found.new_agents();
    match &saved {
        None if new.is_empty() => {}
        None => {
            outln!("\nthe tables `acp discover --save` appends to config/acp.toml:");
            for (_, table) in &new {
                outln!("\n{}", table.trim_end());
            }
        }
        Some((saved, pickup)) => {
            if !saved.agents.is_empty() {
                for (_, table) in &new {
                    outln!("\n{}", table.trim_end());
                }
                let ids: Vec<&str> = saved
                    .agents
                    .iter()
                    .map(acp::model::AgentId::as_str)
                    .collect();
                outln!(
                    "\nsaved {} agent(s) in {}: {}",
                    ids.len(),
                    saved.path.display(),
                    ids.join(", ")
                );
            }
            if let Some(pickup) = pickup {
                outln!("{pickup}");
            }
        }
    }
    if new.is_empty() && (!found.panes.is_empty() || !found.windows.is_empty()) {
        outln!("\nnothing new to add");
    }
    Ok(ExitCode::SUCCESS)
}

/// The agent's id and what becomes of it, in words.
fn standing(s: &Standing) -> (String, String) {
    match s {
        Standing::New { agent, .. } => (agent.to_string(), "new".into()),
        Standing::Configured { agent } => (agent.to_string(), "already configured".into()),
        Standing::Unreachable { reason } => ("-".into(), format!("not added: {reason}")),
    }
}

fn print_found(found: &Discovery) -> Result<()> {
    let up: Vec<String> = found
        .servers
        .iter()
        .filter(|s| s.error.is_none())
        .map(|s| format!("{} ({} panes)", s.socket, s.panes))
        .collect();
    if found.servers.is_empty() {
        outln!("tmux: no servers in {}", found.tmux_dir);
    } else {
        outln!(
            "tmux: {} server(s) in {}: {}",
            up.len(),
            found.tmux_dir,
            if up.is_empty() {
                "none answers".to_owned()
            } else {
                up.join(", ")
            }
        );
    }
    // Sockets left by servers that ended can be many: a few by name.
    let down: Vec<_> = found.servers.iter().filter(|s| s.error.is_some()).collect();
    for s in down.iter().take(3) {
        outln!(
            "  {}: not running ({})",
            s.socket,
            s.error.as_deref().unwrap_or_default()
        );
    }
    if down.len() > 3 {
        outln!(
            "  and {} more sockets with no server behind them (see --json)",
            down.len() - 3
        );
    }
    if found.panes.is_empty() {
        outln!("no agent programs in tmux panes");
    } else {
        outln!("\nin tmux panes:");
        for p in &found.panes {
            let (id, what) = standing(&p.standing);
            let server = if p.socket == "default" {
                String::new()
            } else {
                format!(" on server {}", p.socket)
            };
            outln!(
                "  {id:<14} {} in {} ({}{server}): {what}",
                p.title,
                p.target,
                p.pane
            );
            outln!(
                "  {:<14} {} (pid {}), tmux shows {}",
                "",
                p.seen_as,
                p.pid,
                p.pane_command
            );
        }
    }
    if let Some(why) = &found.windows_unread {
        outln!("\nwindows: {why}");
    } else if found.windows.is_empty() {
        outln!("\nno Cursor or VS Code windows");
    } else {
        outln!("\nwindows:");
        for w in &found.windows {
            let (id, what) = standing(&w.standing);
            outln!("  {id:<14} {} window {:?}: {what}", w.app, w.title);
            if matches!(w.standing, Standing::New { .. }) {
                outln!(
                    "  {:<14} points unknown: added for the inbox; then run `acp coords capture \
                     {id} --save` and put gui first in its delivery",
                    ""
                );
            }
        }
    }
    Ok(())
}
