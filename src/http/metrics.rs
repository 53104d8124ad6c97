//! `/metrics` (the `prometheus-client` crate): in OpenMetrics for a
//! scraper that asks for it in its `Accept` header (Prometheus does), in
//! the Prometheus text format 0.0.4 for any other (`curl`, `promtool`,
//! older scrapers).
//!
//! Counters and histograms follow the event bus: a task of the server
//! reads every event and counts it. The queue depth is read from the store
//! every few seconds by that task (deliveries by other processes send no
//! events here), never on a scrape; so are prompts, which `acp hook` and
//! `acp approve` raise and decide in processes of their own (an event here
//! only makes the task look sooner). Process memory and CPU are read from
//! `/proc` when scraped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::app::{App, Event};
use crate::model::{Decision, DeliveryState, Destination, Kind, PromptId};

use super::Http;

/// How often the queue depth is read from the store.
const QUEUE_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Accepted {
    kind: String,
    priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    method: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State_ {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandOutcome {
    door: String,
    command: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandName {
    door: String,
    command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// How far back each look at the prompts reaches past the last one: a
/// decision's time is taken before its write waits for the store's lock
/// (at most 30 s), so it can be committed with a time already passed.
const PROMPTS_SLACK_MS: i64 = 60_000;

/// The prompts already counted, by the time that counted them: those
/// older than the look-back window are forgotten.
#[derive(Default)]
struct PromptsSeen {
    /// Look at prompts raised or decided from here on (0: every one).
    since: i64,
    raised: HashMap<PromptId, i64>,
    decided: HashMap<PromptId, i64>,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every series, registered once.
pub(crate) struct Metrics {
    registry: Registry,
    accepted: Family<Accepted, Counter>,
    deliveries: Family<Outcome, Counter>,
    delivery_seconds: Histograms<Method>,
    queue: Family<State_, Gauge>,
    commands: Family<CommandOutcome, Counter>,
    command_seconds: Histograms<CommandName>,
    backups: Family<OutcomeLabel, Counter>,
    backup_age: Gauge<f64, AtomicU64>,
    backup_bytes: Gauge,
    backup_seconds: Gauge<f64, AtomicU64>,
    devlog_posts: Counter,
    prompts: Family<OutcomeLabel, Counter>,
    prompt_seconds: Histogram,
    prompts_seen: tokio::sync::Mutex<PromptsSeen>,
    rss: Gauge,
    cpu: Counter<f64, AtomicU64>,
    cpu_seen: std::sync::Mutex<f64>,
    uptime: Gauge<f64, AtomicU64>,
    /// When the newest backup was taken (ms since the epoch; 0: none).
    last_backup_ms: AtomicI64,
}

impl Metrics {
    /// Registers every series and reads what the store already knows (the
    /// queue, the last backup).
    pub(crate) async fn new(app: &App) -> Self {
        let mut registry = Registry::default();
        let m = Self {
            accepted: Family::default(),
            deliveries: Family::default(),
            delivery_seconds: Family::new_with_constructor(latency),
            queue: Family::default(),
            commands: Family::default(),
            command_seconds: Family::new_with_constructor(latency),
            backups: Family::default(),
            backup_age: Gauge::default(),
            backup_bytes: Gauge::default(),
            backup_seconds: Gauge::default(),
            devlog_posts: Counter::default(),
            prompts: Family::default(),
            // 1 s to about 4.5 h.
            prompt_seconds: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
            prompts_seen: tokio::sync::Mutex::new(PromptsSeen::default()),
            rss: Gauge::default(),
            cpu: Counter::default(),
            cpu_seen: std::sync::Mutex::new(0.0),
            uptime: Gauge::default(),
            last_backup_ms: AtomicI64::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "acp_messages_accepted",
            "Messages stored, by kind and priority",
            m.accepted.clone(),
        );
        registry.register(
            "acp_deliveries",
            "Delivery attempts' outcomes (delivered, retrying, failed), by method",
            m.deliveries.clone(),
        );
        registry.register(
            "acp_delivery_latency_seconds",
            "From a message's creation to its delivery, by method",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "acp_queue_depth",
            "Deliveries by state, read from the store every 5 s",
            m.queue.clone(),
        );
        registry.register(
            "acp_commands",
            "Commands finished by the Discord and HTTP doors, by outcome",
            m.commands.clone(),
        );
        registry.register(
            "acp_command_duration_seconds",
            "How long the Discord and HTTP doors took per command",
            m.command_seconds.clone(),
        );
        registry.register("acp_backups", "Backups taken or failed", m.backups.clone());
        registry.register(
            "acp_backup_age_seconds",
            "Age of the newest backup (-1: none)",
            m.backup_age.clone(),
        );
        registry.register(
            "acp_backup_size_bytes",
            "Bytes the newest backup restores",
            m.backup_bytes.clone(),
        );
        registry.register(
            "acp_backup_duration_seconds",
            "How long the newest backup took",
            m.backup_seconds.clone(),
        );
        registry.register(
            "acp_devlog_posts",
            "Devlogs posted to Discord",
            m.devlog_posts.clone(),
        );
        m.register_prompts(&mut registry);
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of acp run",
            m.rss.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "CPU time acp run used (user and system)",
            m.cpu.clone(),
        );
        registry.register(
            "acp_uptime_seconds",
            "How long acp run has been up",
            m.uptime.clone(),
        );
        m.read_last_backup(app).await;
        m.refresh_queue(app).await;
        m.refresh_prompts(app).await;
        Self { registry, ..m }
    }

    /// Counts prompts raised and decided since the last look, from the
    /// store (every one in it on the first look).
    async fn refresh_prompts(&self, app: &App) {
        let mut seen = self.prompts_seen.lock().await;
        let now = jiff::Timestamp::now().as_millisecond();
        let times = match app.prompt_times(seen.since).await {
            Ok(times) => times,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read prompts for the metrics; trying again");
                return;
            }
        };
        let since = seen.since;
        for p in times {
            if p.created_at >= since && seen.raised.insert(p.id, p.created_at).is_none() {
                self.prompts
                    .get_or_create(&OutcomeLabel {
                        outcome: "raised".into(),
                    })
                    .inc();
            }
            if let Some((decision, at)) = p.decided
                && at >= since
                && seen.decided.insert(p.id, at).is_none()
            {
                self.prompts
                    .get_or_create(&OutcomeLabel {
                        outcome: decision.as_str().into(),
                    })
                    .inc();
                if decision != Decision::Expired {
                    let ms = u64::try_from(at - p.created_at).unwrap_or(0);
                    self.prompt_seconds
                        .observe(Duration::from_millis(ms).as_secs_f64());
                }
            }
        }
        let next = now - PROMPTS_SLACK_MS;
        seen.raised.retain(|_, at| *at >= next);
        seen.decided.retain(|_, at| *at >= next);
        seen.since = next.max(since);
    }

    /// The newest backup's time, size and duration, from the repository.
    async fn read_last_backup(&self, app: &App) {
        if let Ok(Some(last)) = app.backups().last().await {
            if let Ok(at) = last.created_at.parse::<jiff::Timestamp>() {
                self.last_backup_ms
                    .store(at.as_millisecond(), Ordering::Relaxed);
            }
            self.backup_bytes
                .set(i64::try_from(last.stats.total_bytes).unwrap_or(i64::MAX));
            self.backup_seconds
                .set(Duration::from_millis(last.stats.duration_ms).as_secs_f64());
        }
    }

    /// `acp_prompts_total` and `acp_prompt_answer_seconds`.
    fn register_prompts(&self, registry: &mut Registry) {
        registry.register(
            "acp_prompts",
            "Prompts agents raised for a person (outcome raised), and how each ended: allow, \
             allow_session, deny, at_terminal (answered at the agent's terminal), expired",
            self.prompts.clone(),
        );
        registry.register(
            "acp_prompt_answer_seconds",
            "From a prompt's raising to its answer (allow, allow_session, deny, at_terminal; an \
             expired prompt got none)",
            self.prompt_seconds.clone(),
        );
        // Every outcome from zero, so a rate over them starts at the first
        // prompt.
        for outcome in std::iter::once("raised").chain(Decision::ALL.map(Decision::as_str)) {
            self.prompts
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.into(),
                })
                .inc_by(0);
        }
    }

    async fn refresh_queue(&self, app: &App) {
        let Ok(status) = app.status().await else {
            return;
        };
        for state in DeliveryState::ALL {
            let n: u64 = status
                .queue
                .get(&state)
                .map_or(0, |by_priority| by_priority.values().sum());
            self.queue
                .get_or_create(&State_ {
                    state: state.to_string(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts one event.
    fn count(&self, event: &Event) {
        match event {
            Event::Accepted { kind, priority, .. } => {
                self.accepted
                    .get_or_create(&Accepted {
                        kind: kind.to_string(),
                        priority: priority.to_string(),
                    })
                    .inc();
            }
            Event::Delivered {
                message_id,
                agent,
                kind,
                method,
                ..
            } => {
                let method = method.to_string();
                self.deliveries
                    .get_or_create(&Outcome {
                        method: method.clone(),
                        outcome: "delivered".into(),
                    })
                    .inc();
                let age_ms = jiff::Timestamp::now()
                    .as_millisecond()
                    .saturating_sub(i64::try_from(message_id.timestamp_ms()).unwrap_or(0));
                self.delivery_seconds
                    .get_or_create(&Method { method })
                    .observe(
                        Duration::from_millis(u64::try_from(age_ms).unwrap_or(0)).as_secs_f64(),
                    );
                if *agent == Destination::Discord && *kind == Kind::Devlog {
                    self.devlog_posts.inc();
                }
            }
            Event::Forwarded { .. } => {
                self.deliveries
                    .get_or_create(&Outcome {
                        method: "cluster".into(),
                        outcome: "forwarded".into(),
                    })
                    .inc();
            }
            Event::Retrying { .. } | Event::Failed { .. } => {
                let outcome = if matches!(event, Event::Failed { .. }) {
                    "failed"
                } else {
                    "retrying"
                };
                self.deliveries
                    .get_or_create(&Outcome {
                        method: "any".into(),
                        outcome: outcome.into(),
                    })
                    .inc();
            }
            Event::Command { door, name, ok, ms } => {
                self.commands
                    .get_or_create(&CommandOutcome {
                        door: (*door).to_owned(),
                        command: name.clone(),
                        outcome: if *ok { "ok" } else { "error" }.to_owned(),
                    })
                    .inc();
                self.command_seconds
                    .get_or_create(&CommandName {
                        door: (*door).to_owned(),
                        command: name.clone(),
                    })
                    .observe(Duration::from_millis(*ms).as_secs_f64());
            }
            Event::BackupTaken {
                bytes, duration_ms, ..
            } => {
                self.backups
                    .get_or_create(&OutcomeLabel {
                        outcome: "ok".into(),
                    })
                    .inc();
                self.last_backup_ms
                    .store(jiff::Timestamp::now().as_millisecond(), Ordering::Relaxed);
                self.backup_bytes
                    .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
                self.backup_seconds
                    .set(Duration::from_millis(*duration_ms).as_secs_f64());
            }
            Event::BackupFailed { .. } => {
                self.backups
                    .get_or_create(&OutcomeLabel {
                        outcome: "failed".into(),
                    })
                    .inc();
            }
            // Prompts are counted from the store (see refresh_prompts).
            Event::Acked { .. }
            | Event::ReceiptOwed { .. }
            | Event::AgentState { .. }
            | Event::PromptRaised { .. }
            | Event::PromptDecided { .. } => {}
        }
    }

    /// Follows the event bus (and the store's queue every few seconds)
    /// until `cancel`.
    pub(crate) async fn follow(self: Arc<Self>, app: Arc<App>, cancel: CancellationToken) {
        let mut events = app.events().subscribe();
        let mut tick = tokio::time::interval(QUEUE_EVERY);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                event = events.recv() => match event {
                    Ok(event @ (Event::PromptRaised { .. } | Event::PromptDecided { .. })) => {
                        self.count(&event);
                        self.refresh_prompts(&app).await;
                    }
                    Ok(event) => self.count(&event),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "the metrics fell behind the event bus; counts are low by that many");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    self.refresh_queue(&app).await;
                    self.refresh_prompts(&app).await;
                }
            }
        }
    }

    /// Reads the process's memory and CPU time from `/proc`.
    fn read_process(&self, app: &App) {
        self.uptime.set(app.uptime().as_secs_f64());
        let age = match self.last_backup_ms.load(Ordering::Relaxed) {
            0 => -1.0,
            at => Duration::from_millis(
                u64::try_from(jiff::Timestamp::now().as_millisecond() - at).unwrap_or(0),
            )
            .as_secs_f64(),
        };
        self.backup_age.set(age);
        let page = u64::try_from(rustix::param::page_size()).unwrap_or(4096);
        if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        {
            self.rss
                .set(i64::try_from(pages * page).unwrap_or(i64::MAX));
        }
        let ticks = rustix::param::clock_ticks_per_second();
        if let Some(cpu) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                // Fields after the command name, which may hold spaces.
                let rest = s.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let user: u64 = fields.get(11)?.parse().ok()?;
                let system: u64 = fields.get(12)?.parse().ok()?;
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "CPU ticks fit in f64 for centuries"
                )]
                Some((user + system) as f64 / ticks as f64)
            })
        {
            let mut seen = self
                .cpu_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if cpu > *seen {
                self.cpu.inc_by(cpu - *seen);
                *seen = cpu;
            }
        }
    }

    /// The exposition, in `format`.
    fn encode(&self, app: &App, format: Format) -> String {
        self.read_process(app);
        let mut out = String::new();
        let encoded = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
        if let Err(e) = encoded {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// The two expositions `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text`, ends in `# EOF`).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`).
    Prometheus,
}

impl Format {
    /// OpenMetrics when `accept` asks for it at least as much as for
    /// plain text; the Prometheus text format otherwise (no header, `*/*`).
    fn from_accept(accept: Option<&str>) -> Self {
        let mut openmetrics = 0.0_f32;
        let mut text = 0.0_f32;
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(http): State<Http>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = http.metrics.encode(&http.app, format);
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn openmetrics_only_for_a_scraper_that_asks_for_it() {
        // What Prometheus sends by default.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::from_accept(Some("Application/OpenMetrics-Text; version=1.0.0")),
            Format::OpenMetrics
        );
        for plain in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
            Some("application/json"),
        ] {
            assert_eq!(Format::from_accept(plain), Format::Prometheus, "{plain:?}");
        }
    }
}
