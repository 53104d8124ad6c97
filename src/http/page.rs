//! `/`: the status page. Server-rendered (maud, escaped), no CDN and no
//! script needed: it works offline and with JavaScript off. Agents waiting
//! for a person come first, above the rest; each agent's row shows its
//! state. With
//! JavaScript on, a few lines re-fetch the page every 5 seconds and swap
//! its `<main>` in place. Its style and script are served beside it
//! (`/status.css`, `/status.js`), so the content security policy allows
//! no inline script or style at all.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::app::{AgentView, RecentDelivery, StateRow, Status, Summary, Waiting};
use crate::model::attention::waited;
use crate::model::{AgentState, DeliveryState, Priority};

use super::Http;
use super::problem::Problem;

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#1b1b1b}
header,main{max-width:70rem;margin:0 auto;padding:.6rem 1rem}
header{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:baseline}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.pill{padding:.1rem .5rem;border-radius:1rem;background:#e8e8e8;font-size:.85rem}
.ok{background:#d8f3dc}.warn{background:#fff3bf}.bad{background:#ffd6d6}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
th{font-weight:600;font-size:.85rem;color:#555}td.n{text-align:right}
code{font-size:.85em;word-break:break-all}.muted{color:#777}
svg{width:100%;height:7rem;background:#fff}rect{fill:#4c6ef5}
@media (prefers-color-scheme:dark){body{background:#16181c;color:#e6e6e6}table,svg{background:#1f2228}
th,td{border-color:#2c3038}.pill{background:#2c3038}.ok{background:#1f4d2b}.warn{background:#5c4b00}
.bad{background:#5c1f1f}}
";

/// Swaps in a fresh `<main>` every 5 seconds; without JavaScript the page
/// is simply what it was when loaded.
const REFRESH: &str = "setInterval(async()=>{try{const r=await fetch(location.href,{cache:'no-store'});\
if(!r.ok)return;const d=new DOMParser().parseFromString(await r.text(),'text/html');\
const m=d.querySelector('main');if(m)document.querySelector('main').replaceWith(m);\
document.body.dataset.refreshed=Date.now();}catch(e){}},5000);";

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| format!("{t:.0}"))
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
            div.scroll { table id="waiting" {
                tr { th { "agent" } th { "state" } th { "since" } th { "what" } }
                @for w in waiting {
                    tr {
                        td { b { (w.agent) } }
                        td { span class=(agent_state_class(w.state)) { (w.state) } }
                        td { (waited(now - w.since)) " " span.muted { "(" (time(w.since)) ")" } }
                        td {
                            @for p in &w.prompts { (p.summary) " " span.muted { "prompt " code { (p.id) } } br; }
                            @if w.prompts.is_empty() { (w.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
        }
    }
}

/// Deliveries per minute as bars, newest on the right.
fn chart(per_minute: &[(i64, u64)]) -> Markup {
    let max = per_minute.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let total: u64 = per_minute.iter().map(|(_, n)| n).sum();
    let mut bars = String::new();
    for (i, (minute, n)) in per_minute.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        #[expect(clippy::cast_precision_loss, reason = "counts per minute are small")]
        let height = (*n as f64 / max as f64) * 95.0;
        let _ = write!(
            bars,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"0.8\" height=\"{height:.1}\"><title>{}: {n}</title></rect>",
            i,
            100.0 - height,
            time(*minute)
        );
    }
    html! {
        figure id="rate" {
            svg viewBox=(format!("0 0 {} 100", per_minute.len().max(1))) preserveAspectRatio="none"
                role="img" aria-label=(format!("{total} deliveries in the last hour")) {
                (PreEscaped(bars))
            }
            figcaption.muted { (total) " deliveries in the last hour (busiest minute: " (max) ")" }
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
}

fn backup_line(http: &Http, backup: Option<&Summary>) -> Markup {
    let rpo = http.app.config().backup.rpo;
    match backup {
        None => html! { span.pill.bad { "no backup yet" } },
        Some(b) => {
            let age = b
                .created_at
                .parse::<jiff::Timestamp>()
                .map_or(i64::MAX, |t| {
                    jiff::Timestamp::now().as_second() - t.as_second()
                });
            let within = u64::try_from(age).is_ok_and(|a| a <= rpo.as_secs());
            html! {
                span class=(if within { "pill ok" } else { "pill bad" }) {
                    "last backup " (b.created_at) " (" (b.kind) ")"
                    @if within { ", within the RPO" } @else { ", older than the RPO" }
                }
            }
        }
    }
}

fn body(http: &Http, v: &View) -> Markup {
    let link = http.app.discord_link();
    html! {
        main {
            p.muted { "Updated " (time(jiff::Timestamp::now().as_millisecond())) ". Uptime "
                (http.app.uptime().as_secs() / 60) " min." }
            p {
                span class=(if link == crate::app::DiscordLink::Connected { "pill ok" } else { "pill warn" }) {
                    "Discord: " (link.as_str())
                }
                " " (backup_line(http, v.backup.as_ref()))
            }
            (waiting(v.now, &v.waiting))
            (super::people::section(&v.people, time))
            h2 { "Agents" }
            div.scroll { table id="agents" {
                tr { th { "agent" } th { "state" } th { "role" } th { "last delivery" } th.n { "unacked" } th { "delivery" } }
                @for a in &v.agents {
                    @let state = v.states.iter().find(|s| s.agent == a.id);
                    tr {
                        td { @if a.captain { "⭐ " } b { (a.id) } @if a.name != a.id { " " span.muted { (a.name) } } }
                        td { @match state {
                            Some(s) if s.state != AgentState::Unknown => {
                                span class=(agent_state_class(s.state)) { (s.state) } " " span.muted { (waited(v.now - s.since)) }
                            }
                            _ => { span.pill { "unknown" } }
                        } }
                        td { (a.role) }
                        td { span class=(state_class(a.last_state)) { (a.last_delivery().unwrap_or_else(|| "none yet".into())) }
                             @if let Some(at) = a.last_delivery_at { " " span.muted { (time(at)) } } }
                        td.n { (a.unacked) }
                        td { (a.delivery.join(" → "))
                             @if let Some(t) = &a.terminal { " " span class=(if t == "idle" { "pill ok" } else { "pill warn" }) { "tmux: " (t) } }
                             @if let Some(n) = &a.node { " " span class=(if a.node_presence.as_deref().is_some_and(|p| p.starts_with("online")) { "pill ok" } else { "pill warn" })
                                 title=(a.node_presence.as_deref().unwrap_or("not heard from")) { "on " (n) ": " (a.node_presence.as_deref().unwrap_or("not heard from")) } } }
                    }
                }
            } }
            h2 { "Queue" }
            div.scroll { table id="queue" {
                tr { th { "state" } @for p in Priority::ALL { th.n { (p) } } }
                @for state in DeliveryState::ALL {
                    tr { td { (state) }
                        @for p in Priority::ALL {
                            td.n { (v.status.queue.get(&state).and_then(|m| m.get(&p)).copied().unwrap_or(0)) }
                        }
                    }
                }
            } }
            h2 { "Deliveries per minute" }
            (chart(&v.per_minute))
            h2 { "Recent deliveries" }
            div.scroll { table id="recent" {
                tr { th { "when" } th { "message" } th { "from → to" } th { "outcome" } }
                @for d in &v.recent {
                    tr {
                        td.muted { (time(d.updated_at)) }
                        td { code { (d.message_id) } " " span.muted { (d.priority) } }
                        td { (d.from) " → " (d.agent) }
                        td { span class=(state_class(Some(d.state))) { (d.state) @if let Some(m) = d.method { " by " (m) } }
                             @if let Some(detail) = &d.detail { " " span.muted { (detail) } } }
                    }
                }
            } }
            h2 { "Failures (" (v.status.failed_total) ")" }
            @if v.status.recent_failures.is_empty() { p.muted { "None." } }
            @else {
                div.scroll { table id="failures" {
                    tr { th { "when" } th { "message" } th { "agent" } th { "why" } }
                    @for f in &v.status.recent_failures {
                        tr { td.muted { (time(f.at)) } td { code { (f.message_id) } } td { (f.agent) }
                             td { (f.error) " " span.muted { "(" (f.attempts) " attempts)" } } }
                    }
                } }
            }
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
        REFRESH,
    )
        .into_response()
}
