//! Retention: finished messages older than the kept window are removed
//! with their deliveries, attempts, acknowledgements and receipts, in
//! small transactions so the writer is never held for long; old audit
//! rows, agents' state transitions and schedule firings likewise. Space is
//! given back with `PRAGMA incremental_vacuum`, a few pages at a time.
//!
//! What stays, whatever its age: a message with a delivery still queued
//! or in flight, a receipt still owed to Discord or an outcome not yet
//! reported to the hub; the newest `keep_min` messages of each recipient; the
//! posts of agents' states and of prompts (their buttons are edited
//! later); the devlog ledger's hashes (so a devlog is never posted twice;
//! its message id may then name a removed message); the newest firing of
//! each schedule (where its next firing counts from).

use std::collections::HashMap;

use rusqlite::{Transaction, params};
use serde::Serialize;

use super::{Store, StoreError};

/// What one pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub messages: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Acknowledgements, Discord receipts and posts, cluster hand-overs,
    /// webhook records of removed messages.
    pub receipts: u64,
    pub audit: u64,
    pub transitions: u64,
    pub firings: u64,
    /// Rows of the activity feed (`acp watch`).
    pub activity: u64,
}

impl Pruned {
    /// Adds another pass's counts to these.
    pub fn add(&mut self, o: &Self) {
        self.messages += o.messages;
        self.deliveries += o.deliveries;
        self.attempts += o.attempts;
        self.receipts += o.receipts;
        self.audit += o.audit;
        self.transitions += o.transitions;
        self.firings += o.firings;
        self.activity += o.activity;
    }
}

/// One table's share of the store file.
#[derive(Debug, Clone, Serialize)]
pub struct TableStat {
    pub name: String,
    pub rows: u64,
    /// Bytes of the pages the table and its indexes use.
    pub bytes: u64,
}

/// The store file as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct FileStat {
    /// The database file (without its write-ahead log).
    pub bytes: u64,
    /// Free pages inside it, given back by the next vacuum step.
    pub free_bytes: u64,
    /// Whether space can be given back while acp runs (`auto_vacuum =
    /// INCREMENTAL`); stores made before it need `acp store compact` once.
    pub incremental: bool,
}

/// An id below every message id made at or after `ms`: ULIDs sort by
/// their creation time.
fn id_floor(ms: i64) -> String {
    ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or(0), 0).to_string()
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Store {
    /// For each recipient with at least `keep_min` messages, the id of
    /// its `keep_min`-th newest: messages to it from there on are kept.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn keep_floors(&self, keep_min: u32) -> Result<HashMap<String, String>, StoreError> {
        if keep_min == 0 {
            return Ok(HashMap::new());
        }
        self.read(|tx| {
            let agents: Vec<String> = tx
                .prepare("SELECT DISTINCT agent FROM deliveries")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut stmt = tx.prepare(
                "SELECT message_id FROM deliveries WHERE agent = ?1 \
                 ORDER BY message_id DESC LIMIT 1 OFFSET ?2",
            )?;
            let mut floors = HashMap::new();
            for agent in agents {
                let floor: Option<String> = stmt
                    .query_row(params![agent, keep_min - 1], |r| r.get(0))
                    .ok();
                if let Some(floor) = floor {
                    floors.insert(agent, floor);
                }
            }
            Ok(floors)
        })
    }

    /// Looks at up to `batch` messages made before `before` (ms) and after
    /// the id `after`, and removes those that ended and are not kept by
    /// `floors`, in one transaction. Returns what it removed and the last
    /// id it looked at (`None`: nothing left to look at).
    ///
    /// # Errors
    /// [`StoreError`]; nothing is removed then.
    pub fn prune_messages(
        &self,
        before: i64,
        after: &str,
        floors: &HashMap<String, String>,
        batch: usize,
    ) -> Result<(Pruned, Option<String>), StoreError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT m.id, (SELECT json_group_array(json_array(d.agent, d.state)) \
                   FROM deliveries d WHERE d.message_id = m.id) \
                 FROM messages m WHERE m.id > ?1 AND m.id < ?2 \
                   AND NOT EXISTS (SELECT 1 FROM state_posts s WHERE s.message_id = m.id) \
                   AND NOT EXISTS (SELECT 1 FROM prompts p WHERE p.post_id = m.id) \
                   AND NOT EXISTS (SELECT 1 FROM prompts p WHERE p.mention_id = m.id) \
                   AND NOT EXISTS (SELECT 1 FROM cluster_inbound c \
                     WHERE c.message_id = m.id AND c.reported_at IS NULL) \
                   AND NOT EXISTS (SELECT 1 FROM discord_receipts r \
                     WHERE r.message_id = m.id AND r.state <> 'done') \
                 ORDER BY m.id LIMIT ?3",
            )?;
            let rows: Vec<(String, String)> = stmt
                .query_map(
                    params![
                        after,
                        id_floor(before),
                        i64::try_from(batch).unwrap_or(i64::MAX)
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect::<Result<_, _>>()?;
            let last = rows.last().map(|(id, _)| id.clone());
            let gone: Vec<&str> = rows
                .iter()
                .filter(|(id, deliveries)| {
                    let deliveries: Vec<(String, String)> =
                        serde_json::from_str(deliveries).unwrap_or_default();
                    deliveries.iter().all(|(agent, state)| {
                        matches!(state.as_str(), "delivered" | "failed")
                            && floors.get(agent).is_none_or(|floor| id < floor)
                    })
                })
                .map(|(id, _)| id.as_str())
                .collect();
            let pruned = remove_messages(tx, &gone)?;
            Ok((pruned, last))
        })
    }

    /// Removes audit rows before `audit_before`, state transitions and
    /// schedule firings before `before` (the newest firing of each
    /// schedule stays), at most `batch` of each.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn prune_records(
        &self,
        before: i64,
        audit_before: Option<i64>,
        feed_before: i64,
        batch: usize,
    ) -> Result<Pruned, StoreError> {
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        self.write(|tx| {
            let audit = match audit_before {
                Some(at) => tx.execute(
                    "DELETE FROM audit_log WHERE id IN \
                     (SELECT id FROM audit_log WHERE at < ?1 ORDER BY id LIMIT ?2)",
                    params![at, limit],
                )?,
                None => 0,
            };
            let transitions = tx.execute(
                "DELETE FROM agent_transitions WHERE id IN (SELECT id FROM agent_transitions \
                 WHERE at < ?1 AND reported_at IS NOT NULL ORDER BY id LIMIT ?2)",
                params![before, limit],
            )?;
            let firings = tx.execute(
                "DELETE FROM firings WHERE (schedule_id, due) IN (SELECT f.schedule_id, f.due \
                 FROM firings f WHERE f.due < ?1 AND f.due < (SELECT MAX(g.due) FROM firings g \
                 WHERE g.schedule_id = f.schedule_id) LIMIT ?2)",
                params![before, limit],
            )?;
            let hooks = tx.execute(
                "DELETE FROM hook_deliveries WHERE (source, delivery_id) IN (SELECT source, \
                 delivery_id FROM hook_deliveries WHERE received_at < ?1 LIMIT ?2)",
                params![before, limit],
            )?;
            let activity = tx.execute(
                "DELETE FROM activity WHERE seq IN \
                 (SELECT seq FROM activity WHERE at < ?1 ORDER BY seq LIMIT ?2)",
                params![feed_before, limit],
            )?;
            Ok(Pruned {
                audit: count(audit),
                transitions: count(transitions),
                firings: count(firings),
                receipts: count(hooks),
                activity: count(activity),
                ..Pruned::default()
            })
        })
    }

    /// Gives back up to `pages` free pages to the file system; how many
    /// free pages are left. Does nothing on a store without incremental
    /// vacuum.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn vacuum_step(&self, pages: u32) -> Result<u64, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
        let mut rows = stmt.query([])?;
        // Each step of the statement frees one page.
        while rows.next()?.is_some() {}
        drop(rows);
        drop(stmt);
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        Ok(u64::try_from(free).unwrap_or(0))
    }

    /// Rewrites the whole file (`VACUUM`), switching it to incremental
    /// vacuum: what `acp store compact` does. Holds the store for as long
    /// as it takes.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn compact(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.execute_batch("VACUUM")?;
        Ok(())
    }

    /// Rows and bytes per table (with its indexes), largest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn table_stats(&self) -> Result<Vec<TableStat>, StoreError> {
        self.read(|tx| {
            let sizes: Vec<(String, i64)> = tx
                .prepare(
                    "SELECT COALESCE(m.tbl_name, s.name), SUM(s.pgsize) FROM dbstat s \
                     LEFT JOIN sqlite_schema m ON m.name = s.name \
                     WHERE s.name NOT LIKE 'sqlite_%' GROUP BY 1",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for (name, bytes) in sizes {
                let real: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
                    [&name],
                    |r| r.get(0),
                )?;
                if !real {
                    continue;
                }
                // The name comes from sqlite_schema, not from anyone.
                let rows: i64 =
                    tx.query_row(&format!("SELECT COUNT(*) FROM \"{name}\""), [], |r| r.get(0))?;
                out.push(TableStat {
                    name,
                    rows: u64::try_from(rows).unwrap_or(0),
                    bytes: u64::try_from(bytes).unwrap_or(0),
                });
            }
            out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
            Ok(out)
        })
    }

    /// Which of `ids` the store no longer holds (removed by retention, or
    /// never here): their inbox files may go with them.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn messages_gone(
        &self,
        ids: &[crate::model::MessageId],
    ) -> Result<Vec<crate::model::MessageId>, StoreError> {
        self.read(|tx| {
            let mut held = tx.prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?;
            let mut gone = Vec::new();
            for id in ids {
                if !held.exists([id.to_string()])? {
                    gone.push(*id);
                }
            }
            Ok(gone)
        })
    }

    /// The file's size, its free space, and its vacuum mode.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn file_stat(&self) -> Result<FileStat, StoreError> {
        self.read(|tx| {
            let page: i64 = tx.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let free: i64 = tx.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            let mode: i64 = tx.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
            let bytes = |n: i64| u64::try_from(n.saturating_mul(page)).unwrap_or(0);
            Ok(FileStat {
                bytes: bytes(pages),
                free_bytes: bytes(free),
                incremental: mode == 2,
            })
        })
    }
}

/// Removes `ids` and every row that names them.
fn remove_messages(tx: &Transaction<'_>, ids: &[&str]) -> Result<Pruned, StoreError> {
    if ids.is_empty() {
        return Ok(Pruned::default());
    }
    let ids = serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let each = "SELECT value FROM json_each(?1)";
    let attempts = tx.execute(
        &format!(
            "DELETE FROM attempts WHERE delivery_id IN \
             (SELECT id FROM deliveries WHERE message_id IN ({each}))"
        ),
        [&ids],
    )?;
    let deliveries = tx.execute(
        &format!("DELETE FROM deliveries WHERE message_id IN ({each})"),
        [&ids],
    )?;
    let mut receipts = 0;
    for table in [
        "acks",
        "discord_receipts",
        "discord_posts",
        "cluster_inbound",
        "hook_deliveries",
        "hook_bodies",
    ] {
        receipts += tx.execute(
            &format!("DELETE FROM {table} WHERE message_id IN ({each})"),
            [&ids],
        )?;
    }
    let messages = tx.execute(
        &format!("DELETE FROM messages WHERE id IN ({each})"),
        [&ids],
    )?;
    Ok(Pruned {
        messages: count(messages),
        deliveries: count(deliveries),
        attempts: count(attempts),
        receipts: count(receipts),
        ..Pruned::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Destination, Kind, Recipient};
    use crate::store::{Submission, test_submission};

    fn devlog(body: &str) -> Submission {
        let to = vec![Destination::Discord];
        test_submission("Agent-1", Recipient::Discord, Kind::Devlog, body, to)
    }

    #[test]
    fn a_removed_devlog_post_is_still_known_and_one_in_flight_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        assert!(store.file_stat().unwrap().incremental);
        assert!(
            store
                .accept_devlog(&devlog("v1"), "Agent-1", "h1", "devlogs/a.md")
                .unwrap()
        );
        assert!(
            store
                .accept_devlog(&devlog("v2"), "Agent-1", "h2", "devlogs/a.md")
                .unwrap()
        );
        // v1 was posted; v2 is still owed to Discord.
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE deliveries SET state = 'delivered' WHERE message_id = \
                     (SELECT message_id FROM devlogs WHERE hash = 'h1')",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        let later = crate::store::now_ms() + 1000;
        let (pruned, last) = store
            .prune_messages(later, "", &HashMap::new(), 10)
            .unwrap();
        assert_eq!((pruned.messages, pruned.deliveries), (1, 1));
        assert!(last.is_some());
        let (again, last) = store
            .prune_messages(later, &last.unwrap(), &HashMap::new(), 10)
            .unwrap();
        assert_eq!((again, last), (Pruned::default(), None));
        // The ledger still knows v1: it is not posted again.
        assert!(
            !store
                .accept_devlog(&devlog("v1 again"), "Agent-1", "h1", "devlogs/a.md")
                .unwrap()
        );
        assert!(store.devlog_latest("devlogs/a.md").unwrap().is_some());
    }
}
