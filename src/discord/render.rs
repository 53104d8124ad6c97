//! Pure rendering of replies: what a person on Discord reads.

use std::fmt::Write as _;

use poise::serenity_prelude::CreateEmbed;

use std::time::Duration;

use crate::app::{AgentView, Listing, Waiting};
use crate::app::{Created, DeliveryView, InboxEntry, RestoreReport, Status, Summary, VerifyReport};
use crate::model::attention::waited;
use crate::model::{AgentState, DeliveryState, Priority, UnifiedMessage};

/// The first reply to `/message`: stored, with its id, and whether anything
/// is delivering (or what it waits for: a machine that is away).
#[must_use]
pub(crate) fn accepted(
    message: &UnifiedMessage,
    delivering: bool,
    waiting: Option<&str>,
) -> String {
    let next = match (delivering, waiting) {
        (true, Some(away)) => format!("queued: {away}; it goes out when it is back"),
        (true, None) => "delivering…".to_owned(),
        (false, _) => {
            "queued: no `acp run` is delivering for this root; it goes out once one starts"
                .to_owned()
        }
    };
    format!(
        "📨 Accepted `{}` for **{}** ({} priority): {next}",
        message.id, message.to, message.priority
    )
}

/// The receipt the first reply is edited into: each recipient's outcome.
#[must_use]
pub(crate) fn receipt(message: &UnifiedMessage, deliveries: &[DeliveryView]) -> String {
    let mut out = format!(
        "📨 `{}` for **{}** ({} priority)\n",
        message.id, message.to, message.priority
    );
    for d in deliveries {
        let icon = match d.state {
            DeliveryState::Delivered => "✅",
            DeliveryState::Failed => "❌",
            DeliveryState::Queued | DeliveryState::Delivering => "⏳",
        };
        if d.agent == crate::model::DISCORD && d.state == DeliveryState::Delivered {
            let detail = d.detail.as_deref().unwrap_or("posted");
            let _ = writeln!(out, "{icon} Discord: {detail}");
        } else {
            let _ = writeln!(out, "{icon} {}: {}", d.agent, d.summary());
        }
    }
    clip(out.trim_end(), CONTENT_MAX)
}

/// The receipt once the interaction token may have expired: posted as a new
/// channel message, so it says which command it answers.
#[must_use]
pub(crate) fn late_receipt(message: &UnifiedMessage, deliveries: &[DeliveryView]) -> String {
    clip(
        &format!("Final receipt: {}", receipt(message, deliveries)),
        CONTENT_MAX,
    )
}

/// Discord's limit on a message's content.
const CONTENT_MAX: usize = 2000;

/// Discord's limit on an embed field's value.
const FIELD_MAX: usize = 1024;

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `/status`: queue depth by state and priority, recent failures, uptime
/// and the last backup.
pub(crate) fn status(
    status: &Status,
    uptime: Duration,
    last_backup: Option<&Summary>,
) -> CreateEmbed {
    let mut embed = CreateEmbed::new().title("acp status");
    for (state, by) in &status.queue {
        let counts: Vec<String> = Priority::ALL
            .iter()
            .map(|p| format!("{} {p}", by.get(p).copied().unwrap_or(0)))
            .collect();
        embed = embed.field(state.as_str(), counts.join(" · "), true);
    }
    let mut failures = String::new();
    for f in status.recent_failures.iter().take(5) {
        let _ = writeln!(failures, "❌ `{}` → {}: {}", f.message_id, f.agent, f.error);
    }
    if failures.is_empty() {
        failures.push_str("none");
    }
    let backup = last_backup.map_or_else(
        || "none yet (`/backup create`)".to_owned(),
        |m| format!("{} `{}` at {}", m.kind, m.id, m.created_at),
    );
    embed
        .field(
            format!("Failures ({})", status.failed_total),
            clip(failures.trim_end(), FIELD_MAX),
            false,
        )
        .field(
            "Uptime",
            format!(
                "{:#}",
                jiff::SignedDuration::from_secs(
                    i64::try_from(uptime.as_secs()).unwrap_or(i64::MAX)
                )
            ),
            true,
        )
        .field("Last backup", backup, true)
}

/// A byte count for people.
fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// `/backup create`: the result.
pub(crate) fn backup_created(created: &Created) -> CreateEmbed {
    let m = &created.manifest;
    let mut embed = CreateEmbed::new()
        .title(format!("✅ {} backup created", m.kind))
        .field("ID", format!("`{}`", m.id), false)
        .field("Kind", m.kind.as_str(), true)
        .field("Files", m.stats.total_files.to_string(), true)
        .field("Bytes", bytes(m.stats.total_bytes), true)
        .field(
            "Changed",
            format!(
                "{} files, {}",
                m.stats.changed_files,
                bytes(m.stats.changed_bytes)
            ),
            true,
        )
        .field("Stored", format!("+{}", bytes(m.stats.stored_bytes)), true)
        .field(
            "Duration",
            format!(
                "{:.1} s",
                Duration::from_millis(m.stats.duration_ms).as_secs_f64()
            ),
            true,
        );
    if let Some(note) = &created.note {
        embed = embed.description(clip(note, 1000));
    }
    embed
}

/// `/backup list`: the newest backups.
pub(crate) fn backup_list(listing: &Listing) -> CreateEmbed {
    let catalog = &listing.catalog;
    let mut text = String::new();
    for m in catalog.manifests.iter().rev().take(15) {
        let _ = writeln!(
            text,
            "`{}` {} · {} · {} files · {}",
            m.id,
            m.kind,
            m.created_at,
            m.stats.total_files,
            bytes(m.stats.total_bytes)
        );
    }
    for (file, why) in catalog.damaged.iter().take(5) {
        let _ = writeln!(text, "❌ {file}: {why}");
    }
    if text.is_empty() {
        text.push_str("No backups yet: `/backup create`.");
    }
    CreateEmbed::new()
        .title(format!("Backups ({})", catalog.manifests.len()))
        .description(clip(text.trim_end(), 4000))
}

/// `/backup verify`.
pub(crate) fn backup_verified(report: &VerifyReport) -> CreateEmbed {
    let mut text = String::new();
    for b in &report.backups {
        if b.problems.is_empty() {
            let _ = writeln!(text, "✅ `{}` ({} files)", b.id, b.files);
        } else {
            let _ = writeln!(text, "❌ `{}`: {} problem(s)", b.id, b.problems.len());
            for (path, why) in b.problems.iter().take(5) {
                let _ = writeln!(text, "  {path}: {why}");
            }
        }
    }
    CreateEmbed::new()
        .title(if report.ok() {
            "✅ Backups verified: all intact"
        } else {
            "❌ Backup damage found"
        })
        .description(clip(text.trim_end(), 4000))
        .field("Blobs read", report.objects_read.to_string(), true)
        .field("Bytes read", bytes(report.bytes_read), true)
}

/// `/backup restore`: where the copy is and how to put it live.
pub(crate) fn backup_restored(report: &RestoreReport) -> CreateEmbed {
    CreateEmbed::new()
        .title("✅ Backup restored and verified")
        .description(format!(
            "Restored into `{}`. To put it live, stop `acp run` and run `acp backup restore {} \
             --in-place` on the machine.",
            report.target, report.id
        ))
        .field("ID", format!("`{}`", report.id), false)
        .field("Taken", report.created_at.clone(), true)
        .field("Files", report.files.to_string(), true)
        .field("Bytes", bytes(report.bytes), true)
}

/// `/agents` and `/role list`: one field per agent (Discord allows 25).
pub(crate) fn agents(views: &[AgentView]) -> CreateEmbed {
    let embed = CreateEmbed::new().title("Agents");
    if views.is_empty() {
        return embed.description("No agents configured: add [[agents]] to config/acp.toml.");
    }
    views.iter().take(25).fold(embed, |embed, v| {
        let captain = if v.captain { " ⭐ captain" } else { "" };
        let role = if v.role.is_empty() { "-" } else { &v.role };
        let terminal = v
            .terminal
            .as_deref()
            .map(|t| format!(" · tmux: {t}"))
            .unwrap_or_default();
        let node = match (&v.node, &v.node_presence) {
            (Some(node), Some(presence)) => format!("\non {node}: {presence}"),
            (Some(node), None) => format!("\non {node}: not heard from"),
            _ => String::new(),
        };
        let pulse = v
            .pulse
            .as_deref()
            .map(|p| format!("\n💤 {p}"))
            .unwrap_or_default();
        let value = format!(
            "{role}\nlast: {} · unacked: {}{terminal}{node}{pulse}",
            v.last_delivery().as_deref().unwrap_or("-"),
            v.unacked
        );
        embed.field(format!("{}{captain}", v.id), clip(&value, FIELD_MAX), false)
    })
}

/// `/waiting`: every agent waiting for a person, the longest first, for
/// how long, with its open prompts (summary and id) or its last words.
#[must_use]
pub(crate) fn waiting(waiting: &[Waiting], now: i64) -> String {
    if waiting.is_empty() {
        return "✅ nobody is waiting".to_owned();
    }
    let mut out = format!(
        "**{} waiting for a person**, longest first\n",
        waiting.len()
    );
    for w in waiting {
        let (icon, words) = match w.state {
            AgentState::NeedsApproval => ("🔐", "needs approval"),
            AgentState::Asking => ("❓", "asks"),
            AgentState::Done => ("✅", "done"),
            AgentState::Exited => ("⏹️", "exited"),
            AgentState::Working | AgentState::Idle | AgentState::Unknown => {
                ("⏳", "has a prompt open")
            }
        };
        let _ = write!(
            out,
            "{icon} **{}** {words}, waiting {}",
            w.agent,
            waited(now - w.since)
        );
        match (&w.prompts[..], &w.detail) {
            ([], Some(detail)) if !detail.is_empty() => {
                let first = detail.lines().next().unwrap_or("");
                let _ = writeln!(out, ": {}", clip(first, 200));
            }
            _ => out.push('\n'),
        }
        for p in &w.prompts {
            let _ = writeln!(
                out,
                "  • {} (prompt `{}`, {} ago)",
                clip(&p.summary, 200),
                p.id,
                waited(now - p.created_at)
            );
        }
    }
    clip(out.trim_end(), CONTENT_MAX)
}

/// `/inbox`.
#[must_use]
pub(crate) fn inbox(agent: &str, entries: &[InboxEntry]) -> String {
    if entries.is_empty() {
        return format!("No messages for {agent}.");
    }
    let mut out = format!("**{agent}**: latest {}\n", entries.len());
    for e in entries {
        let state = match (&e.acked_by, e.state) {
            (Some(by), _) => format!("✅ acked by {by}"),
            (None, DeliveryState::Delivered) => "📬 unread".to_owned(),
            (None, other) => format!("⏳ {other}"),
        };
        let first: String = e
            .message
            .body
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(80)
            .collect();
        let _ = writeln!(
            out,
            "`{}` {} from {}: {first}",
            e.message.id, state, e.message.from
        );
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AttemptView;
    use crate::model::{AttemptOutcome, MethodName};

    #[test]
    fn waiting_lists_the_longest_first_with_prompts_and_last_words() {
        use crate::model::{Prompt, PromptId, PromptSource};
        assert_eq!(waiting(&[], 0), "✅ nobody is waiting");
        let prompt = Prompt {
            id: PromptId::generate(),
            agent: "Agent-1".parse().unwrap(),
            source: PromptSource::Hook,
            tool: Some("Bash".into()),
            summary: "Bash: rm -rf build".into(),
            detail: "rm -rf build".into(),
            allow_session: true,
            choices: Vec::new(),
            fingerprint: None,
            answered: None,
            session: None,
            created_at: 60_000,
            decided: None,
        };
        let text = waiting(
            &[
                Waiting {
                    agent: "Agent-1".into(),
                    state: AgentState::NeedsApproval,
                    since: 60_000,
                    detail: Some("Bash: rm -rf build".into()),
                    prompts: vec![prompt.clone()],
                },
                Waiting {
                    agent: "Agent-2".into(),
                    state: AgentState::Done,
                    since: 300_000,
                    detail: Some("Deployed to staging.\nAll green.".into()),
                    prompts: vec![],
                },
            ],
            420_000,
        );
        assert_eq!(
            text,
            format!(
                "**2 waiting for a person**, longest first\n🔐 **Agent-1** needs approval, \
                 waiting 6 min\n  • Bash: rm -rf build (prompt `{}`, 6 min ago)\n✅ **Agent-2** \
                 done, waiting 2 min: Deployed to staging.",
                prompt.id
            )
        );
    }

    #[test]
    fn agents_render_as_an_embed_field_each() {
        let view = AgentView {
            id: "Agent-3".into(),
            name: "Agent-3".into(),
            role: "Database specialist".into(),
            role_source: "store",
            captain: true,
            workspace: "/w".into(),
            delivery: vec!["inbox".into()],
            last_state: Some(DeliveryState::Delivered),
            last_method: Some(MethodName::Inbox),
            last_delivery_at: None,
            unacked: 2,
            terminal: Some("busy".into()),
            node: Some("desk-2".into()),
            node_presence: Some("offline since 14:02".into()),
            pulse: Some("quiet for 42 min (last: a message from it), nudged at 14:02 UTC".into()),
        };
        let json = serde_json::to_value(agents(&[view])).unwrap();
        assert_eq!(json["title"], "Agents");
        assert_eq!(json["fields"][0]["name"], "Agent-3 ⭐ captain");
        assert_eq!(
            json["fields"][0]["value"],
            "Database specialist\nlast: delivered by inbox · unacked: 2 · tmux: busy\non desk-2: \
             offline since 14:02\n💤 quiet for 42 min (last: a message from it), nudged at 14:02 \
             UTC"
        );
        let empty = serde_json::to_value(agents(&[])).unwrap();
        assert!(
            empty["description"]
                .as_str()
                .unwrap()
                .contains("No agents configured")
        );
    }

    #[test]
    fn a_receipt_says_how_each_agent_got_it() {
        let message = crate::model::Draft {
            from: "discord:alice".into(),
            to: crate::model::Recipient::Broadcast,
            kind: crate::model::Kind::Broadcast,
            priority: crate::model::Priority::Urgent,
            body: "hi".into(),
            tags: vec![],
            reply_to: None,
        }
        .build(100)
        .unwrap();
        let delivered = DeliveryView {
            agent: "Agent-1".into(),
            state: DeliveryState::Delivered,
            method: Some(MethodName::Inbox),
            detail: None,
            attempts: 1,
            updated_at: 0,
            acked_by: None,
            acked_at: None,
            tried: vec![
                AttemptView {
                    attempt: 1,
                    method: MethodName::Gui,
                    outcome: AttemptOutcome::Failed(crate::model::FailureKind::Unavailable),
                    error: Some("no display".into()),
                    finished_at: 0,
                },
                AttemptView {
                    attempt: 1,
                    method: MethodName::Inbox,
                    outcome: AttemptOutcome::Ok,
                    error: None,
                    finished_at: 0,
                },
            ],
            node: None,
            waiting: None,
            seen_at: None,
        };
        let failed = DeliveryView {
            agent: "Agent-2".into(),
            state: DeliveryState::Failed,
            method: None,
            attempts: 5,
            tried: vec![],
            detail: Some("inbox: disk full".into()),
            ..delivered.clone()
        };
        // On several machines the receipt names the one that delivered,
        // and a machine that is away instead of "delivering".
        let remote = DeliveryView {
            agent: "Agent-3".into(),
            tried: vec![],
            node: Some("desk-2".into()),
            ..delivered.clone()
        };
        let away = DeliveryView {
            agent: "Agent-4".into(),
            state: DeliveryState::Delivering,
            method: None,
            tried: vec![],
            node: Some("desk-3".into()),
            waiting: Some("node desk-3 offline since 14:02".into()),
            ..delivered.clone()
        };
        let text = receipt(&message, &[remote, away]);
        assert!(
            text.contains("✅ Agent-3: delivered by inbox on desk-2"),
            "{text}"
        );
        assert!(
            text.contains("⏳ Agent-4: queued: node desk-3 offline since 14:02"),
            "{text}"
        );
        let text = receipt(&message, &[delivered, failed]);
        assert!(
            text.contains("✅ Agent-1: delivered by inbox after gui failed: no display"),
            "{text}"
        );
        assert!(
            text.contains("❌ Agent-2: failed after 5 attempt(s): inbox: disk full"),
            "{text}"
        );
    }
}
