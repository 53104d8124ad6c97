//! `acp watch`: the swarm live in a terminal. It follows the store's
//! activity feed (written in commit order by every process: `acp run`,
//! other shells, the bot) from where it stood when the command started, or
//! from `--since` ago, looking for new rows every 200 ms. Each row is
//! printed once: the feed's numbers are never reused, and the next look
//! starts after the last number printed. It ends on SIGINT or SIGTERM,
//! and when whoever reads its output goes away.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use acp::app::{Activity, App, FEED_KEEP_MS, FeedEntry};

/// How often the feed is looked at.
const POLL: Duration = Duration::from_millis(200);
/// Most rows read at once.
const BATCH: usize = 500;

/// `acp watch [--since DURATION]`, until SIGINT or SIGTERM (exit 0), or
/// until whoever reads the output stops reading (exit 0).
pub(crate) async fn watch(app: &App, since: Option<Duration>, json_out: bool) -> Result<ExitCode> {
    // The signal handler first: from here on, Ctrl-C ends the loop
    // cleanly instead of killing the process mid-line.
    let stop = super::shutdown_signal();
    tokio::pin!(stop);
    let keep = Duration::from_millis(FEED_KEEP_MS.unsigned_abs());
    let mut cursor = match since {
        Some(ago) => app.activity_since(ago.min(keep)).await?,
        None => app.activity_head().await?,
    };
    eprintln!(
        "watching {} ({}); Ctrl-C to stop",
        app.config().root.display(),
        if since.is_some() {
            "replaying, then live"
        } else {
            "from now"
        }
    );
    loop {
        let rows = app.activity_after(cursor, BATCH).await?;
        for entry in &rows {
            if json_out {
                outln!("{}", serde_json::to_string(entry)?);
            } else {
                outln!("{}", line(entry));
            }
            cursor = entry.seq;
        }
        if rows.len() == BATCH {
            continue;
        }
        tokio::select! {
            () = &mut stop => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(POLL) => {}
        }
        if reader_gone() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// Whether whoever read the output has gone (the reading end of a pipe
/// closed, as when `| head` has its lines): looked at between looks at the
/// feed, so a quiet swarm does not keep the command waiting for a line to
/// fail on.
fn reader_gone() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let out = std::io::stdout();
    let mut fds = [PollFd::new(&out, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok_and(|n| n > 0)
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

/// One row as a line a person reads: local time, what, then the details.
fn line(entry: &FeedEntry) -> String {
    let time = jiff::Timestamp::from_millisecond(entry.at).map_or_else(
        |_| entry.at.to_string(),
        |t| {
            t.to_zoned_datetime(jiff::tz::TimeZone::system())
                .strftime("%H:%M:%S%.3f")
                .to_string()
        },
    );
    let (what, text) = describe(&entry.activity);
    format!("{time} {what:<9} {text}")
}

/// What happened, in a word, and its details.
fn describe(activity: &Activity) -> (&'static str, String) {
    match activity {
        Activity::Sent {
            message_id: id,
            from,
            to,
            kind,
            priority,
            reply_to,
            preview,
            ..
        } => {
            let what = match (reply_to, kind) {
                (Some(_), _) => "reply",
                (None, acp::model::Kind::Devlog) => "devlog",
                _ => "sent",
            };
            let answers = reply_to.map_or_else(String::new, |r| format!(" (answers {r})"));
            (
                what,
                format!("{id} {from} → {to}{answers} [{kind}, {priority}]: {preview}"),
            )
        }
        Activity::Delivered {
            message_id: id,
            to,
            method,
            detail,
            ..
        } => ("delivered", format!("{id} → {to} by {method} ({detail})")),
        Activity::Retrying {
            message_id: id,
            to,
            attempt,
            error,
        } => (
            "retrying",
            format!("{id} → {to} after attempt {attempt}: {error}"),
        ),
        Activity::Failed {
            message_id: id,
            to,
            attempts,
            error,
        } => (
            "FAILED",
            format!("{id} → {to} after {attempts} attempt(s): {error}"),
        ),
        Activity::Forwarded {
            message_id: id,
            to,
            node,
        } => ("forwarded", format!("{id} → {to} handed to {node}")),
        Activity::Acked {
            message_id: id,
            recipient,
            by,
        } => ("acked", format!("{id} for {recipient} by {by}")),
        other => describe_attention(other),
    }
}

/// Agents' states and prompts, in a word and their details.
fn describe_attention(activity: &Activity) -> (&'static str, String) {
    match activity {
        Activity::AgentState {
            agent,
            state,
            evidence,
            detail,
        } => {
            let said = detail
                .as_deref()
                .map(|d| format!(": {}", d.lines().next().unwrap_or("")))
                .unwrap_or_default();
            ("state", format!("{agent} is {state} ({evidence}){said}"))
        }
        Activity::PromptRaised {
            prompt_id,
            agent,
            summary,
        } => ("prompt", format!("{prompt_id} {agent} asks: {summary}")),
        Activity::PromptDecided {
            prompt_id,
            agent,
            decision,
            by,
        } => (
            "decided",
            format!("{prompt_id} {agent}: {} by {by}", decision.said()),
        ),
        _ => ("?", "(written by a newer acp)".to_owned()),
    }
}
