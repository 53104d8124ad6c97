//! Commands that show or change state: init, status, agents, roles, inbox,
//! coords, audit.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use acp::app::AckResult;
use acp::app::App;
use acp::model::Priority;

use super::{InboxCommand, RolesCommand};

fn print_json(value: &impl Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A stored time (ms since the epoch) as RFC 3339, to the second, UTC.
fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| format!("{t:.0}"))
}

fn opt_time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), time)
}

/// Who is acting, for the audit log: the user the OS runs this process as
/// (`cli:alice`, or `cli:uid-1001` without a name), with `$USER` after it
/// only when it says something else (`cli:alice (USER=bob)`): the
/// environment is the caller's to set, the uid is not.
pub(super) fn actor() -> String {
    let uid = uzers::get_current_uid();
    let name = uzers::get_user_by_uid(uid).map_or_else(
        || format!("uid-{uid}"),
        |u| u.name().to_string_lossy().into_owned(),
    );
    match std::env::var("USER") {
        Ok(claimed) if claimed != name => {
            let claimed: String = claimed
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .take(64)
                .collect();
            format!("cli:{name} (USER={claimed:?})")
        }
        _ => format!("cli:{name}"),
    }
}

pub(crate) fn init(
    root: &Path,
    agents: u32,
    tmux: Option<&str>,
    json_out: bool,
) -> Result<ExitCode> {
    let report = acp::app::init_with(root, agents, tmux)?;
    if json_out {
        print_json(&json!({ "root": root, "created": report.created }))?;
    } else if report.created.is_empty() {
        outln!("{} is already an acp root: nothing changed", root.display());
    } else {
        outln!("initialised acp root {}:", root.display());
        for path in &report.created {
            outln!("  created {}", path.display());
        }
        outln!("next: edit config/acp.toml, then `acp run` (or `acp send --to Agent-1 \"hello\"`)");
    }
    Ok(ExitCode::SUCCESS)
}

/// What the running service says of its configuration, for `acp status`.
fn config_lines(c: &acp::app::ConfigState) -> String {
    let mut out = format!(
        "config: loaded {} ({} reload(s) since it started)\n",
        time(c.loaded_at),
        c.reloads
    );
    if let Some(r) = &c.refused {
        let _ = writeln!(
            out,
            "config: the files on disk were REFUSED at {}, acp run keeps the one above: {}",
            time(r.at),
            r.error
        );
    }
    if !c.restart_needed.is_empty() {
        let _ = writeln!(
            out,
            "config: restart needed for: {}",
            c.restart_needed.join("; ")
        );
    }
    out
}

pub(crate) async fn status(app: &App, json_out: bool) -> Result<ExitCode> {
    let status = app.status().await?;
    let service = acp::app::ServiceLock::is_held(&app.config().root);
    // Agents in tmux, idle or busy, from the probe tmux delivery uses.
    let terminals: Vec<(String, String)> = app
        .agent_views()
        .await?
        .into_iter()
        .filter_map(|v| v.terminal.map(|t| (v.id, t)))
        .collect();
    let config_state = app.config_state();
    if json_out {
        let mut value = serde_json::to_value(&status)?;
        value["service_running"] = service.into();
        value["service_config"] = serde_json::to_value(&config_state)?;
        value["terminals"] = terminals
            .iter()
            .map(|(a, t)| (a.clone(), serde_json::Value::from(t.as_str())))
            .collect::<serde_json::Map<_, _>>()
            .into();
        print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = if service {
        let mut line = String::from("service: running (acp run)\n");
        if let Some(c) = &config_state {
            line.push_str(&config_lines(c));
        }
        line.push('\n');
        line
    } else {
        String::from(
            "service: not running (each `acp send` delivers its own message; start `acp run` for \
             retries)\n\n",
        )
    };
    out.push_str("queue         normal  urgent  critical\n");
    for (state, by_priority) in &status.queue {
        let n = |p: Priority| by_priority.get(&p).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{state:<12} {:>7} {:>7} {:>9}",
            n(Priority::Normal),
            n(Priority::Urgent),
            n(Priority::Critical)
        );
    }
    out.push_str("\nagent         last delivery                  at                    unacked\n");
    for a in &status.agents {
        let last = match (&a.last_state, &a.last_method) {
            (Some(s), Some(m)) => format!("{s} by {m}"),
            (Some(s), None) => s.to_string(),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<13} {last:<30} {:<21} {}",
            a.agent,
            opt_time(a.last_delivery_at),
            a.unacked
        );
    }
    for (agent, state) in &terminals {
        let _ = writeln!(out, "{agent:<13} tmux: {state}");
    }
    if status.recent_failures.is_empty() {
        out.push_str("\nno failed deliveries\n");
    } else {
        let _ = writeln!(
            out,
            "\nfailed deliveries ({} in all, newest first):",
            status.failed_total
        );
        for f in &status.recent_failures {
            let _ = writeln!(
                out,
                "  {} {} -> {} after {} attempt(s): {}",
                time(f.at),
                f.message_id,
                f.agent,
                f.attempts,
                f.error
            );
        }
        out.push_str(
            "once the cause is fixed: `acp retry ID` queues one again, `acp retry --failed` all\n",
        );
    }
    out!("{out}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn agents(app: &App, json_out: bool) -> Result<ExitCode> {
    let views = app.agent_views().await?;
    if json_out {
        print_json(&views)?;
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        outln!("no agents configured: add [[agents]] to config/acp.toml");
    }
    for v in views {
        let captain = if v.captain { " (captain)" } else { "" };
        if v.name == v.id {
            outln!("{}{captain}", v.id);
        } else {
            outln!("{}{captain}: {}", v.id, v.name);
        }
        outln!(
            "  role:     {} [{}]",
            if v.role.is_empty() { "-" } else { &v.role },
            v.role_source
        );
        outln!("  delivery: {}", v.delivery.join(" -> "));
        if let Some(t) = &v.terminal {
            outln!("  tmux:     {t}");
        }
        if let Some(node) = &v.node {
            outln!(
                "  node:     {node} ({})",
                v.node_presence.as_deref().unwrap_or("not heard from")
            );
            outln!("  inbox:    {}/inbox on {node}", v.workspace);
        } else {
            outln!("  inbox:    {}/inbox", v.workspace);
        }
        outln!(
            "  last:     {} at {}; {} unacknowledged",
            v.last_delivery().as_deref().unwrap_or("-"),
            opt_time(v.last_delivery_at),
            v.unacked
        );
        if let Some(p) = &v.pulse {
            outln!("  pulse:    {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn roles(app: &App, cmd: &RolesCommand, json_out: bool) -> Result<ExitCode> {
    let by = actor();
    match cmd {
        RolesCommand::List => {
            let views = app.agent_views().await?;
            if json_out {
                let rows: Vec<_> = views
                    .iter()
                    .map(|v| json!({ "agent": v.id, "role": v.role, "role_source": v.role_source, "captain": v.captain }))
                    .collect();
                print_json(&rows)?;
            } else {
                for v in views {
                    let captain = if v.captain { "  [captain]" } else { "" };
                    outln!(
                        "{:<13} {}{captain}",
                        v.id,
                        if v.role.is_empty() { "-" } else { &v.role }
                    );
                }
            }
        }
        RolesCommand::Set { agent, role } => {
            let id = app.set_role(agent, role, &by).await?;
            report(
                json_out,
                &json!({ "agent": id, "role": role.trim() }),
                &format!("{id} is now: {}", role.trim()),
            )?;
        }
        RolesCommand::Clear { agent } => {
            let had = app.clear_role(agent, &by).await?;
            let text = if had {
                format!("{agent}'s assigned role removed: the configured role applies")
            } else {
                format!("{agent} had no assigned role")
            };
            report(json_out, &json!({ "agent": agent, "removed": had }), &text)?;
        }
        RolesCommand::Captain { agent } => {
            let id = app.set_captain(agent, &by).await?;
            report(
                json_out,
                &json!({ "captain": id }),
                &format!("{id} is now the captain"),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(json_out: bool, value: &serde_json::Value, text: &str) -> Result<()> {
    if json_out {
        print_json(value)
    } else {
        outln!("{text}");
        Ok(())
    }
}

pub(crate) async fn inbox(app: &App, cmd: &InboxCommand, json_out: bool) -> Result<ExitCode> {
    match cmd {
        InboxCommand::List {
            agent,
            person,
            unread,
            limit,
        } => {
            // Without --agent: ACP_AGENT's messages, else a person's inbox.
            let Some(agent) = agent.clone().or_else(|| {
                person
                    .is_none()
                    .then(|| app.config().default_sender.clone())
                    .flatten()
            }) else {
                let who = super::people::inbox_owner(app, person.as_deref())?;
                super::people::list(app, &who, *unread, *limit, json_out).await?;
                return Ok(ExitCode::SUCCESS);
            };
            let entries = app.inbox(&agent, *unread, *limit).await?;
            if json_out {
                print_json(&entries)?;
            } else if entries.is_empty() {
                outln!(
                    "no {}messages for {agent}",
                    if *unread { "unacknowledged " } else { "" }
                );
            } else {
                for e in entries {
                    outln!("{}", super::people::entry_line(&e));
                }
            }
        }
        InboxCommand::Read { id } => {
            let id = app.resolve_message(id).await?;
            let (message, deliveries) = app.read(id).await?;
            if json_out {
                print_json(&json!({ "message": message, "deliveries": deliveries }))?;
            } else {
                outln!(
                    "id:       {}\nfrom:     {}\nto:       {}\nkind:     {}\npriority: \
                     {}\ncreated:  {}",
                    message.id,
                    message.from,
                    message.to,
                    message.kind,
                    message.priority,
                    time(message.created_at)
                );
                if let Some(r) = message.reply_to {
                    outln!("reply to: {r}");
                }
                if !message.tags.is_empty() {
                    outln!("tags:     {}", message.tags.join(", "));
                }
                outln!("\n{}\n", message.body);
                for d in deliveries {
                    let ack = match (&d.acked_by, d.acked_at) {
                        (Some(by), Some(at)) => format!("; acknowledged by {by} at {}", time(at)),
                        _ => String::new(),
                    };
                    outln!(
                        "{}: {}{}{ack}",
                        d.agent,
                        d.summary(),
                        super::send::detail_suffix(&d)
                    );
                }
            }
        }
        InboxCommand::Ack {
            id,
            agent,
            person,
            by,
        } => {
            let id = app.resolve_message(id).await?;
            let agent = match person {
                Some(_) => Some(super::people::inbox_owner(app, person.as_deref())?.sender()),
                None => agent.clone(),
            };
            ack(app, id, agent.as_deref(), by.as_deref(), json_out).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn audit(app: &App, limit: usize, json_out: bool) -> Result<ExitCode> {
    let rows = app.audit_log(limit).await?;
    if json_out {
        print_json(&rows)?;
    } else if rows.is_empty() {
        outln!("the audit log is empty");
    } else {
        for r in rows {
            outln!(
                "{} {:<14} {:<8} {:<20} {} {}",
                time(r.at),
                r.action,
                r.outcome,
                r.actor,
                r.target.as_deref().unwrap_or("-"),
                r.detail.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `acp inbox ack`.
async fn ack(
    app: &App,
    id: acp::model::MessageId,
    agent: Option<&str>,
    by: Option<&str>,
    json_out: bool,
) -> Result<()> {
    let caller = app.config().default_sender.clone();
    let (agent, result) = app.ack(id, agent, caller.as_deref(), by, &actor()).await?;
    let text = match &result {
        AckResult::Acked { at } => {
            format!("{id} acknowledged for {agent} at {}", time(*at))
        }
        AckResult::AlreadyAcked { by, at } => format!(
            "{id} was already acknowledged for {agent} by {by} at {}",
            time(*at)
        ),
        AckResult::NotDelivered { .. } | AckResult::NoSuchDelivery => {
            unreachable!("returned as errors by App::ack")
        }
    };
    report(
        json_out,
        &json!({ "id": id, "agent": agent, "ack": result }),
        &text,
    )?;
    Ok(())
}
