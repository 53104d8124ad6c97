// Over 400 lines: one claim-try-record loop; its retry and fallback rules read best in one place.

//! The dispatcher: claims due deliveries in priority order, tries each
//! agent's methods in order, records every attempt, retries with backoff.
//!
//! Several dispatchers may share one store (the service, and a CLI process
//! delivering its own message when no service runs). Each holds a lease: an
//! OS lock on `data/dispatchers/<owner>.lock`. Deliveries claimed by an owner
//! whose lock is free (the process died) are put back in the queue, so a
//! SIGKILL mid-dispatch loses nothing; inbox delivery is idempotent per
//! message id, so resuming duplicates nothing.

use std::collections::BTreeMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::DeliveryConfig;
use crate::events::{Event, EventBus};
use crate::model::{Agent, Destination, MessageId, MethodName, NodeName, Registry};
use crate::store::{Claimed, Outcome, OutcomeState, Store, StoreError, TriedMethod, now_ms};

use super::lease::Lease;
use super::{Methods, Target};
use crate::model::{DeliveryError, FailureKind};

/// How often a running dispatcher looks for deliveries held by dead ones.
const RECLAIM_EVERY: Duration = Duration::from_secs(2);

/// What one pump did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PumpStats {
    pub claimed: usize,
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Handed to the machine that runs the agent.
    pub forwarded: usize,
    /// Claimed but left for later because of shutdown.
    pub released: usize,
}

/// Drives deliveries for one process.
pub struct Dispatcher {
    store: Arc<Store>,
    registry: Arc<Registry>,
    methods: Methods,
    config: DeliveryConfig,
    events: EventBus,
    lease: Lease,
    lease_dir: PathBuf,
    /// This machine, in a swarm of several, and whether it is the hub:
    /// agents of other machines are reached through the `cluster` method.
    /// The hub holds such a delivery until the agent's machine reports;
    /// a node's part ends when the hub has the message.
    local_node: Option<(NodeName, bool)>,
}

impl Dispatcher {
    /// A dispatcher over a store, taking a lease under `lease_dir`.
    ///
    /// # Errors
    /// I/O errors taking the lease.
    pub fn new(
        store: Arc<Store>,
        registry: Arc<Registry>,
        methods: Methods,
        config: DeliveryConfig,
        events: EventBus,
        lease_dir: &Path,
        local_node: Option<(NodeName, bool)>,
    ) -> io::Result<Self> {
        Ok(Self {
            lease: Lease::acquire(lease_dir)?,
            lease_dir: lease_dir.to_path_buf(),
            store,
            registry,
            methods,
            config,
            events,
            local_node,
        })
    }

    /// Puts deliveries held by dead dispatchers back in the queue. Returns
    /// how many were resumed.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn reclaim(&self) -> Result<usize, StoreError> {
        Lease::sweep(&self.lease_dir, self.lease.owner());
        let mut resumed = 0;
        for owner in self.store.claim_owners(self.lease.owner())? {
            if Lease::is_dead(&self.lease_dir, &owner) {
                let n = self.store.requeue_owner(&owner)?;
                if n > 0 {
                    tracing::warn!(
                        owner,
                        resumed = n,
                        "resuming deliveries left by a dispatcher that stopped mid-delivery"
                    );
                }
                resumed += n;
            }
        }
        Ok(resumed)
    }

    /// Claims one batch of due deliveries (only those of `only`'s messages,
    /// if given), delivers them and records the outcomes. Agents are served
    /// in parallel, each agent's deliveries in priority order.
    ///
    /// # Errors
    /// [`StoreError`] claiming or recording; claimed deliveries whose outcome
    /// could not be recorded are put back in the queue where possible.
    pub fn pump(
        &self,
        only: Option<&[MessageId]>,
        cancel: &CancellationToken,
    ) -> Result<PumpStats, StoreError> {
        let claimed = self.store.claim(
            self.lease.owner(),
            now_ms(),
            self.config.batch_size,
            only,
            self.posts_to_discord(),
        )?;
        let mut stats = PumpStats {
            claimed: claimed.len(),
            ..PumpStats::default()
        };
        if claimed.is_empty() {
            return Ok(stats);
        }
        let mut by_agent: BTreeMap<Destination, Vec<Claimed>> = BTreeMap::new();
        for c in claimed {
            by_agent.entry(c.to.clone()).or_default().push(c);
        }
        let mut outcomes = Vec::new();
        let mut released = Vec::new();
        let mut delivered_claims = Vec::new();
        std::thread::scope(|s| {
            let workers: Vec<_> = by_agent
                .into_values()
                .map(|queue| {
                    s.spawn(move || {
                        let mut done = Vec::new();
                        let mut left = Vec::new();
                        for c in queue {
                            if cancel.is_cancelled() {
                                left.push(c.delivery_id);
                            } else {
                                let outcome = self.deliver_one(&c);
                                done.push((c, outcome));
                            }
                        }
                        (done, left)
                    })
                })
                .collect();
            for w in workers {
                // deliver_one catches method panics, so a worker cannot panic.
                if let Ok((done, left)) = w.join() {
                    for (c, o) in done {
                        outcomes.push(o);
                        delivered_claims.push(c);
                    }
                    released.extend(left);
                }
            }
        });
        if let Err(e) = self.store.record(self.lease.owner(), &outcomes) {
            tracing::error!(error = %e, "cannot record delivery outcomes; they will be retried");
            let ids: Vec<i64> = outcomes
                .iter()
                .map(|o| o.delivery_id)
                .chain(released)
                .collect();
            let _ = self.store.release(self.lease.owner(), &ids);
            return Err(e);
        }
        if !released.is_empty() {
            self.store.release(self.lease.owner(), &released)?;
        }
        stats.released = released.len();
        self.publish(delivered_claims, outcomes, &mut stats);
        Ok(stats)
    }

    /// Tells the event bus what happened to each attempted delivery.
    fn publish(&self, claims: Vec<Claimed>, outcomes: Vec<Outcome>, stats: &mut PumpStats) {
        for (c, o) in claims.into_iter().zip(outcomes) {
            let (message_id, agent) = (c.message.id, c.to.clone());
            let event = match o.state {
                OutcomeState::Delivered { method, detail } => {
                    stats.delivered += 1;
                    tracing::info!(%message_id, %agent, %method, %detail, "delivered");
                    let fell_back = o
                        .tried
                        .into_iter()
                        .filter_map(|t| t.result.err().map(|e| (t.method, e.reason)))
                        .collect();
                    Event::Delivered {
                        message_id,
                        agent,
                        kind: c.message.kind,
                        method,
                        detail,
                        fell_back,
                    }
                }
                OutcomeState::Forwarded { node, detail } => {
                    stats.forwarded += 1;
                    tracing::debug!(%message_id, %agent, %node, %detail, "handed to its machine");
                    Event::Forwarded {
                        message_id,
                        agent,
                        node,
                    }
                }
                OutcomeState::Retry {
                    next_attempt_at,
                    error,
                } => {
                    stats.retrying += 1;
                    tracing::warn!(%message_id, %agent, attempt = c.attempts + 1, %error, "delivery failed; will retry");
                    Event::Retrying {
                        message_id,
                        agent,
                        attempt: c.attempts + 1,
                        next_attempt_at,
                        error,
                    }
                }
                OutcomeState::Failed { error } => {
                    stats.failed += 1;
                    tracing::error!(%message_id, %agent, attempts = c.attempts + 1, %error, "delivery failed for good");
                    Event::Failed {
                        message_id,
                        agent,
                        attempts: c.attempts + 1,
                        error,
                    }
                }
            };
            self.events.publish(event);
        }
    }

    /// The agent's machine, when it is not this one.
    fn elsewhere<'a>(&self, agent: &'a Agent) -> Option<&'a NodeName> {
        match (&self.local_node, &agent.node) {
            (Some((me, _)), Some(node)) if me != node => Some(node),
            _ => None,
        }
    }

    /// Whether this dispatcher posts to Discord (only `acp run` does).
    fn posts_to_discord(&self) -> bool {
        self.methods.get(MethodName::Discord).is_some()
    }

    /// Who a delivery is for and the methods to try, in order; the error
    /// when its agent is no longer configured.
    fn plan<'a>(&'a self, c: &'a Claimed) -> Result<(Target<'a>, Vec<MethodName>), String> {
        match &c.to {
            Destination::Discord => Ok((Target::Discord, vec![MethodName::Discord])),
            Destination::Person(name) => Ok((Target::Person(name), vec![MethodName::Person])),
            Destination::Agent(id) => match self.registry.get(id) {
                Ok(agent) if self.elsewhere(agent).is_some() => {
                    Ok((Target::Remote(agent, c.via), vec![MethodName::Cluster]))
                }
                Ok(agent) => Ok((Target::Agent(agent), c.via.methods_for(agent))),
                Err(e) => Err(format!(
                    "{e}; it was removed from config/acp.toml after the message was queued"
                )),
            },
        }
    }

    /// Where a delivery stands once a method took it: delivered, or, on the
    /// hub, held by the agent's machine until it reports.
    fn succeeded(&self, target: Target<'_>, method: MethodName, detail: String) -> OutcomeState {
        let hub = self.local_node.as_ref().is_some_and(|(_, hub)| *hub);
        let held_by = match target {
            Target::Remote(agent, _) if hub => self.elsewhere(agent),
            _ => None,
        };
        match held_by {
            Some(node) => OutcomeState::Forwarded {
                node: node.clone(),
                detail,
            },
            None => OutcomeState::Delivered { method, detail },
        }
    }

    /// One attempt at one delivery: every method in order until one works.
    fn deliver_one(&self, c: &Claimed) -> Outcome {
        // The budget and the backoff start again when a person retries it.
        let attempt = c.since_retry + 1;
        let (target, methods) = match self.plan(c) {
            Ok(plan) => plan,
            Err(error) => {
                return Outcome {
                    delivery_id: c.delivery_id,
                    tried: Vec::new(),
                    state: OutcomeState::Failed { error },
                };
            }
        };
        let mut tried = Vec::new();
        for name in methods {
            let started_at = now_ms();
            let result = match self.methods.get(name) {
                None => Err(DeliveryError::unavailable(format!(
                    "{name} delivery is not available in this acp process"
                ))),
                Some(method) => {
                    catch_unwind(AssertUnwindSafe(|| method.deliver(target, &c.message)))
                        .unwrap_or_else(|_| {
                            Err(DeliveryError::transient(format!(
                                "{name} delivery panicked (a bug: please report it)"
                            )))
                        })
                }
            };
            let ok = result.as_ref().ok().cloned();
            tried.push(TriedMethod {
                method: name,
                started_at,
                finished_at: now_ms(),
                result,
            });
            // A busy recipient is waited for, not gone around.
            if tried
                .last()
                .is_some_and(|t| matches!(&t.result, Err(e) if e.kind == FailureKind::Busy))
            {
                break;
            }
            if let Some(detail) = ok {
                let state = self.succeeded(target, name, detail);
                return Outcome {
                    delivery_id: c.delivery_id,
                    tried,
                    state,
                };
            }
        }
        let error = tried
            .iter()
            .filter_map(|t| {
                t.result
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {}", t.method, e.reason))
            })
            .collect::<Vec<_>>()
            .join("; ");
        let retryable = tried
            .iter()
            .any(|t| matches!(&t.result, Err(e) if e.kind == FailureKind::Transient));
        // A post waits for Discord as long as it takes: an outage or a
        // refused token is fixed sooner or later, and nothing is lost.
        // So does a machine, or NATS, that is away, and an answer to a
        // person whose inbox cannot be written yet.
        let max_attempts = match target {
            Target::Discord | Target::Remote(..) | Target::Person(_) => u32::MAX,
            Target::Agent(_) => self.config.max_attempts,
        };
        let asked = tried
            .iter()
            .filter_map(|t| t.result.as_ref().err().and_then(|e| e.retry_after))
            .max();
        let busy = tried
            .iter()
            .any(|t| matches!(&t.result, Err(e) if e.kind == FailureKind::Busy));
        // Out of open files or disk space: the machine recovers, and the
        // message is not to blame, so no attempt counts against it.
        let exhausted = tried
            .iter()
            .any(|t| matches!(&t.result, Err(e) if e.kind == FailureKind::Exhausted));
        let state = if busy || exhausted || (retryable && attempt < max_attempts) {
            let delay = asked.unwrap_or_else(|| backoff(&self.config, attempt));
            OutcomeState::Retry {
                next_attempt_at: now_ms()
                    + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
                error,
            }
        } else {
            OutcomeState::Failed { error }
        };
        Outcome {
            delivery_id: c.delivery_id,
            tried,
            state,
        }
    }

    /// Runs until `cancel`: pumps while there is work, otherwise sleeps until
    /// woken, the next retry is due, or the poll interval passes (work queued
    /// by other processes). Finishes the delivery in flight before returning.
    /// `beat` is set to the time of each round (readiness checks read it).
    pub async fn run(
        self: Arc<Self>,
        wake: Arc<Notify>,
        cancel: CancellationToken,
        beat: Arc<std::sync::atomic::AtomicI64>,
    ) {
        let mut last_reclaim: Option<Instant> = None;
        while !cancel.is_cancelled() {
            beat.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
            if last_reclaim.is_none_or(|t| t.elapsed() >= RECLAIM_EVERY) {
                let me = Arc::clone(&self);
                match tokio::task::spawn_blocking(move || me.reclaim()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot look for interrupted deliveries");
                    }
                    Err(e) => tracing::error!(error = %e, "reclaim task failed"),
                }
                last_reclaim = Some(Instant::now());
            }
            let me = Arc::clone(&self);
            let token = cancel.clone();
            let pumped = tokio::task::spawn_blocking(move || me.pump(None, &token)).await;
            let pause = match pumped {
                Ok(Ok(stats)) if stats.claimed > 0 => continue,
                Ok(Ok(_)) => self.idle_wait().await,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "dispatch failed; trying again shortly");
                    self.config.poll_interval.max(Duration::from_millis(500))
                }
                Err(e) => {
                    tracing::error!(error = %e, "dispatch task failed; trying again shortly");
                    self.config.poll_interval.max(Duration::from_millis(500))
                }
            };
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = cancel.cancelled() => break,
            }
        }
        beat.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    async fn idle_wait(&self) -> Duration {
        let store = Arc::clone(&self.store);
        let discord = self.posts_to_discord();
        let due = tokio::task::spawn_blocking(move || store.next_due(discord))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let poll = self.config.poll_interval;
        match due {
            Some(at) => {
                let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                poll.min(Duration::from_millis(wait))
            }
            None => poll,
        }
    }
}

/// The delay before retry number `attempt` (1-based): base × 2^(attempt−1),
/// at most the configured maximum.
#[must_use]
pub(crate) fn backoff(config: &DeliveryConfig, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    config
        .retry_base
        .saturating_mul(factor)
        .min(config.retry_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = DeliveryConfig {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..DeliveryConfig::default()
        };
        let delays: Vec<u128> = (1..=6).map(|n| backoff(&config, n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&config, u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn a_lease_is_alive_while_held_and_dead_after() {
        let tmp = tempfile::tempdir().unwrap();
        let lease = Lease::acquire(tmp.path()).unwrap();
        let owner = lease.owner().to_owned();
        assert!(!Lease::is_dead(tmp.path(), &owner));
        drop(lease);
        assert!(Lease::is_dead(tmp.path(), &owner));
        // A killed dispatcher leaves its file behind; a sweep removes it and
        // keeps the files of live ones.
        let live = Lease::acquire(tmp.path()).unwrap();
        std::fs::write(tmp.path().join(format!("{owner}.lock")), "").unwrap();
        Lease::sweep(tmp.path(), "someone-else");
        assert!(!tmp.path().join(format!("{owner}.lock")).exists());
        assert!(tmp.path().join(format!("{}.lock", live.owner())).exists());
        assert!(Lease::is_dead(tmp.path(), "../../etc/passwd"));
    }
}
