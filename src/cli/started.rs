//! `acp spawn` and `acp stop`: agents acp starts in a project, and ends.

use std::process::ExitCode;

use anyhow::Result;

use acp::app::{App, SpawnRequest};

/// Prints a value as pretty JSON.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Who is asking, as the audit log and the first messages name them: the
/// agent of this shell, else the person at the keyboard.
fn asker(app: &App) -> Result<String> {
    match &app.config().default_sender {
        Some(agent) => Ok(agent.clone()),
        None => Ok(super::people::operator(app)?.sender()),
    }
}

pub(crate) async fn spawn(
    app: &App,
    project: &str,
    task: Option<&str>,
    id: Option<&str>,
    json_out: bool,
) -> Result<ExitCode> {
    let report = app
        .spawn(SpawnRequest {
            project: project.to_owned(),
            task: task.map(str::to_owned),
            id: id.map(str::to_owned),
            by: asker(app)?,
        })
        .await?;
    if json_out {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    show(&report, "started")?;
    Ok(ExitCode::SUCCESS)
}

/// `acp restart AGENT`.
pub(crate) async fn restart(app: &App, agent: &str, json_out: bool) -> Result<ExitCode> {
    let report = app.restart_agent(agent, &asker(app)?).await?;
    if json_out {
        print_json(&report)?;
    } else {
        show(&report, "restarted")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(report: &acp::app::SpawnReport, what: &str) -> Result<()> {
    let a = &report.agent;
    outln!(
        "{} {what} in tmux pane {} ({})",
        a.id,
        a.target,
        a.dir.display()
    );
    if let (Some(path), Some(branch)) = (&a.worktree, &a.branch) {
        outln!("worktree: {} on branch {branch}", path.display());
    }
    outln!("{}", report.service);
    for id in &report.messages {
        outln!("queued: {id}");
    }
    Ok(())
}

pub(crate) async fn stop(
    app: &App,
    agent: &str,
    remove_worktree: bool,
    json_out: bool,
) -> Result<ExitCode> {
    let report = app.stop_agent(agent, remove_worktree, &asker(app)?).await?;
    if json_out {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let window = match (&report.machine, report.window_closed) {
        (Some(node), _) => format!("{node} closes its window"),
        (None, true) => "window closed".to_owned(),
        (None, false) => "its window was already gone".to_owned(),
    };
    outln!(
        "{} stopped ({window}); {} queued message(s) failed",
        report.agent,
        report.failed.len()
    );
    if let Some(path) = &report.worktree {
        if report.worktree_removed {
            outln!("worktree {path} removed (its branch stays)");
        } else {
            outln!("worktree {path} kept");
        }
    }
    Ok(ExitCode::SUCCESS)
}
