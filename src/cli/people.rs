//! The person at the keyboard: who they are (`ACP_OPERATOR`, else the OS
//! user), what they sign (`person:NAME`), and their inbox, where agents'
//! answers to them land.

use anyhow::Result;

use acp::app::{App, InboxEntry, Replier};
use acp::model::{DeliveryState, PersonName};

use super::UsageError;

/// The person running this command: `ACP_OPERATOR`, else the name the OS
/// gives the user this process runs as (the uid, not `$USER`, which the
/// caller sets), else `$USER`, else `uid-N`.
///
/// # Errors
/// Only if none of them is a valid name, which `uid-N` always is.
pub(crate) fn operator(app: &App) -> Result<PersonName> {
    if let Some(name) = &app.config().operator {
        return Ok(name.clone());
    }
    let uid = uzers::get_current_uid();
    let login = uzers::get_user_by_uid(uid)
        .and_then(|u| u.name().to_str().and_then(|n| n.parse().ok()))
        .or_else(|| std::env::var("USER").ok().and_then(|n| n.parse().ok()));
    match login {
        Some(name) => Ok(name),
        None => Ok(format!("uid-{uid}").parse()?),
    }
}

/// Who sends from this shell: `--from`, `ACP_AGENT` or the person at the
/// keyboard, as the core allows ([`App::shell_sender`]).
pub(crate) fn sender(app: &App, from: Option<&str>) -> Result<String> {
    Ok(app.shell_sender(from, &operator(app)?)?)
}

/// Who answers from this shell: an agent (`ACP_AGENT`, `--from AGENT`)
/// or a person (you, or `--from person:NAME`). Returns the sender's text,
/// for [`replier`].
pub(crate) fn answerer(app: &App, from: Option<&str>) -> Result<(String, Option<PersonName>)> {
    let who = sender(app, from)?;
    let person = PersonName::from_sender(&who);
    Ok((who, person))
}

/// [`answerer`]'s answer as a [`Replier`].
pub(crate) fn replier<'a>(who: &'a str, person: Option<&'a PersonName>) -> Replier<'a> {
    person.map_or(Replier::Agent(who), Replier::Person)
}

/// The person whose inbox `--person` names (default: you). An agent
/// (`ACP_AGENT`) reads its own messages, not a person's.
pub(crate) fn inbox_owner(app: &App, person: Option<&str>) -> Result<PersonName> {
    if let Some(agent) = &app.config().default_sender {
        return Err(UsageError(format!(
            "you are {agent} (ACP_AGENT): a person's inbox is theirs. List your own messages \
             with `acp inbox list`"
        ))
        .into());
    }
    match person {
        Some(text) => Ok(text
            .trim()
            .strip_prefix(acp::model::PERSON_PREFIX)
            .unwrap_or(text.trim())
            .parse()?),
        None => operator(app),
    }
}

/// One line of an inbox listing.
pub(crate) fn entry_line(e: &InboxEntry) -> String {
    let m = &e.message;
    let state = match (&e.acked_at, e.state) {
        (Some(_), _) => "acked".to_owned(),
        (None, DeliveryState::Delivered) => "unread".to_owned(),
        (None, other) => other.to_string(),
    };
    let first_line: String = m
        .body
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect();
    let time = jiff::Timestamp::from_millisecond(m.created_at)
        .map_or_else(|_| m.created_at.to_string(), |t| format!("{t:.0}"));
    format!(
        "{} {time} {:<8} {:<9} from {}: {first_line}",
        m.id, m.priority, state, m.from
    )
}

/// `acp inbox list` for a person: a count, then the messages.
pub(crate) async fn list(
    app: &App,
    person: &PersonName,
    unread: bool,
    limit: usize,
    json_out: bool,
) -> Result<()> {
    let entries = app.person_inbox(person, unread, limit).await?;
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    let waiting = app.person_unread(person).await?;
    outln!("{}: {waiting} unread", person.sender());
    for e in &entries {
        outln!("{}", entry_line(e));
    }
    Ok(())
}
