//! Stored schedules: add, list, remove, pause, resume (audited), and the
//! loop `acp run` runs to fire them. Each firing is decided once in the
//! store (one row per schedule and due time) and a sent one is an ordinary
//! message stored in the same transaction, with its receipt and outcome.
//!
//! When `acp run` starts, the due times it was down for are recorded as
//! missed; a schedule with `catch_up` sends the newest of them once, now.
//!
//! A `wait` firing whose agent is busy at the due time is held (in memory
//! only: the firing is not decided yet) until the agent is idle, then
//! sent; still busy at the end of the schedule's window, or when its next
//! due time comes, it is recorded as skipped. If `acp run` stops while one
//! is held, the next start records it as missed, like any due time it was
//! not running for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{App, AppError, SendRequest, blocking};
use crate::model::schedule::{Cron, Firing, FiringOutcome, Schedule, WhenBusy};
use crate::model::{Draft, Kind, Priority, Recipient, Via};
use crate::store::{Submission, now_ms};

/// How late a due time may be seen, as `acp run` starts, and still be
/// fired rather than counted missed (a reload stops the loop a moment).
const GRACE: Duration = Duration::from_secs(2);
/// Most missed firings recorded one by one per schedule at a start.
const MISSED_MAX: usize = 100;
/// How often the loop looks for schedules added or changed by another
/// process, at the longest.
const RECHECK: Duration = Duration::from_secs(1);

/// A new schedule as a front door asks for it.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub cron: String,
    /// An agent, `all` (every agent) or `discord` (the swarm channel).
    pub to: String,
    pub body: String,
    pub priority: Priority,
    pub when_busy: WhenBusy,
    /// How long a `wait` firing waits for the agent to go idle; `None`:
    /// [`WAIT_DEFAULT`].
    pub wait: Option<Duration>,
    pub catch_up: bool,
}

/// How long a `wait` firing waits for a busy agent unless told otherwise.
pub const WAIT_DEFAULT: Duration = Duration::from_secs(600);

/// A schedule as `acp schedule list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    pub id: i64,
    pub cron: String,
    pub to: String,
    pub body: String,
    pub priority: String,
    pub when_busy: &'static str,
    /// How long a `wait` firing waits for the agent to go idle, in
    /// seconds.
    pub wait_secs: u64,
    pub catch_up: bool,
    pub paused: bool,
    /// The zone the expression is read in.
    pub time_zone: String,
    /// The last firing decided: its due time (RFC 3339, in the zone) and
    /// outcome.
    pub last: Option<FiringView>,
    /// The next due time (none while paused).
    pub next: Option<String>,
    /// The same, in milliseconds since the epoch.
    pub next_at: Option<i64>,
    /// Firings per outcome: sent, `caught_up`, skipped, missed, failed.
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// One firing, shown.
#[derive(Debug, Clone, Serialize)]
pub struct FiringView {
    /// The due time, in the schedule's zone.
    pub due: String,
    /// The same, in milliseconds since the epoch.
    pub due_at: i64,
    pub outcome: &'static str,
    pub message_id: Option<String>,
    pub detail: Option<String>,
}

impl App {
    /// The zone cron expressions are read in: `[schedules] time_zone`,
    /// else this machine's.
    #[must_use]
    pub fn schedule_zone(&self) -> TimeZone {
        self.config.schedules.zone()
    }

    fn zone_name(&self) -> String {
        self.schedule_zone()
            .iana_name()
            .unwrap_or("this machine's zone")
            .to_owned()
    }

    /// Stores a new schedule, audited as `by`; its id.
    ///
    /// # Errors
    /// [`AppError`]: a bad expression (with its position), an unknown
    /// agent, an empty text; or a store failure.
    pub async fn add_schedule(&self, new: NewSchedule, by: &str) -> Result<i64, AppError> {
        let cron = Cron::parse(&new.cron)?;
        let to = match new.to.as_str() {
            "all" | "*" => Recipient::Broadcast,
            "discord" => Recipient::Discord,
            agent => Recipient::Agent(self.registry.lookup(agent)?.id.clone()),
        };
        crate::model::check_body(&new.body, self.config.limits.max_body_bytes)?;
        let now = now_ms();
        let schedule = Schedule {
            id: 0,
            cron,
            to,
            body: new.body,
            priority: new.priority,
            when_busy: new.when_busy,
            wait: new.wait.unwrap_or(WAIT_DEFAULT),
            catch_up: new.catch_up,
            paused: false,
            created_by: by.to_owned(),
            created_at: now,
            from: now,
        };
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.add_schedule(&schedule)).await?)
    }

    /// Every schedule with its last and next firing.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn schedules(&self) -> Result<Vec<ScheduleView>, AppError> {
        let store = Arc::clone(&self.store);
        let zone = self.schedule_zone();
        let zone_name = self.zone_name();
        let rows = blocking(move || {
            let mut out = Vec::new();
            for s in store.schedules()? {
                let last = store.firings(s.id, 1)?.pop();
                let counts = store.firing_counts(s.id)?;
                out.push((s, last, counts));
            }
            Ok(out)
        })
        .await?;
        let now = Timestamp::now();
        let next = |s: &Schedule| (!s.paused).then(|| s.cron.next_after(now, &zone)).flatten();
        Ok(rows
            .into_iter()
            .map(|(s, last, counts)| ScheduleView {
                id: s.id,
                cron: s.cron.to_string(),
                to: match &s.to {
                    Recipient::Broadcast => "all".to_owned(),
                    Recipient::Discord => "discord".to_owned(),
                    other => other.as_text(),
                },
                body: s.body.clone(),
                priority: s.priority.as_str().to_owned(),
                when_busy: s.when_busy.as_str(),
                wait_secs: s.wait.as_secs(),
                catch_up: s.catch_up,
                paused: s.paused,
                time_zone: zone_name.clone(),
                last: last.map(|f| firing_view(&f, &zone)),
                next: next(&s).map(|t| shown(t, &zone)),
                next_at: next(&s).map(Timestamp::as_millisecond),
                counts: counts.into_iter().collect(),
            })
            .collect())
    }

    /// One schedule, as [`App::schedules`] shows it.
    ///
    /// # Errors
    /// [`AppError::NoSchedule`]; [`AppError::Store`].
    pub async fn schedule(&self, id: i64) -> Result<ScheduleView, AppError> {
        self.schedules()
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(AppError::NoSchedule(id))
    }

    /// A schedule's firings, newest first (a removed schedule's stay in
    /// the record).
    ///
    /// # Errors
    /// [`AppError::NoSchedule`] when there is no such schedule and none
    /// of its firings is recorded; [`AppError::Store`].
    pub async fn firings(&self, id: i64, limit: usize) -> Result<Vec<FiringView>, AppError> {
        let store = Arc::clone(&self.store);
        let zone = self.schedule_zone();
        let (firings, known) = blocking(move || {
            let firings = store.firings(id, limit)?;
            let known = !firings.is_empty()
                || store.last_due(id)?.is_some()
                || store.schedules()?.iter().any(|s| s.id == id);
            Ok((firings, known))
        })
        .await?;
        if !known {
            return Err(AppError::NoSchedule(id));
        }
        Ok(firings.iter().map(|f| firing_view(f, &zone)).collect())
    }

    /// Removes a schedule, audited.
    ///
    /// # Errors
    /// [`AppError`]: no such schedule, or a store failure.
    pub async fn remove_schedule(&self, id: i64, by: &str) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        let by = by.to_owned();
        found(id, blocking(move || store.remove_schedule(id, &by)).await?)
    }

    /// Pauses (or resumes) a schedule, audited. A resumed one counts its
    /// due times from now: none are missed while it was paused.
    ///
    /// # Errors
    /// [`AppError`]: no such schedule, or a store failure.
    pub async fn pause_schedule(&self, id: i64, paused: bool, by: &str) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        let by = by.to_owned();
        found(
            id,
            blocking(move || store.pause_schedule(id, paused, &by)).await?,
        )
    }

    /// Fires the stored schedules until `cancel`: what `acp run` does.
    /// First the due times it was down for are recorded missed (or caught
    /// up once); then each due time is fired as it comes.
    pub async fn run_schedules(self: Arc<Self>, cancel: CancellationToken) {
        let zone = self.schedule_zone();
        let started = Timestamp::now();
        let mut cursors: HashMap<i64, Timestamp> = HashMap::new();
        let mut held: HashMap<i64, Held> = HashMap::new();
        loop {
            let schedules = match self.stored_schedules().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the schedules; trying again");
                    Vec::new()
                }
            };
            cursors.retain(|id, _| schedules.iter().any(|s| s.id == *id && !s.paused));
            held.retain(|id, _| schedules.iter().any(|s| s.id == *id && !s.paused));
            let now = Timestamp::now();
            let mut wake = now + RECHECK;
            for s in schedules.iter().filter(|s| !s.paused) {
                let cursor = match cursors.get(&s.id) {
                    Some(c) => *c,
                    None => self.start_cursor(s, started, &zone, &mut held).await,
                };
                let (due, _) = s.cron.due_between(cursor, now, &zone, 1);
                if let Some(due) = due.last() {
                    if let Some(old) = held.remove(&s.id) {
                        let why =
                            format!("{} still busy when the next firing came", s.to.as_text());
                        self.decide_firing(s.id, old.due, FiringOutcome::Skipped(why), None)
                            .await;
                    }
                    if self.fire(s, *due, false).await == Fired::Held {
                        let h = Held {
                            due: *due,
                            since: now,
                            late: false,
                        };
                        held.insert(s.id, h);
                    }
                } else if let Some(h) = held.get(&s.id).copied() {
                    self.retry_held(s, h, now, &mut held).await;
                }
                cursors.insert(s.id, now.max(cursor));
                if let Some(next) = s.cron.next_after(now, &zone) {
                    wake = wake.min(next);
                }
            }
            let wait = now.duration_until(wake).unsigned_abs();
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Tries a held `wait` firing again: sent once the agent is idle,
    /// skipped when the window is over.
    async fn retry_held(
        &self,
        s: &Schedule,
        h: Held,
        now: Timestamp,
        held: &mut HashMap<i64, Held>,
    ) {
        if !self.busy(&s.to).await {
            held.remove(&s.id);
            self.send_firing(s, h.due, h.late).await;
        } else if now.duration_since(h.since).unsigned_abs() >= s.wait {
            held.remove(&s.id);
            let why = format!(
                "{} busy for the whole {} s window",
                s.to.as_text(),
                s.wait.as_secs()
            );
            self.decide_firing(s.id, h.due, FiringOutcome::Skipped(why), None)
                .await;
        }
    }

    async fn stored_schedules(&self) -> Result<Vec<Schedule>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.schedules()).await?)
    }

    /// Where the loop starts for a schedule it has not seen: after its
    /// newest decided firing (or when it was made or resumed). Due times
    /// from there to `started` less [`GRACE`] were missed: recorded so,
    /// the newest sent once now if the schedule catches up.
    async fn start_cursor(
        &self,
        s: &Schedule,
        started: Timestamp,
        zone: &TimeZone,
        held: &mut HashMap<i64, Held>,
    ) -> Timestamp {
        let store = Arc::clone(&self.store);
        let id = s.id;
        let last = blocking(move || store.last_due(id)).await.ok().flatten();
        let from = Timestamp::from_millisecond(last.unwrap_or(s.from).max(s.from))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let missed_until = started - GRACE;
        if from >= missed_until {
            return from;
        }
        let (missed, older) = s.cron.due_between(from, missed_until, zone, MISSED_MAX);
        if older > 0 {
            tracing::warn!(
                schedule = s.id,
                older,
                "more missed firings than are recorded one by one"
            );
        }
        let catch_up = s.catch_up.then(|| missed.last().copied()).flatten();
        for due in &missed {
            if Some(*due) == catch_up {
                if self.fire(s, *due, true).await == Fired::Held {
                    let h = Held {
                        due: *due,
                        since: Timestamp::now(),
                        late: true,
                    };
                    held.insert(s.id, h);
                }
            } else {
                self.decide_firing(s.id, *due, FiringOutcome::Missed, None)
                    .await;
            }
        }
        if !missed.is_empty() {
            tracing::warn!(
                schedule = s.id,
                missed = missed.len(),
                caught_up = catch_up.is_some(),
                "firings were due while acp run was down"
            );
        }
        missed_until
    }

    /// Fires `s` for `due`: when its agent is busy, skipped (`skip`) or
    /// held (`wait`); else sent (with the firing, in one transaction).
    async fn fire(&self, s: &Schedule, due: Timestamp, late: bool) -> Fired {
        if s.when_busy != WhenBusy::Deliver && self.busy(&s.to).await {
            if s.when_busy == WhenBusy::Wait {
                tracing::info!(
                    "schedule {}: {} is busy; waiting up to {} s for it to go idle",
                    s.id,
                    s.to.as_text(),
                    s.wait.as_secs()
                );
                return Fired::Held;
            }
            let why = format!("{} busy at the due time", s.to.as_text());
            self.decide_firing(s.id, due, FiringOutcome::Skipped(why), None)
                .await;
            return Fired::Decided;
        }
        self.send_firing(s, due, late).await;
        Fired::Decided
    }

    /// Sends a firing: its message stored with it in one transaction.
    async fn send_firing(&self, s: &Schedule, due: Timestamp, late: bool) {
        let draft = Draft {
            from: format!("schedule:{}", s.id),
            to: s.to.clone(),
            kind: if s.to == Recipient::Broadcast {
                Kind::Broadcast
            } else {
                Kind::System
            },
            priority: s.priority,
            body: s.body.clone(),
            tags: vec![format!("schedule-{}", s.id)],
            reply_to: None,
        };
        let via = if s.when_busy == WhenBusy::Deliver {
            // Straight to the file inbox: no waiting for a busy pane.
            Via::Only(crate::model::MethodName::Inbox)
        } else {
            Via::Auto
        };
        match self.checked(SendRequest { draft, via }).await {
            Ok((message, to)) => {
                let outcome = if late {
                    FiringOutcome::CaughtUp(message.id)
                } else {
                    FiringOutcome::Sent(message.id)
                };
                let deliveries = to.len();
                let submission = Submission {
                    message,
                    via,
                    to,
                    audit: None,
                };
                if self
                    .decide_firing(s.id, due, outcome, Some(submission.clone()))
                    .await
                {
                    self.accepted(&submission.message, deliveries);
                }
            }
            Err(e) => {
                tracing::warn!(schedule = s.id, error = %e, "a schedule could not be sent");
                self.decide_firing(s.id, due, FiringOutcome::Failed(e.to_string()), None)
                    .await;
            }
        }
    }

    /// Records a firing; whether this call decided it.
    async fn decide_firing(
        &self,
        id: i64,
        due: Timestamp,
        outcome: FiringOutcome,
        message: Option<Submission>,
    ) -> bool {
        let store = Arc::clone(&self.store);
        let due = due.as_millisecond();
        match blocking(move || store.decide_firing(id, due, &outcome, message.as_ref())).await {
            Ok(decided) => decided,
            Err(e) => {
                tracing::warn!(schedule = id, error = %e, "cannot record a firing");
                false
            }
        }
    }

    /// Whether an agent in tmux on this machine is busy now (its pane's
    /// idle pattern does not match); others are never busy here.
    async fn busy(&self, to: &Recipient) -> bool {
        let Recipient::Agent(id) = to else {
            return false;
        };
        let Some(tmux) = self.registry.get(id).ok().and_then(|a| a.tmux.clone()) else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            crate::delivery::tmux::inspect(&tmux)
                .ok()
                .is_some_and(|pane| {
                    matches!(crate::delivery::tmux::is_idle(&tmux, &pane.id), Ok(false))
                })
        })
        .await
        .unwrap_or(false)
    }
}

/// What [`App::fire`] did with a due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fired {
    /// Sent, skipped or failed: recorded in the store.
    Decided,
    /// A `wait` firing held for its busy agent.
    Held,
}

/// A `wait` firing held until its agent is idle: its due time, since when
/// it waits, and whether it is a missed one caught up.
#[derive(Debug, Clone, Copy)]
struct Held {
    due: Timestamp,
    since: Timestamp,
    late: bool,
}

fn found(id: i64, found: bool) -> Result<(), AppError> {
    if found {
        Ok(())
    } else {
        Err(AppError::NoSchedule(id))
    }
}

fn shown(t: Timestamp, zone: &TimeZone) -> String {
    t.to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn firing_view(f: &Firing, zone: &TimeZone) -> FiringView {
    FiringView {
        due: Timestamp::from_millisecond(f.due)
            .map_or_else(|_| f.due.to_string(), |t| shown(t, zone)),
        due_at: f.due,
        outcome: f.outcome.as_str(),
        message_id: f.outcome.message().map(|m| m.to_string()),
        detail: match &f.outcome {
            FiringOutcome::Failed(why) | FiringOutcome::Skipped(why) => Some(why.clone()),
            _ => None,
        },
    }
}
