//! Reading a durable pull consumer: messages are taken in groups (one
//! store transaction each), and each is acked only once its work is on
//! disk, so a crash at any point means a redelivery, never a loss.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::pull;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::Link;

/// Most messages handled in one group.
const GROUP_MAX: usize = 256;
/// The pause before binding again after the consumer failed.
const REBIND_PAUSE: Duration = Duration::from_secs(1);

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Its work is stored: ack it.
    Done,
    /// Refused for good (malformed, or not ours): it is not redelivered.
    Refused,
    /// Not stored (the store failed): redeliver it shortly.
    Later,
}

/// One message as a handler sees it: its subject and payload.
pub(crate) struct Item {
    pub subject: String,
    pub payload: bytes::Bytes,
}

/// Reads `consumer` on `stream` until `cancel`, handing each group of
/// ready messages to `handle`, which returns a verdict per message.
/// Binds again after any failure (NATS restarting, the consumer not there
/// yet), and says so once.
pub(crate) async fn consume<F, Fut>(
    link: &Link,
    stream: &str,
    consumer: &str,
    cancel: &CancellationToken,
    mut handle: F,
) where
    F: FnMut(Vec<Item>) -> Fut,
    Fut: Future<Output = Vec<Verdict>>,
{
    let mut complained = false;
    while !cancel.is_cancelled() {
        let bound = async {
            let c = link
                .js
                .get_consumer_from_stream::<pull::Config, _, _>(consumer, stream)
                .await
                .map_err(|e| e.to_string())?;
            c.messages().await.map_err(|e| e.to_string())
        };
        let mut messages = tokio::select! {
            () = cancel.cancelled() => return,
            bound = bound => match bound {
                Ok(m) => {
                    if complained {
                        tracing::info!(stream, consumer, "reading JetStream again");
                    }
                    complained = false;
                    m
                }
                Err(e) => {
                    if !complained {
                        tracing::warn!(stream, consumer, error = %e, "cannot read JetStream yet; trying again every second");
                        complained = true;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(REBIND_PAUSE) => continue,
                    }
                }
            },
        };
        loop {
            let first = tokio::select! {
                () = cancel.cancelled() => return,
                next = messages.next() => next,
            };
            let mut group = match first {
                Some(Ok(m)) => vec![m],
                Some(Err(e)) => {
                    tracing::debug!(stream, consumer, error = %e, "JetStream pull");
                    continue;
                }
                None => break,
            };
            while group.len() < GROUP_MAX {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => group.push(m),
                    _ => break,
                }
            }
            let items = group
                .iter()
                .map(|m| Item {
                    subject: m.subject.to_string(),
                    payload: m.payload.clone(),
                })
                .collect();
            let verdicts = handle(items).await;
            for (m, verdict) in group.iter().zip(verdicts) {
                let acked = match verdict {
                    Verdict::Done => m.ack().await,
                    Verdict::Refused => m.ack_with(AckKind::Term).await,
                    Verdict::Later => m.ack_with(AckKind::Nak(Some(REBIND_PAUSE))).await,
                };
                // A lost ack means a redelivery, which the store absorbs.
                if let Err(e) = acked {
                    tracing::debug!(error = %e, "JetStream ack not sent; it will be redelivered");
                }
            }
        }
    }
}
