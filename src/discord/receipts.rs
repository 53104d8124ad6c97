//! The receipts Discord commands owe, answered from the store.
//!
//! `/message` and `/broadcast` record the receipt they owe (the reply's
//! channel, message and interaction token) and return. This task reads
//! the owed receipts from the store, wakes on the pipeline's events (and
//! looks again every second while any is owed, for deliveries made by
//! another process), and answers each once its deliveries are final: by
//! editing the reply while Discord's 15-minute token lasts, by a message in
//! the channel after that. A restart loses nothing: the next `acp run` or
//! `acp bot` finds the receipts still owed.

use std::sync::Arc;
use std::time::Duration;

use poise::serenity_prelude as serenity;
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppError, DeliveryView, Receipt, ReceiptState};

use super::render;

/// How long Discord accepts edits with an interaction token (15 minutes),
/// less a margin for clocks and latency.
const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60 + 30);
/// Past this, a receipt is given up on; the outcome stays in `acp status`.
const LATE_RECEIPT_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// How often owed receipts are looked at without an event (deliveries by
/// another process send no events here).
const POLL: Duration = Duration::from_secs(1);
/// The pause after Discord or the store failed.
const AFTER_ERROR: Duration = Duration::from_secs(2);

fn age_of(receipt: &Receipt) -> Duration {
    let ms = jiff::Timestamp::now()
        .as_millisecond()
        .saturating_sub(receipt.asked_at);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Edits the command's reply.
async fn edit(http: &serenity::Http, r: &Receipt, text: String) -> Result<(), serenity::Error> {
    http.set_application_id(serenity::ApplicationId::new(r.application_id));
    if let (true, Some(id)) = (r.followup, r.reply_id) {
        let builder = serenity::CreateInteractionResponseFollowup::new()
            .content(text)
            .allowed_mentions(super::no_mentions());
        http.edit_followup_message(&r.token, serenity::MessageId::new(id), &builder, vec![])
            .await?;
    } else {
        let builder = serenity::EditInteractionResponse::new()
            .content(text)
            .allowed_mentions(super::no_mentions());
        http.edit_original_interaction_response(&r.token, &builder, vec![])
            .await?;
    }
    Ok(())
}

/// Posts the final receipt in the channel, as a reply to the command's
/// reply, with a nonce so a retry after a crash does not post it twice.
/// The nonce counts the attempts made: a delivery a person queued again
/// (`acp retry`) ends with more, and its new receipt is posted too.
async fn post(
    http: &serenity::Http,
    r: &Receipt,
    attempts: u32,
    text: String,
) -> Result<(), serenity::Error> {
    let channel = serenity::ChannelId::new(r.channel_id);
    let nonce = blake3::hash(format!("receipt/{}/{attempts}", r.message_id).as_bytes()).to_hex()
        [..25]
        .to_owned();
    let mut builder = serenity::CreateMessage::new()
        .content(text)
        .nonce(serenity::Nonce::String(nonce))
        .enforce_nonce(true)
        .allowed_mentions(super::no_mentions());
    if let Some(reply) = r.reply_id {
        builder = builder.reference_message((channel, serenity::MessageId::new(reply)));
    }
    channel.send_message(http, builder).await?;
    Ok(())
}

/// Answers one receipt if it is due. Returns when to look at it again
/// without an event, if it is still owed.
async fn settle(
    app: &App,
    http: &serenity::Http,
    r: &Receipt,
) -> Result<Option<Duration>, anyhow::Error> {
    let (message, deliveries) = match app.read(r.message_id).await {
        Ok(found) => found,
        Err(AppError::NotFound(_)) => {
            // The store was restored to before the message: nothing to say.
            app.settle_receipt(r.message_id, ReceiptState::Done).await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let done = deliveries.iter().all(DeliveryView::is_final);
    let age = age_of(r);
    let window = app.config().discord.receipt_window.min(TOKEN_LIFETIME);
    if done {
        let text = render::receipt(&message, &deliveries);
        let edited = r.state == ReceiptState::Owed
            && age < TOKEN_LIFETIME
            && match edit(http, r, text).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(message = %r.message_id, error = %e, "cannot edit the receipt; posting it in the channel");
                    false
                }
            };
        if !edited {
            let attempts = deliveries.iter().map(|d| d.attempts).sum();
            post(
                http,
                r,
                attempts,
                render::late_receipt(&message, &deliveries),
            )
            .await?;
        }
        app.settle_receipt(r.message_id, ReceiptState::Done).await?;
        return Ok(None);
    }
    if age >= LATE_RECEIPT_LIMIT {
        tracing::warn!(message = %r.message_id, "gave up on a receipt after 24 hours; the outcome is in acp status");
        app.settle_receipt(r.message_id, ReceiptState::Done).await?;
        return Ok(None);
    }
    if r.state == ReceiptState::Owed {
        if age >= window {
            let mut text = render::receipt(&message, &deliveries);
            text.push_str(
                "\n⏳ Still in progress: the final receipt will be posted in this channel.",
            );
            if let Err(e) = edit(http, r, text).await {
                tracing::warn!(message = %r.message_id, error = %e, "cannot say the receipt is late");
            }
            app.settle_receipt(r.message_id, ReceiptState::Late).await?;
        } else {
            return Ok(Some(window.saturating_sub(age).min(POLL)));
        }
    }
    Ok(Some(POLL))
}

/// The sooner of two optional pauses.
fn sooner(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Answers owed receipts until `cancel`.
pub(super) async fn answer(app: Arc<App>, http: Arc<serenity::Http>, cancel: CancellationToken) {
    let mut events = app.events().subscribe();
    loop {
        let mut pause: Option<Duration> = None;
        match app.receipts_owed().await {
            Ok(owed) => {
                for r in &owed {
                    match settle(&app, &http, r).await {
                        Ok(next) => pause = sooner(pause, next),
                        Err(e) => {
                            tracing::warn!(message = %r.message_id, error = format!("{e:#}"), "cannot answer a receipt yet");
                            pause = sooner(pause, Some(AFTER_ERROR));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the receipts owed");
                pause = Some(AFTER_ERROR);
            }
        }
        let sleep = async {
            match pause {
                Some(p) => tokio::time::sleep(p).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            // Any message event may finish a receipt, or owe a new one.
            _ = events.recv() => {}
            () = sleep => {}
        }
    }
}
