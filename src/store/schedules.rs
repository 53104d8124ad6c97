//! Stored schedules and their firings. A firing is one row per schedule
//! and due time, inserted with `ON CONFLICT DO NOTHING`: whichever process
//! (or restart) gets there first decides it, and a sent firing stores its
//! message in the same transaction, so a firing is sent exactly once.

use rusqlite::{OptionalExtension, Row, params};

use crate::model::schedule::{Cron, Firing, FiringOutcome, Schedule, WhenBusy};
use crate::model::{AuditOutcome, Priority, Recipient};

use super::queue::{Submission, insert_submissions};
use super::{Store, StoreError, now_ms};

const COLUMNS: &str = "id, cron, recipient, body, priority, when_busy, catch_up, paused, \
                       created_by, created_at, from_at, wait_secs";

fn from_row(row: &Row<'_>) -> Result<Schedule, StoreError> {
    let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("{what} {value:?}"));
    let cron: String = row.get(1)?;
    let to: String = row.get(2)?;
    let rank: i64 = row.get(4)?;
    let when: String = row.get(5)?;
    Ok(Schedule {
        id: row.get(0)?,
        cron: Cron::parse(&cron).map_err(|_| corrupt("cron", &cron))?,
        to: match to.as_str() {
            "*" => Recipient::Broadcast,
            crate::model::DISCORD => Recipient::Discord,
            agent => Recipient::Agent(agent.parse().map_err(|_| corrupt("recipient", agent))?),
        },
        body: row.get(3)?,
        priority: Priority::from_rank(rank)
            .ok_or_else(|| corrupt("priority", &rank.to_string()))?,
        when_busy: WhenBusy::parse(&when).ok_or_else(|| corrupt("when_busy", &when))?,
        catch_up: row.get(6)?,
        paused: row.get(7)?,
        created_by: row.get(8)?,
        created_at: row.get(9)?,
        from: row.get(10)?,
        wait: std::time::Duration::from_secs(row.get::<_, i64>(11)?.try_into().unwrap_or(0)),
    })
}

fn firing_from_row(row: &Row<'_>) -> Result<Firing, StoreError> {
    let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("{what} {value:?}"));
    let outcome: String = row.get(2)?;
    let message: Option<String> = row.get(3)?;
    let message = message
        .map(|m| m.parse().map_err(|_| corrupt("message id", &m)))
        .transpose()?;
    let detail: Option<String> = row.get(4)?;
    let outcome = match (outcome.as_str(), message) {
        ("sent", Some(id)) => FiringOutcome::Sent(id),
        ("caught_up", Some(id)) => FiringOutcome::CaughtUp(id),
        ("skipped", _) => FiringOutcome::Skipped(detail.unwrap_or_default()),
        ("missed", _) => FiringOutcome::Missed,
        ("failed", _) => FiringOutcome::Failed(detail.unwrap_or_default()),
        (other, _) => return Err(corrupt("firing outcome", other)),
    };
    Ok(Firing {
        schedule: row.get(0)?,
        due: row.get(1)?,
        outcome,
        at: row.get(5)?,
    })
}

impl Store {
    /// Stores a new schedule (audited); its id.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn add_schedule(&self, s: &Schedule) -> Result<i64, StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO schedules (cron, recipient, body, priority, when_busy, catch_up, \
                 paused, created_by, created_at, from_at, wait_secs) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    s.cron.as_str(),
                    s.to.as_text(),
                    s.body,
                    s.priority.rank(),
                    s.when_busy.as_str(),
                    s.catch_up,
                    s.paused,
                    s.created_by,
                    s.created_at,
                    s.from,
                    i64::try_from(s.wait.as_secs()).unwrap_or(i64::MAX),
                ],
            )?;
            let id = tx.last_insert_rowid();
            super::roles::audit(
                tx,
                s.created_at,
                &s.created_by,
                "schedule add",
                Some(&id.to_string()),
                AuditOutcome::Ok,
                Some(&format!("{} to {}", s.cron, s.to)),
            )?;
            Ok(id)
        })
    }

    /// Every schedule, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM schedules ORDER BY id"))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(from_row(row)?);
            }
            Ok(out)
        })
    }

    /// Removes a schedule (its firings stay, for the record), audited;
    /// `false` when there is none.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn remove_schedule(&self, id: i64, by: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM schedules WHERE id = ?1", [id])?;
            if n == 1 {
                super::roles::audit(
                    tx,
                    now_ms(),
                    by,
                    "schedule remove",
                    Some(&id.to_string()),
                    AuditOutcome::Ok,
                    None,
                )?;
            }
            Ok(n == 1)
        })
    }

    /// Pauses or resumes a schedule, audited; a resumed schedule counts
    /// its due times from now (none missed while paused). `false` when
    /// there is none.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn pause_schedule(&self, id: i64, paused: bool, by: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let now = now_ms();
            let n = tx.execute(
                "UPDATE schedules SET paused = ?2, \
                 from_at = CASE WHEN ?2 THEN from_at ELSE ?3 END WHERE id = ?1",
                params![id, paused, now],
            )?;
            if n == 1 {
                super::roles::audit(
                    tx,
                    now,
                    by,
                    if paused {
                        "schedule pause"
                    } else {
                        "schedule resume"
                    },
                    Some(&id.to_string()),
                    AuditOutcome::Ok,
                    None,
                )?;
            }
            Ok(n == 1)
        })
    }

    /// Decides a firing: records `outcome` for (`schedule`, `due`) and,
    /// with `message`, stores it in the same transaction. `false` when the
    /// firing was already decided (nothing stored).
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn decide_firing(
        &self,
        schedule: i64,
        due: i64,
        outcome: &FiringOutcome,
        message: Option<&Submission>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let detail = match outcome {
                FiringOutcome::Failed(why) | FiringOutcome::Skipped(why) => Some(why.as_str()),
                _ => None,
            };
            let n = tx.execute(
                "INSERT INTO firings (schedule_id, due, outcome, message_id, detail, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                params![
                    schedule,
                    due,
                    outcome.as_str(),
                    outcome.message().map(|m| m.to_string()),
                    detail,
                    now_ms()
                ],
            )?;
            if n == 1
                && let Some(submission) = message
            {
                insert_submissions(tx, &[submission])?;
            }
            Ok(n == 1)
        })
    }

    /// The newest due time decided for `schedule`, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn last_due(&self, schedule: i64) -> Result<Option<i64>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT MAX(due) FROM firings WHERE schedule_id = ?1",
                    [schedule],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })
    }

    /// A schedule's firings, newest first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn firings(&self, schedule: i64, limit: usize) -> Result<Vec<Firing>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT schedule_id, due, outcome, message_id, detail, at FROM firings \
                 WHERE schedule_id = ?1 ORDER BY due DESC LIMIT ?2",
            )?;
            let mut rows =
                stmt.query(params![schedule, i64::try_from(limit).unwrap_or(i64::MAX)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(firing_from_row(row)?);
            }
            Ok(out)
        })
    }

    /// How many firings of `schedule` ended each way: (outcome, count).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn firing_counts(&self, schedule: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT outcome, COUNT(*) FROM firings WHERE schedule_id = ?1 GROUP BY outcome \
                 ORDER BY outcome",
            )?;
            let rows = stmt
                .query_map([schedule], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
}
