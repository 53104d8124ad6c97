//! The devlog ledger: one row per content version of an agent's devlogs,
//! with the message that posted it. A version is posted only if its row
//! is new, and the row is written in the same transaction as the message,
//! so restarts, rescans, renames and duplicate file events never post the
//! same content twice.

use rusqlite::{OptionalExtension, params};

use crate::model::{DeliveryState, MessageId};

use super::queue::{Submission, insert_submissions};
use super::{Store, StoreError};

/// One content version in the ledger, with where its post stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevlogVersion {
    /// The agent, or empty for a devlog that names none.
    pub agent: String,
    /// The file, relative to `devlogs/`, when this version was seen.
    pub path: String,
    /// The content's BLAKE3 hash.
    pub hash: String,
    /// The message that posts it; none for a version seen before the
    /// watcher first ran (not posted).
    pub message_id: Option<MessageId>,
    #[serde(with = "crate::model::time::ms")]
    pub seen_at: i64,
    /// Where its post stands.
    pub state: Option<DeliveryState>,
    /// The post's channel and Discord message ids, once posted.
    pub channel_id: Option<u64>,
    pub discord_ids: Vec<u64>,
}

impl Store {
    /// Stores a devlog version's message and its ledger row together.
    /// Returns `false` (and stores nothing) if this content was posted for
    /// this agent before; a version only seen (before watching began) is
    /// posted now.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn accept_devlog(
        &self,
        submission: &Submission,
        agent: &str,
        hash: &str,
        path: &str,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            // Some(None): seen before watching began, never posted.
            let known: Option<Option<String>> = tx
                .query_row(
                    "SELECT message_id FROM devlogs WHERE agent = ?1 AND hash = ?2",
                    params![agent, hash],
                    |r| r.get(0),
                )
                .optional()?;
            if matches!(known, Some(Some(_))) {
                return Ok(false);
            }
            insert_submissions(tx, &[submission])?;
            tx.execute(
                "INSERT INTO devlogs (agent, hash, path, message_id, seen_at) VALUES (?1, ?2, ?3, \
                 ?4, ?5) ON CONFLICT (agent, hash) DO UPDATE SET path = ?3, message_id = ?4, \
                 seen_at = ?5",
                params![
                    agent,
                    hash,
                    path,
                    submission.message.id.to_string(),
                    submission.message.created_at
                ],
            )?;
            Ok(true)
        })
    }

    /// Records versions as seen without posting them (the devlogs already
    /// there when the watcher first runs). Returns how many were new.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn devlogs_seen(&self, versions: &[(String, String, String)]) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO devlogs (agent, hash, path, message_id, seen_at) VALUES (?1, ?2, ?3, \
                 NULL, ?4) ON CONFLICT DO NOTHING",
            )?;
            let now = super::now_ms();
            let mut new = 0;
            for (agent, hash, path) in versions {
                new += stmt.execute(params![agent, hash, path, now])?;
            }
            Ok(new)
        })
    }

    /// Whether this content is in the ledger for this agent.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn devlog_known(&self, agent: &str, hash: &str) -> Result<bool, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT 1 FROM devlogs WHERE agent = ?1 AND hash = ?2",
                    params![agent, hash],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .is_some())
        })
    }

    /// The newest posted version of the devlog at `path`, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn devlog_latest(&self, path: &str) -> Result<Option<MessageId>, StoreError> {
        let id: Option<String> = self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT message_id FROM devlogs WHERE path = ?1 AND message_id IS NOT NULL \
                     ORDER BY seen_at DESC, message_id DESC LIMIT 1",
                    [path],
                    |r| r.get(0),
                )
                .optional()?)
        })?;
        id.map(|id| {
            id.parse()
                .map_err(|_| StoreError::Corrupt(format!("devlog message {id:?}")))
        })
        .transpose()
    }

    /// Whether any devlog was ever recorded (the watcher ran before).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn devlogs_started(&self) -> Result<bool, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT 1 FROM settings WHERE key = 'devlogs.watching_since'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .is_some())
        })
    }

    /// Notes that the watcher ran: from now on every new version is posted.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn devlogs_start(&self, by: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO settings (key, value, updated_by, updated_at) VALUES \
                 ('devlogs.watching_since', ?1, ?2, ?1) ON CONFLICT DO NOTHING",
                params![super::now_ms(), by],
            )?;
            Ok(())
        })
    }

    /// The newest `limit` versions, newest first, with their posts.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn devlog_versions(&self, limit: usize) -> Result<Vec<DevlogVersion>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT v.agent, v.path, v.hash, v.message_id, v.seen_at, d.state FROM devlogs v \
                 LEFT JOIN deliveries d ON d.message_id = v.message_id ORDER BY v.seen_at DESC, \
                 v.message_id DESC LIMIT ?1",
            )?;
            let mut posts = tx.prepare_cached(
                "SELECT channel_id, discord_id FROM discord_posts WHERE message_id = ?1 ORDER BY \
                 part",
            )?;
            let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let id: Option<String> = row.get(3)?;
                let mut v = DevlogVersion {
                    agent: row.get(0)?,
                    path: row.get(1)?,
                    hash: row.get(2)?,
                    message_id: id.as_deref().and_then(|i| i.parse().ok()),
                    seen_at: row.get(4)?,
                    state: row.get(5)?,
                    channel_id: None,
                    discord_ids: Vec::new(),
                };
                if let Some(id) = &id {
                    let parts: Vec<(i64, i64)> = posts
                        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()?;
                    v.channel_id = parts.first().and_then(|p| u64::try_from(p.0).ok());
                    v.discord_ids = parts
                        .iter()
                        .filter_map(|p| u64::try_from(p.1).ok())
                        .collect();
                }
                out.push(v);
            }
            Ok(out)
        })
    }
}
