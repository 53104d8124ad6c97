//! The Discord outbox's records: the receipt owed to each command, each
//! agent's thread, and every part of a message posted, with its Discord
//! message id.

use rusqlite::{OptionalExtension, params};

use crate::model::{AgentId, MessageId};

use super::{Store, StoreError};

/// Where a receipt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptState {
    /// The command's reply waits for the outcome.
    Owed,
    /// The edit window passed first: the reply says so, and the outcome
    /// will be posted in the channel.
    Late,
    /// Answered.
    Done,
}

impl ReceiptState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Owed => "owed",
            Self::Late => "late",
            Self::Done => "done",
        }
    }
}

/// The receipt a Discord command owes: where its reply is, and the
/// interaction token that may edit it (Discord keeps it 15 minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: MessageId,
    pub channel_id: u64,
    pub application_id: u64,
    pub token: String,
    /// The reply's Discord message id, once known.
    pub reply_id: Option<u64>,
    /// Whether the reply is a follow-up (after a deferral) rather than the
    /// original response.
    pub followup: bool,
    /// When the command was run (milliseconds since the epoch).
    pub asked_at: i64,
    pub state: ReceiptState,
}

/// One part of a message posted to Discord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub part: u32,
    pub channel_id: u64,
    pub discord_id: u64,
}

/// Discord ids are 64-bit; SQLite integers are signed 64-bit. Ids stay
/// below 2^63 for millennia, but a bad one must not wrap silently.
fn to_sql(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::Corrupt(format!("Discord id {id} is too large")))
}

fn from_sql(id: i64) -> Result<u64, StoreError> {
    u64::try_from(id).map_err(|_| StoreError::Corrupt(format!("Discord id {id}")))
}

impl Store {
    /// Records the receipt a command owes. Recording it again (the same
    /// message) changes nothing.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn owe_receipt(&self, r: &Receipt) -> Result<(), StoreError> {
        let (channel, application) = (to_sql(r.channel_id)?, to_sql(r.application_id)?);
        let reply = r.reply_id.map(to_sql).transpose()?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO discord_receipts (message_id, channel_id, application_id, token, \
                 reply_id, followup, asked_at, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                 ?7, ?8, ?7) ON CONFLICT (message_id) DO NOTHING",
                params![
                    r.message_id.to_string(),
                    channel,
                    application,
                    r.token,
                    reply,
                    r.followup,
                    r.asked_at,
                    r.state.as_str()
                ],
            )?;
            Ok(())
        })
    }

    /// The receipts not yet answered, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn receipts_owed(&self) -> Result<Vec<Receipt>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT message_id, channel_id, application_id, token, reply_id, followup, \
                 asked_at, state FROM discord_receipts WHERE state != 'done' ORDER BY message_id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(receipt_from_row(row)?);
            }
            Ok(out)
        })
    }

    /// The receipt recorded for a message, answered or not.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn receipt(&self, id: MessageId) -> Result<Option<Receipt>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT message_id, channel_id, application_id, token, reply_id, followup, \
                 asked_at, state FROM discord_receipts WHERE message_id = ?1",
            )?;
            let mut rows = stmt.query([id.to_string()])?;
            match rows.next()? {
                Some(row) => Ok(Some(receipt_from_row(row)?)),
                None => Ok(None),
            }
        })
    }

    /// Moves a receipt on (to late or done).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn settle_receipt(&self, id: MessageId, state: ReceiptState) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE discord_receipts SET state = ?2, updated_at = ?3 WHERE message_id = ?1",
                params![id.to_string(), state.as_str(), super::now_ms()],
            )?;
            Ok(())
        })
    }

    /// The thread remembered for an agent: (the channel it is in, the
    /// thread).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn agent_thread(&self, agent: &AgentId) -> Result<Option<(u64, u64)>, StoreError> {
        let row: Option<(i64, i64)> = self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT channel_id, thread_id FROM discord_threads WHERE agent = ?1",
                    [agent.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
        })?;
        row.map(|(c, t)| Ok((from_sql(c)?, from_sql(t)?)))
            .transpose()
    }

    /// The agent whose thread this is, if it is one.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn thread_agent(&self, thread_id: u64) -> Result<Option<String>, StoreError> {
        let thread = to_sql(thread_id)?;
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT agent FROM discord_threads WHERE thread_id = ?1",
                    [thread],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// Remembers an agent's thread.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn remember_thread(
        &self,
        agent: &AgentId,
        channel_id: u64,
        thread_id: u64,
    ) -> Result<(), StoreError> {
        let (channel, thread) = (to_sql(channel_id)?, to_sql(thread_id)?);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO discord_threads (agent, channel_id, thread_id, created_at) VALUES \
                 (?1, ?2, ?3, ?4) ON CONFLICT (agent) DO UPDATE SET channel_id = ?2, thread_id = \
                 ?3, created_at = ?4",
                params![agent.as_str(), channel, thread, super::now_ms()],
            )?;
            Ok(())
        })
    }

    /// The parts of a message already posted.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn posted(&self, id: MessageId) -> Result<Vec<Posted>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT part, channel_id, discord_id FROM discord_posts WHERE message_id = ?1 \
                 ORDER BY part",
            )?;
            let rows = stmt
                .query_map([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(part, channel, discord)| {
                Ok(Posted {
                    part: u32::try_from(part)
                        .map_err(|_| StoreError::Corrupt(format!("part {part}")))?,
                    channel_id: from_sql(channel)?,
                    discord_id: from_sql(discord)?,
                })
            })
            .collect()
    }

    /// Records one part posted, as soon as Discord confirms it.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn record_post(&self, id: MessageId, posted: Posted) -> Result<(), StoreError> {
        let (channel, discord) = (to_sql(posted.channel_id)?, to_sql(posted.discord_id)?);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO discord_posts (message_id, part, channel_id, discord_id, posted_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![
                    id.to_string(),
                    posted.part,
                    channel,
                    discord,
                    super::now_ms()
                ],
            )?;
            Ok(())
        })
    }
}

fn receipt_from_row(row: &rusqlite::Row<'_>) -> Result<Receipt, StoreError> {
    let id: String = row.get(0)?;
    let state: String = row.get(7)?;
    let reply: Option<i64> = row.get(4)?;
    Ok(Receipt {
        message_id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("receipt for {id:?}")))?,
        channel_id: from_sql(row.get(1)?)?,
        application_id: from_sql(row.get(2)?)?,
        token: row.get(3)?,
        reply_id: reply.map(from_sql).transpose()?,
        followup: row.get(5)?,
        asked_at: row.get(6)?,
        state: match state.as_str() {
            "owed" => ReceiptState::Owed,
            "late" => ReceiptState::Late,
            "done" => ReceiptState::Done,
            other => return Err(StoreError::Corrupt(format!("receipt state {other:?}"))),
        },
    })
}
