//! Stored schedules (`acp schedule`): a cron expression read in a time
//! zone, a target, the text, and what to do when the agent is busy; and
//! each firing, decided once per schedule and due time.
//!
//! Cron expressions are parsed by croner (5 fields, or 6 with seconds
//! first). croner says what is wrong but not where, so [`Cron::parse`]
//! parses field by field (the others `*`) to name the field and its byte
//! range.

use std::fmt;
use std::ops::Range;

use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ZonedDateTime};

use super::{Priority, Recipient};

/// A cron expression, checked.
#[derive(Clone)]
pub struct Cron {
    text: String,
    cron: croner::Cron,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cron").field(&self.text).finish()
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What is wrong with a cron expression, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct CronSyntaxError {
    pub expression: String,
    /// The bytes of the expression at fault (the whole of it when no one
    /// field is).
    pub span: Range<usize>,
    /// The field at fault, e.g. "minute", when one is.
    pub field: Option<&'static str>,
    pub reason: String,
}

impl CronSyntaxError {
    /// Where the fault starts: a column counted in characters from 1.
    #[must_use]
    pub fn column(&self) -> usize {
        self.expression[..self.span.start].chars().count() + 1
    }

    fn render(&self) -> String {
        let column = self.column();
        let width = self.expression[self.span.clone()].chars().count().max(1);
        let what = match self.field {
            Some(field) => format!("the {field} field at column {column}"),
            None => format!("at column {column}"),
        };
        format!(
            "bad cron expression, {what}: {}\n  {}\n  {}{}\nA cron expression is 5 fields \
             (minute hour day-of-month month day-of-week) or 6 with seconds first, e.g. \
             \"*/5 * * * * *\" (every 5 seconds) or \"0 9 * * MON-FRI\"",
            self.reason,
            self.expression,
            " ".repeat(column - 1),
            "^".repeat(width),
        )
    }
}

const FIVE: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const SIX: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
];

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// croner's message without its "Invalid pattern:" prefix.
fn reason(e: &CronError) -> String {
    match e {
        CronError::InvalidPattern(m)
        | CronError::IllegalCharacters(m)
        | CronError::ComponentError(m) => m.clone(),
        other => other.to_string(),
    }
}

impl Cron {
    /// Parses and checks `text`: 5 or 6 fields (or `@hourly`, `@daily`...),
    /// and one that fires at all.
    ///
    /// # Errors
    /// [`CronSyntaxError`] naming the field and its position.
    pub fn parse(text: &str) -> Result<Self, CronSyntaxError> {
        let text = text.trim().to_owned();
        let fail = |span: Range<usize>, field, reason: String| CronSyntaxError {
            expression: text.clone(),
            span,
            field,
            reason,
        };
        if text.is_empty() {
            return Err(fail(0..0, None, "it is empty".into()));
        }
        let fields: Vec<Range<usize>> = fields(&text);
        if !text.starts_with('@') {
            let names: &[&str] = match fields.len() {
                5 => &FIVE,
                6 => &SIX,
                n => {
                    return Err(fail(
                        0..text.len(),
                        None,
                        format!("{n} fields, expected 5 (or 6 with seconds first)"),
                    ));
                }
            };
            for (i, range) in fields.iter().enumerate() {
                let probe: Vec<&str> = (0..fields.len())
                    .map(|j| if j == i { &text[range.clone()] } else { "*" })
                    .collect();
                if let Err(e) = parser().parse(&probe.join(" ")) {
                    return Err(fail(range.clone(), Some(names[i]), reason(&e)));
                }
            }
        }
        let cron = parser()
            .parse(&text)
            .map_err(|e| fail(0..text.len(), None, reason(&e)))?;
        let now = At(Timestamp::now().to_zoned_datetime(TimeZone::UTC));
        if cron.find_next_occurrence(&now, false).is_err() {
            return Err(fail(
                0..text.len(),
                None,
                "it never fires (no such date)".into(),
            ));
        }
        Ok(Self { text, cron })
    }

    /// The expression as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first due time strictly after `after`, read in `zone`; `None`
    /// when there is none.
    #[must_use]
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let start = At(after.to_zoned_datetime(zone.clone()));
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|at| at.0.timestamp())
    }

    /// The due times in `(after, until]`, oldest first, at most `limit`
    /// of the newest (and how many older ones were left out).
    #[must_use]
    pub fn due_between(
        &self,
        after: Timestamp,
        until: Timestamp,
        zone: &TimeZone,
        limit: usize,
    ) -> (Vec<Timestamp>, u64) {
        let mut out = std::collections::VecDeque::new();
        let mut dropped = 0u64;
        let mut at = after;
        while let Some(next) = self.next_after(at, zone) {
            if next > until {
                break;
            }
            if out.len() == limit {
                out.pop_front();
                dropped += 1;
            }
            out.push_back(next);
            at = next;
        }
        (out.into(), dropped)
    }
}

/// The whitespace-separated fields of `text` as byte ranges.
fn fields(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
}

/// croner's clock over jiff's zoned time.
#[derive(Clone)]
struct At(ZonedDateTime);

impl CronDateTime for At {
    fn to_civil(&self) -> CivilDateTime {
        let d = self.0.datetime();
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(
                i32::from(d.year()),
                u32::from(d.month().unsigned_abs()),
                u32::from(d.day().unsigned_abs()),
            ),
            CivilTime::from_parts_unchecked(
                u32::from(d.hour().unsigned_abs()),
                u32::from(d.minute().unsigned_abs()),
                u32::from(d.second().unsigned_abs()),
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(u32::from(
            self.0.weekday().to_sunday_zero_offset().unsigned_abs(),
        ))
    }

    fn resolve_civil(&self, c: CivilDateTime) -> Result<Resolution<Self>, CronError> {
        let part = |v: u32| i8::try_from(v).map_err(|_| CronError::InvalidDate);
        let dt = jiff::civil::DateTime::new(
            i16::try_from(c.year()).map_err(|_| CronError::InvalidDate)?,
            part(c.month())?,
            part(c.day())?,
            part(c.hour())?,
            part(c.minute())?,
            part(c.second())?,
            0,
        )
        .map_err(|_| CronError::InvalidDate)?;
        let a = self.0.time_zone().to_ambiguous_zoned_datetime(dt);
        Ok(match a.offset() {
            AmbiguousOffset::Unambiguous { .. } => {
                Resolution::Single(At(a.unambiguous().map_err(|_| CronError::InvalidTime)?))
            }
            AmbiguousOffset::Fold { .. } => Resolution::Ambiguous(
                At(a.clone().earlier().map_err(|_| CronError::InvalidTime)?),
                At(a.later().map_err(|_| CronError::InvalidTime)?),
            ),
            AmbiguousOffset::Gap { .. } => Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, s: i64) -> Option<Self> {
        self.0
            .checked_add(SignedDuration::from_secs(s))
            .ok()
            .map(At)
    }

    fn cmp_instant(&self, o: &Self) -> std::cmp::Ordering {
        self.0.timestamp().cmp(&o.0.timestamp())
    }
}

/// What a firing does when its agent is busy at the due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenBusy {
    /// Sent once the agent is idle, waiting up to the schedule's window
    /// for it; still busy at the end of the window: skipped.
    #[default]
    Wait,
    /// Not sent when the agent is busy at the due time: recorded as
    /// skipped.
    Skip,
    /// Sent and delivered at once, busy or not.
    Deliver,
}

impl WhenBusy {
    pub const ALL: [WhenBusy; 3] = [Self::Wait, Self::Skip, Self::Deliver];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Skip => "skip",
            Self::Deliver => "deliver",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// How long a `wait` firing waits, as a person writes it: `90s`, `10m`,
/// `1h 30m` (jiff's friendly format); more than zero.
///
/// # Errors
/// What is wrong and how to write it.
pub fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let d: SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("{e}: write it like 90s, 10m or 1h 30m"))?;
    std::time::Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "the window must be longer than zero, e.g. 10m".to_owned())
}

/// A stored schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: i64,
    pub cron: Cron,
    pub to: Recipient,
    pub body: String,
    pub priority: Priority,
    pub when_busy: WhenBusy,
    /// How long a `wait` firing waits for its busy agent to go idle.
    pub wait: std::time::Duration,
    /// Missed firings (`acp run` down) are caught up once when it starts.
    pub catch_up: bool,
    pub paused: bool,
    pub created_by: String,
    pub created_at: i64,
    /// Due times before this (ms) are not this schedule's: when it was
    /// made or last resumed.
    pub from: i64,
}

/// How a firing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FiringOutcome {
    /// Sent as this message.
    Sent(super::MessageId),
    /// Missed while `acp run` was down, then sent late as this message.
    CaughtUp(super::MessageId),
    /// Not sent because the agent was busy, and how (at the due time, or
    /// for the whole window of a `wait` schedule).
    Skipped(String),
    /// Due while `acp run` was down.
    Missed,
    /// It could not be sent (the agent gone, say), and why.
    Failed(String),
}

impl FiringOutcome {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sent(_) => "sent",
            Self::CaughtUp(_) => "caught_up",
            Self::Skipped(_) => "skipped",
            Self::Missed => "missed",
            Self::Failed(_) => "failed",
        }
    }

    #[must_use]
    pub fn message(&self) -> Option<super::MessageId> {
        match self {
            Self::Sent(id) | Self::CaughtUp(id) => Some(*id),
            _ => None,
        }
    }
}

/// One firing of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub schedule: i64,
    /// The due time (ms).
    pub due: i64,
    pub outcome: FiringOutcome,
    /// When it was decided (ms).
    pub at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_five_and_six_fields() {
        assert!(Cron::parse("*/5 * * * * *").is_ok());
        assert!(Cron::parse("0 9 * * MON-FRI").is_ok());
        assert!(Cron::parse("@hourly").is_ok());
    }

    #[test]
    fn names_the_field_at_fault() {
        let e = Cron::parse("*/5 61 * * *").unwrap_err();
        assert_eq!((e.field, e.span.clone()), (Some("hour"), 4..6), "{e}");
        let e = Cron::parse("x/5 * * * * *").unwrap_err();
        assert_eq!((e.field, e.span.clone()), (Some("second"), 0..3), "{e}");
        assert!(e.to_string().contains("column 1"), "{e}");
        let e = Cron::parse("0 9  * * MON-FRY").unwrap_err();
        assert_eq!(
            (e.field, e.span.clone()),
            (Some("day-of-week"), 9..16),
            "{e}"
        );
        assert!(e.to_string().contains("column 10"), "{e}");
    }

    #[test]
    fn wrong_field_counts_and_impossible_dates() {
        let e = Cron::parse("* * *").unwrap_err();
        assert_eq!((e.field, e.span.clone()), (None, 0..5));
        assert!(e.to_string().contains("3 fields"), "{e}");
        let e = Cron::parse("0 0 31 2 *").unwrap_err();
        assert!(e.to_string().contains("never fires"), "{e}");
    }

    #[test]
    fn every_second_fires_every_second() {
        let cron = Cron::parse("* * * * * *").unwrap();
        let t: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let until = t + SignedDuration::from_secs(5);
        let (due, dropped) = cron.due_between(t, until, &TimeZone::UTC, 3);
        assert_eq!(dropped, 2);
        assert_eq!(due.len(), 3);
        assert_eq!(due[2], until);
    }

    #[test]
    fn reads_the_zone() {
        let cron = Cron::parse("0 9 * * *").unwrap();
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let t: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        let next = cron.next_after(t, &zone).unwrap();
        assert_eq!(next.to_string(), "2026-03-01T08:00:00Z");
    }
}
