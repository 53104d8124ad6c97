//! People's inboxes over HTTP: a token's holder is the person the token
//! names (`person:NAME`), who sends as that person by default and reads
//! and acknowledges the answers in their inbox. Another person's inbox
//! needs the admin scope; a token bound to an agent has no person's inbox.
//! The status page shows every person's inbox too ([`section`]).

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::json;

use crate::app::{PersonInbox, Scope};
use crate::model::{DeliveryState, MessageId, PersonName};

use super::api::InboxQuery;
use super::problem::Problem;
use super::{Caller, Http};

impl Caller {
    /// The person the token stands for: its name, unless it is bound to
    /// an agent (or its name is no person's: one starting with `.`).
    pub(crate) fn person(&self) -> Option<PersonName> {
        if self.agent().is_some() {
            return None;
        }
        self.name().parse().ok()
    }

    /// The person, or 403 saying why this token has no inbox.
    fn own_person(&self) -> Result<PersonName, Problem> {
        self.person().ok_or_else(|| {
            let why = match self.agent() {
                Some(agent) => format!(
                    "is bound to {agent}: it reads {agent}'s messages at \
                     /api/v1/agents/{agent}/inbox, and no person's inbox"
                ),
                None => "is not named like a person (start its name with a letter or a \
                         digit in ACP_API_TOKENS)"
                    .to_owned(),
            };
            Problem::new(
                StatusCode::FORBIDDEN,
                format!("the token {} {why}", self.name()),
            )
        })
    }

    /// `name`, if this token may read that person's inbox: its own, or
    /// anyone's with the admin scope.
    fn may_read(&self, name: &str) -> Result<PersonName, Problem> {
        let own = self.own_person()?;
        let name = name
            .strip_prefix(crate::model::PERSON_PREFIX)
            .unwrap_or(name);
        let asked: PersonName = name.parse().map_err(|e: crate::model::InvalidPersonName| {
            Problem::new(StatusCode::BAD_REQUEST, e.to_string())
        })?;
        if asked == own || self.allows(Scope::Admin) {
            Ok(asked)
        } else {
            Err(self.lacks(Scope::Admin, &format!("reading {}'s inbox", asked.sender())))
        }
    }
}

async fn inbox_of(
    http: &Http,
    person: &PersonName,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = query.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("bad query string: {}", e.body_text()),
        )
    })?;
    let messages = http
        .app
        .person_inbox(person, q.unread, q.limit.min(500))
        .await?;
    let unread = http.app.person_unread(person).await?;
    Ok(axum::Json(json!({
        "person": person,
        "unread": unread,
        "messages": messages,
    }))
    .into_response())
}

/// `GET /inbox`: the token's person's inbox, newest first.
pub(crate) async fn own_inbox(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let me = caller.own_person()?;
    inbox_of(&http, &me, query).await
}

/// `GET /people/{name}/inbox`: a person's inbox (the token's own, or
/// anyone's with admin).
pub(crate) async fn inbox(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let person = caller.may_read(&name)?;
    inbox_of(&http, &person, query).await
}

/// `POST /inbox/{id}/ack`: the token's person has read this answer.
pub(crate) async fn ack(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let me = caller.own_person()?;
    let id: MessageId = id.parse().map_err(|e: crate::model::MessageError| {
        Problem::new(StatusCode::BAD_REQUEST, e.to_string())
    })?;
    let (recipient, result) = http
        .app
        .ack(id, Some(&me.sender()), None, None, &caller.actor())
        .await?;
    Ok(axum::Json(json!({ "recipient": recipient, "ack": result })).into_response())
}

/// Whether a token may acknowledge a message for `recipient` at
/// `/messages/{id}/ack`: a person's inbox is its own person's, or needs
/// admin.
pub(crate) fn may_ack_for(caller: &Caller, recipient: &str) -> Result<(), Problem> {
    let Some(person) = PersonName::from_sender(recipient) else {
        return Ok(());
    };
    if caller.person().as_ref() == Some(&person) || caller.allows(Scope::Admin) {
        return Ok(());
    }
    Err(caller.lacks(
        Scope::Admin,
        &format!("acknowledging for {}", person.sender()),
    ))
}

/// The longest part of a body the status page shows, in characters.
const PAGE_BODY_CHARS: usize = 2000;

/// The status page's section: each person's inbox, the person with the
/// newest message first, each newest first with its unread count. Bodies
/// are text (maud escapes them), their lines kept. A card per message on
/// a phone, like the page's other tables.
pub(crate) fn section(people: &[PersonInbox], at: impl Fn(i64) -> Markup) -> Markup {
    html! {
        h2 { "People's inboxes" }
        @if people.is_empty() {
            p.muted { "No answers to people yet: an agent's acp reply to a message a person sent lands here." }
        }
        @for p in people {
            h3 { (p.person.sender()) " "
                span class=(if p.unread > 0 { "pill warn" } else { "pill ok" }) { (p.unread) " unread" }
                " " span.muted { "of " (p.total) } }
            table.cards.inbox data-person=(p.person.as_str()) {
                thead { tr { th { "when" } th { "from" } th { "message" } th { "state" } } }
                tbody { @for e in &p.messages {
                    @let m = &e.message;
                    @let shown: String = m.body.chars().take(PAGE_BODY_CHARS).collect();
                    tr {
                        td.muted { (at(m.created_at)) }
                        td data-label="from" { (m.from) }
                        td data-label="message" { code { (m.id) }
                            @if let Some(r) = m.reply_to { " " span.muted { "answers " code { (r) } } }
                            div.body { (shown) @if shown.len() < m.body.len() { "…" } } }
                        td data-label="state" { @match (e.acked_at, e.state) {
                            (Some(_), _) => { span.pill.ok { "read" } }
                            (None, DeliveryState::Delivered) => { span.pill.warn { "unread" } }
                            (None, state) => { span.pill { (state) } }
                        } }
                    }
                } }
            }
        }
    }
}
