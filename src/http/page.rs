//! `/`: the status page. Server-rendered (maud, escaped), no CDN and no
//! script needed: it works offline and with JavaScript off. Agents waiting
//! for a person come first, above the rest; each agent's row shows its
//! state; the schedules follow the agents, missed firings marked. Below 600 px wide (a phone) the wide tables become cards, one
//! per row, and long words wrap: the page never scrolls sideways.
//!
//! Times are written in UTC as `<time datetime>`; with JavaScript on, the
//! page's script shows them in the viewer's zone (UTC stays in each one's
//! title) and re-fetches the page every 5 seconds, swapping its `<main>`
//! in place. The style and script are served beside the page
//! (`/status.css`, `/status.js`, from `assets/`), so the content security
//! policy allows no inline script or style at all.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::app::{AgentView, RecentDelivery, ScheduleView, StateRow, Status, Summary, Waiting};
use crate::model::attention::waited;
use crate::model::message::{PREVIEW_CHARS, preview};
use crate::model::{AgentState, DeliveryState, Priority};

use super::problem::Problem;
use super::{Http, chart};

/// The page's style and script, served beside it (`/status.css`,
/// `/status.js`).
const STYLE: &str = include_str!("assets/status.css");
const SCRIPT: &str = include_str!("assets/status.js");

/// A moment as the page shows it: `<time>` in UTC, which the script shows
/// in the viewer's zone, with UTC kept in its title for hovering.
fn at(ms: i64) -> Markup {
    let Ok(t) = jiff::Timestamp::from_millisecond(ms) else {
        return html! { (ms) };
    };
    let utc = t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(format!("{t:.0}")) title=(utc) { (utc) } }
}

fn state_class(state: Option<DeliveryState>) -> &'static str {
    match state {
        Some(DeliveryState::Delivered) => "pill ok",
        Some(DeliveryState::Failed) => "pill bad",
        Some(DeliveryState::Queued | DeliveryState::Delivering) => "pill warn",
        None => "pill",
    }
}

fn agent_state_class(state: AgentState) -> &'static str {
    match state {
        AgentState::Working | AgentState::Idle => "pill ok",
        AgentState::Unknown => "pill",
        AgentState::NeedsApproval | AgentState::Asking | AgentState::Done | AgentState::Exited => {
            "pill warn"
        }
    }
}

/// Agents waiting for a person, the longest waiting first: what the page
/// shows before anything else.
fn waiting(now: i64, waiting: &[Waiting]) -> Markup {
    html! {
        h2 { "Waiting for a person (" (waiting.len()) ")" }
        @if waiting.is_empty() { p.muted { "Nobody is waiting." } }
        @else {
            table.cards id="waiting" {
                thead { tr { th { "agent" } th { "state" } th { "since" } th { "what" } } }
                tbody { @for w in waiting {
                    tr {
                        td { b { (w.agent) } }
                        td data-label="state" { span class=(agent_state_class(w.state)) { (w.state) } }
                        td data-label="since" { (waited(now - w.since)) " " span.muted { "(" (at(w.since)) ")" } }
                        td data-label="what" {
                            @for p in &w.prompts { (p.summary) " " span.muted { "prompt " code { (p.id) } } br; }
                            @if w.prompts.is_empty() { (w.detail.as_deref().unwrap_or("")) }
                        }
                    }
                } }
            }
        }
    }
}

struct View {
    now: i64,
    waiting: Vec<Waiting>,
    states: Vec<StateRow>,
    status: Status,
    agents: Vec<AgentView>,
    recent: Vec<RecentDelivery>,
    per_minute: Vec<(i64, u64)>,
    backup: Option<Summary>,
    people: Vec<crate::app::PersonInbox>,
    schedules: Vec<ScheduleView>,
}

fn backup_line(http: &Http, backup: Option<&Summary>) -> Markup {
    let rpo = http.app.config().backup.rpo;
    match backup {
        None => html! { span.pill.bad { "no backup yet" } },
        Some(b) => {
            let taken = b.created_at.parse::<jiff::Timestamp>().ok();
            let age = taken.map_or(i64::MAX, |t| {
                jiff::Timestamp::now().as_second() - t.as_second()
            });
            let within = u64::try_from(age).is_ok_and(|a| a <= rpo.as_secs());
            html! {
                span class=(if within { "pill ok" } else { "pill bad" }) {
                    "last backup "
                    @match taken { Some(t) => (at(t.as_millisecond())), None => (b.created_at) }
                    " (" (b.kind) ")"
                    @if within { ", within the RPO" } @else { ", older than the RPO" }
                }
            }
        }
    }
}

/// One card per agent on a phone, a row each on a wider screen.
fn agents(v: &View) -> Markup {
    html! {
        table.cards id="agents" {
            thead { tr { th { "agent" } th { "state" } th { "role" } th { "last delivery" } th.n { "unacked" } th { "delivery" } } }
            tbody { @for a in &v.agents {
                @let state = v.states.iter().find(|s| s.agent == a.id);
                tr {
                    td { b { (a.id) } @if a.name != a.id { " " span.muted { (a.name) } }
                         @if a.captain { " " span.pill { "★ captain" } } }
                    td data-label="state" { @match state {
                        Some(s) if s.state != AgentState::Unknown => {
                            span class=(agent_state_class(s.state)) { (s.state) } " " span.muted { (waited(v.now - s.since)) }
                        }
                        _ => { span.pill { "unknown" } }
                    } }
                    td data-label="role" { (a.role) }
                    td data-label="last delivery" {
                        span class=(state_class(a.last_state)) { (a.last_delivery().unwrap_or_else(|| "none yet".into())) }
                        @if let Some(t) = a.last_delivery_at { " " span.muted { (at(t)) } } }
                    td.n data-label="unacked" { (a.unacked) }
                    td data-label="delivery" { (a.delivery.join(" → "))
                         @if let Some(t) = &a.terminal { " " span class=(if t == "idle" { "pill ok" } else { "pill warn" }) { "tmux: " (t) } }
                         @if let Some(n) = &a.node { " " span class=(if a.node_presence.as_deref().is_some_and(|p| p.starts_with("online")) { "pill ok" } else { "pill warn" })
                             title=(a.node_presence.as_deref().unwrap_or("not heard from")) { "on " (n) ": " (a.node_presence.as_deref().unwrap_or("not heard from")) } } }
                }
            } }
        }
    }
}

/// The newest deliveries, each with the start of its message.
fn recent(recent: &[RecentDelivery]) -> Markup {
    html! {
        table.cards id="recent" {
            thead { tr { th { "when" } th { "message" } th { "from → to" } th { "outcome" } } }
            tbody { @for d in recent {
                tr {
                    td.muted { (at(d.updated_at)) }
                    td data-label="message" { code { (d.message_id) } " " span.muted { (d.priority) }
                        div.body { (d.preview) } }
                    td data-label="from → to" { (d.from) " → " (d.agent) }
                    td data-label="outcome" {
                        span class=(state_class(Some(d.state))) { (d.state) @if let Some(m) = d.method { " by " (m) } }
                        @if let Some(detail) = &d.detail { " " span.muted { (detail) } } }
                }
            } }
        }
    }
}

/// An outcome of a firing as a pill: sent ones fine, skipped ones a
/// warning, missed and failed ones bad.
fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "sent" | "caught_up" => "pill ok",
        "skipped" => "pill warn",
        _ => "pill bad",
    }
}

/// The stored schedules: what each sends where, its last firing and the
/// next, and the firings missed while `acp run` was down.
fn schedules(schedules: &[ScheduleView]) -> Markup {
    html! {
        h2 { "Schedules (" (schedules.len()) ")" }
        @if schedules.is_empty() { p.muted { "None. Add one with " code { "acp schedule add" } "." } }
        @else {
            table.cards id="schedules" {
                thead { tr { th { "schedule" } th { "to" } th { "last" } th { "next" } th.n { "missed" } } }
                tbody { @for s in schedules {
                    @let missed = s.counts.get("missed").copied().unwrap_or(0);
                    tr {
                        td { code { (s.cron) } " " span.muted { (s.time_zone) }
                             @if s.paused { " " span.pill.warn { "paused" } }
                             div.body { (preview(&s.body, PREVIEW_CHARS, false)) } }
                        td data-label="to" { (s.to) }
                        td data-label="last" { @match &s.last {
                            Some(f) => { span class=(outcome_class(f.outcome)) { (f.outcome.replace('_', " ")) } " " (at(f.due_at))
                                @if let Some(why) = &f.detail { div.body { (preview(why, PREVIEW_CHARS, false)) } } }
                            None => { span.muted { "not yet" } }
                        } }
                        td data-label="next" { @match s.next_at { Some(t) => (at(t)), None => span.muted { "-" } } }
                        td.n data-label="missed" {
                            @if missed > 0 { span.pill.bad { (missed) " missed" } } @else { "0" } }
                    }
                } }
            }
        }
    }
}

fn failures(status: &Status) -> Markup {
    html! {
        h2 { "Failures (" (status.failed_total) ")" }
        @if status.recent_failures.is_empty() { p.muted { "None." } }
        @else {
            table.cards id="failures" {
                thead { tr { th { "when" } th { "message" } th { "agent" } th { "why" } } }
                tbody { @for f in &status.recent_failures {
                    tr { td.muted { (at(f.at)) } td data-label="message" { code { (f.message_id) } }
                         td data-label="agent" { (f.agent) }
                         td data-label="why" { (f.error) " " span.muted { "(" (f.attempts) " attempts)" } } }
                } }
            }
        }
    }
}

/// What the running service made of the config files on disk: refused
/// (it keeps the one before), or parts waiting for a restart.
fn config_line(http: &Http) -> Markup {
    let Some(state) = http.app.config_state() else {
        return html! {};
    };
    html! {
        @if let Some(refused) = &state.refused {
            p id="config-refused" {
                span.pill.bad { "Config refused" } " at " (at(refused.at)) ": " (refused.error)
                ". acp run keeps the one it loaded at " (at(state.loaded_at))
                "; fix the file and it is read again when saved."
            }
        }
        @if !state.restart_needed.is_empty() {
            p id="config-restart" {
                span.pill.warn { "Restart needed" } " for: " (state.restart_needed.join("; "))
            }
        }
    }
}

fn body(http: &Http, v: &View) -> Markup {
    let link = http.app.discord_link();
    html! {
        main {
            p.muted { "Updated " (at(v.now)) ". Uptime " (http.app.uptime().as_secs() / 60) " min. "
                "Times are in " span id="zone" { "UTC" } "." }
            p {
                span class=(if link == crate::app::DiscordLink::Connected { "pill ok" } else { "pill warn" }) {
                    "Discord: " (link.as_str())
                }
                " " (backup_line(http, v.backup.as_ref()))
            }
            (config_line(http))
            (waiting(v.now, &v.waiting))
            (super::people::section(&v.people, at))
            h2 { "Agents" }
            (agents(v))
            (schedules(&v.schedules))
            h2 { "Queue" }
            table id="queue" {
                thead { tr { th { "state" } @for p in Priority::ALL { th.n { (p) } } } }
                tbody { @for state in DeliveryState::ALL {
                    tr { td { (state) }
                        @for p in Priority::ALL {
                            td.n { (v.status.queue.get(&state).and_then(|m| m.get(&p)).copied().unwrap_or(0)) }
                        }
                    }
                } }
            }
            h2 { "Delivery rate" }
            (chart::deliveries(&v.per_minute))
            h2 { "Recent deliveries" }
            (recent(&v.recent))
            (failures(&v.status))
        }
    }
}

/// `GET /`.
pub(crate) async fn index(State(http): State<Http>) -> Result<Response, Problem> {
    let app = &http.app;
    let view = View {
        now: jiff::Timestamp::now().as_millisecond(),
        waiting: app.waiting().await?,
        states: app.agent_states().await?,
        status: app.status().await?,
        agents: app.agent_views().await?,
        recent: app.recent_deliveries(20).await?,
        per_minute: app.delivered_per_minute(60).await?,
        // A repository that cannot be read shows as no backup; `acp
        // doctor` says why.
        backup: app.backups().last().await.unwrap_or(None),
        people: app.people_inboxes(20).await?,
        schedules: app.schedules().await?,
    };
    let root = app.config().root.display().to_string();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "acp status" }
                link rel="stylesheet" href="/status.css";
            }
            body {
                header {
                    h1 { "acp status" }
                    span.muted { (root) }
                    " "
                    noscript { span.muted { "Reload the page to update it." } }
                }
                (body(&http, &view))
                script src="/status.js" {}
            }
        }
    };
    Ok(Html(page.into_string()).into_response())
}

/// `GET /status.css`.
pub(crate) async fn style() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLE,
    )
        .into_response()
}

/// `GET /status.js`.
pub(crate) async fn script() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        SCRIPT,
    )
        .into_response()
}
