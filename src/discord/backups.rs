//! `/backup create | list | verify | restore` (admin): long jobs, deferred,
//! with a progress line while the reply can be edited and the result
//! posted to the channel after that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use poise::CreateReply;
use poise::serenity_prelude as serenity;

use crate::app::{AppError, BackupKind, Pick, Progress, Which};
use crate::model::MessageId;

use super::commands::{actor, admin};
use super::{Context, Error, render};

/// Backups (admin): create, list, verify, restore.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("backup_create", "backup_list", "backup_verify", "backup_restore")
)]
#[expect(
    clippy::unused_async,
    reason = "poise needs a body for a parent command"
)]
pub(super) async fn backup(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
enum KindChoice {
    #[name = "incremental"]
    Incremental,
    #[name = "differential"]
    Differential,
    #[name = "full"]
    Full,
}

/// Counts bytes for the progress line of a running backup job.
#[derive(Default)]
struct Meter {
    phase: std::sync::Mutex<String>,
    total: AtomicU64,
    done: AtomicU64,
}

impl Progress for Meter {
    fn step(&self, phase: &str) {
        self.start(phase, 0);
    }
    fn start(&self, phase: &str, total: u64) {
        if let Ok(mut p) = self.phase.lock() {
            phase.clone_into(&mut p);
        }
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }
    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Meter {
    fn line(&self, title: &str) -> String {
        let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        let (done, total) = (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        if phase.is_empty() {
            return format!("⏳ {title}…");
        }
        if total == 0 {
            return format!("⏳ {title}: {phase}…");
        }
        format!(
            "⏳ {title}: {phase} {}% ({} of {})",
            done.saturating_mul(100) / total,
            indicatif::HumanBytes(done),
            indicatif::HumanBytes(total)
        )
    }
}

/// How often a running backup job's message shows its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Runs a backup job: defers, shows progress every few seconds, then the
/// result embed. Shortly before the receipt window closes (the interaction
/// token expires) a job still running says that its result will be posted
/// to the channel, and then it is.
async fn backup_job<T>(
    ctx: Context<'_>,
    title: &str,
    meter: Arc<Meter>,
    job: impl Future<Output = Result<T, AppError>>,
    render: impl FnOnce(&T) -> serenity::CreateEmbed,
) -> Result<(), Error> {
    ctx.defer().await?;
    let started = tokio::time::Instant::now();
    let window = ctx.data().app.config().discord.receipt_window;
    let handle = ctx
        .send(CreateReply::default().content(format!("⏳ {title}…")))
        .await?;
    let mut job = std::pin::pin!(job);
    let mut tick = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    // The last edit leaves a margin before the token expires.
    let handoff =
        tokio::time::sleep_until(started + window.saturating_sub(PROGRESS_EVERY.min(window / 4)));
    let mut handoff = std::pin::pin!(handoff);
    let mut handed_off = false;
    let result = loop {
        tokio::select! {
            result = &mut job => break result,
            _ = tick.tick(), if !handed_off => {
                let _ = handle.edit(ctx, CreateReply::default().content(meter.line(title))).await;
            }
            () = &mut handoff, if !handed_off => {
                handed_off = true;
                let text = format!("{}\n⏳ Still running: the result will be posted in this channel.", meter.line(title));
                let _ = handle.edit(ctx, CreateReply::default().content(text)).await;
            }
        }
    };
    let (content, embed) = match &result {
        Ok(value) => (String::new(), Some(render(value))),
        Err(e) if e.is_user_error() => (format!("⚠️ {title}: {e}"), None),
        Err(e) => {
            let reference = MessageId::generate();
            tracing::error!(%reference, error = %e, "{title} failed");
            (format!("❌ {title} failed (ref `{reference}`): {e}"), None)
        }
    };
    if handed_off {
        let mut message = serenity::CreateMessage::new()
            .content(format!("{title}: finished. {content}"))
            .allowed_mentions(super::no_mentions());
        if let Some(embed) = embed {
            message = message.embed(embed);
        }
        ctx.channel_id()
            .send_message(&ctx.serenity_context().http, message)
            .await?;
    } else {
        let mut reply = CreateReply::default().content(content);
        if let Some(embed) = embed {
            reply = reply.embed(embed);
        }
        handle.edit(ctx, reply).await?;
    }
    Ok(())
}

/// Take a backup now (admin).
#[poise::command(slash_command, guild_only, rename = "create", check = "admin")]
async fn backup_create(
    ctx: Context<'_>,
    #[description = "incremental (default), differential or full"] kind: Option<KindChoice>,
) -> Result<(), Error> {
    let kind = match kind {
        None | Some(KindChoice::Incremental) => BackupKind::Incremental,
        Some(KindChoice::Differential) => BackupKind::Differential,
        Some(KindChoice::Full) => BackupKind::Full,
    };
    let meter = Arc::new(Meter::default());
    let app = ctx.data().app.clone();
    let who = actor(ctx);
    backup_job(
        ctx,
        &format!("{kind} backup"),
        Arc::clone(&meter),
        app.backups().create(kind, &who, meter),
        render::backup_created,
    )
    .await
}

/// The newest backups (admin).
#[poise::command(slash_command, guild_only, rename = "list", check = "admin")]
async fn backup_list(ctx: Context<'_>) -> Result<(), Error> {
    let app = ctx.data().app.clone();
    let who = actor(ctx);
    backup_job(
        ctx,
        "Backup list",
        Arc::new(Meter::default()),
        app.backups().list(Some(&who)),
        render::backup_list,
    )
    .await
}

/// Re-read and re-hash backups and report damage (admin).
#[poise::command(slash_command, guild_only, rename = "verify", check = "admin")]
async fn backup_verify(
    ctx: Context<'_>,
    #[description = "A backup id or latest (default: every backup)"] id: Option<String>,
) -> Result<(), Error> {
    let which = id.map_or(Which::All, Which::One);
    let meter = Arc::new(Meter::default());
    let app = ctx.data().app.clone();
    let who = actor(ctx);
    backup_job(
        ctx,
        "Verify",
        Arc::clone(&meter),
        app.backups().verify(which, &who, meter),
        render::backup_verified,
    )
    .await
}

/// Restore a backup into a new directory on the machine, verified (admin).
#[poise::command(slash_command, guild_only, rename = "restore", check = "admin")]
async fn backup_restore(
    ctx: Context<'_>,
    #[description = "A backup id or latest"] id: String,
) -> Result<(), Error> {
    let app = ctx.data().app.clone();
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let safe: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(26)
        .collect();
    let dest = app
        .config()
        .root
        .join("restores")
        .join(format!("{safe}-{stamp}"));
    let meter = Arc::new(Meter::default());
    let who = actor(ctx);
    backup_job(
        ctx,
        "Restore",
        Arc::clone(&meter),
        app.backups()
            .restore_to(Pick::Id(id), dest, false, &who, meter),
        render::backup_restored,
    )
    .await
}
