//! Agents acp started (`acp spawn`): the record of each, decided here once.
//! A start takes its id with one insert (an id in use, or a number taken a
//! moment ago, is refused by the key); a stop is one conditional update
//! from `running`, which also fails the agent's queued messages in the same
//! transaction, saying why.

use std::path::PathBuf;

use rusqlite::{OptionalExtension, Row, params};

use crate::model::{AgentId, MessageId, SpawnState, Spawned};

use super::feed::{Activity, append};
use super::{Store, StoreError};

const COLUMNS: &str = "id, project, dir, worktree, branch, target, socket, guard, profile, node, \
                       state, task, spawned_at, spawned_by, stopped_at, stopped_by";

fn from_row(row: &Row<'_>) -> Result<Spawned, StoreError> {
    let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("{what} {value:?}"));
    let id: String = row.get(0)?;
    let state: String = row.get(10)?;
    let node: Option<String> = row.get(9)?;
    Ok(Spawned {
        id: id.parse().map_err(|_| corrupt("agent id", &id))?,
        project: row.get(1)?,
        dir: PathBuf::from(row.get::<_, String>(2)?),
        worktree: row.get::<_, Option<String>>(3)?.map(PathBuf::from),
        branch: row.get(4)?,
        target: row.get(5)?,
        socket: row.get(6)?,
        guard: row.get(7)?,
        profile: row.get(8)?,
        node: node
            .map(|n| n.parse().map_err(|_| corrupt("node", &n)))
            .transpose()?,
        state: SpawnState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        task: row.get(11)?,
        spawned_at: row.get(12)?,
        spawned_by: row.get(13)?,
        stopped_at: row.get(14)?,
        stopped_by: row.get(15)?,
    })
}

/// What a stop found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Stopped now; these queued messages were failed.
    Now { failed: Vec<MessageId> },
    /// It was already stopped (by someone a moment ago, perhaps).
    Already,
    /// No such started agent.
    Missing,
}

impl Store {
    /// The number the next agent of `project` gets (`<project>-<n>`): one
    /// more than any used before, stopped ones included, so an id never
    /// names two agents.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn next_spawn_number(&self, project: &str) -> Result<u32, StoreError> {
        self.read(|tx| {
            let n: Option<u32> = tx
                .query_row(
                    "SELECT MAX(seq) FROM spawned WHERE project = ?1",
                    [project],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            Ok(n.unwrap_or(0) + 1)
        })
    }

    /// Records an agent being started (`starting`); `false` when the id is taken (by a started agent, now or before).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn begin_spawn(&self, s: &Spawned, seq: u32) -> Result<bool, StoreError> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO spawned (id, project, seq, dir, worktree, branch, target, socket, \
                 guard, profile, node, state, task, spawned_at, spawned_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'starting', ?12, ?13, ?14) \
                 ON CONFLICT DO NOTHING",
                params![
                    s.id.as_str(),
                    s.project,
                    seq,
                    s.dir.to_string_lossy(),
                    s.worktree
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                    s.branch,
                    s.target,
                    s.socket,
                    s.guard,
                    s.profile,
                    s.node.as_ref().map(ToString::to_string),
                    s.task,
                    s.spawned_at,
                    s.spawned_by,
                ],
            )?;
            Ok(inserted == 1)
        })
    }

    /// A started agent's window is there: it is an agent from now on, in
    /// pane `target`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn spawn_running(&self, id: &AgentId, target: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE spawned SET state = 'running', target = ?2 WHERE id = ?1 AND state = \
                 'starting'",
                params![id.as_str(), target],
            )?;
            Ok(())
        })
    }

    /// A started agent given a new window (`restart`): running again in
    /// pane `target`, whatever it was.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn respawned(&self, id: &AgentId, target: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE spawned SET state = 'running', target = ?2, stopped_at = NULL,                  stopped_by = NULL WHERE id = ?1",
                params![id.as_str(), target],
            )?;
            Ok(changed == 1)
        })
    }

    /// A start that did not get as far as a window: its record goes, so the
    /// number can be used again.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn abandon_spawn(&self, id: &AgentId) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM spawned WHERE id = ?1 AND state = 'starting'",
                [id.as_str()],
            )?;
            Ok(())
        })
    }

    /// Every started agent, newest first (`running` only, or all).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn spawned(&self, running_only: bool) -> Result<Vec<Spawned>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM spawned WHERE (?1 = 0 OR state = 'running') \
                 ORDER BY spawned_at DESC, id"
            ))?;
            let mut rows = stmt.query([i64::from(running_only)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(from_row(row)?);
            }
            Ok(out)
        })
    }

    /// One started agent.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn spawned_agent(&self, id: &str) -> Result<Option<Spawned>, StoreError> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM spawned WHERE id = ?1"))?;
            let mut rows = stmt.query([id])?;
            match rows.next()? {
                Some(row) => Ok(Some(from_row(row)?)),
                None => Ok(None),
            }
        })
    }

    /// Stops a started agent, once: `running` to `stopped`, and its queued
    /// messages failed with `reason`, in one transaction. A message being
    /// delivered at this moment is left to finish.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn stop_spawned(
        &self,
        id: &AgentId,
        by: &str,
        reason: &str,
        now: i64,
    ) -> Result<Stopped, StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE spawned SET state = 'stopped', stopped_at = ?2, stopped_by = ?3 \
                 WHERE id = ?1 AND state IN ('running', 'starting')",
                params![id.as_str(), now, by],
            )?;
            if changed == 0 {
                let exists: Option<String> = tx
                    .query_row(
                        "SELECT state FROM spawned WHERE id = ?1",
                        [id.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?;
                return Ok(if exists.is_some() {
                    Stopped::Already
                } else {
                    Stopped::Missing
                });
            }
            let mut fail = tx.prepare_cached(
                "UPDATE deliveries SET state = 'failed', detail = ?2, updated_at = ?3, \
                 claimed_by = NULL WHERE agent = ?1 AND state = 'queued' \
                 RETURNING message_id, attempts",
            )?;
            let failed: Vec<(String, u32)> = fail
                .query_map(params![id.as_str(), reason, now], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut ids = Vec::new();
            for (message_id, attempts) in failed {
                let message_id: MessageId = message_id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("message id {message_id:?}")))?;
                append(
                    tx,
                    now,
                    &Activity::Failed {
                        message_id,
                        to: id.to_string(),
                        attempts,
                        error: reason.to_owned(),
                    },
                )?;
                ids.push(message_id);
            }
            Ok(Stopped::Now { failed: ids })
        })
    }

    /// The started agents a condition (with one parameter) picks.
    fn spawned_where(&self, condition: &str, param: &str) -> Result<Vec<Spawned>, StoreError> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM spawned WHERE {condition}"))?;
            let mut rows = stmt.query([param])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(from_row(row)?);
            }
            Ok(out)
        })
    }

    /// On the hub: starts to hand to other machines (recorded `starting`
    /// for a node other than `hub`, not handed yet), oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn spawns_to_hand(&self, hub: &str) -> Result<Vec<Spawned>, StoreError> {
        self.spawned_where(
            "state = 'starting' AND node IS NOT NULL AND node != ?1 AND handed_at IS NULL \
             ORDER BY spawned_at",
            hub,
        )
    }

    /// On the hub: stops to hand to other machines (agents stopped here
    /// that another machine runs, their stop not handed yet).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn stops_to_hand(&self, hub: &str) -> Result<Vec<Spawned>, StoreError> {
        self.spawned_where(
            "state = 'stopped' AND node IS NOT NULL AND node != ?1 AND stop_handed_at IS NULL \
             AND error IS NULL ORDER BY stopped_at",
            hub,
        )
    }

    /// On the hub: the stop of `id` was handed to its machine.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn stop_handed(&self, id: &AgentId, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE spawned SET stop_handed_at = ?2 WHERE id = ?1",
                params![id.as_str(), now],
            )?;
            Ok(())
        })
    }

    /// On the hub: the start of `id` was handed to its machine.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn spawn_handed(&self, id: &AgentId, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE spawned SET handed_at = ?2 WHERE id = ?1",
                params![id.as_str(), now],
            )?;
            Ok(())
        })
    }

    /// On the hub: what machine `node` said of the start of `id` (its
    /// pane, or why it could not start it); taken only from the machine
    /// the record names, once. `false` when it was not waiting for that.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn spawned_there(
        &self,
        id: &AgentId,
        node: &str,
        result: Result<&str, &str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = match result {
                Ok(target) => tx.execute(
                    "UPDATE spawned SET state = 'running', target = ?3 \
                     WHERE id = ?1 AND node = ?2 AND state = 'starting'",
                    params![id.as_str(), node, target],
                )?,
                Err(error) => tx.execute(
                    "UPDATE spawned SET state = 'stopped', error = ?3, stopped_at = ?4, \
                     stopped_by = ?2 WHERE id = ?1 AND node = ?2 AND state = 'starting'",
                    params![id.as_str(), node, error, now],
                )?,
            };
            Ok(changed == 1)
        })
    }

    /// A start's state, and why it failed if it did (the hub waits on it).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn spawn_progress(
        &self,
        id: &AgentId,
    ) -> Result<Option<(SpawnState, Option<String>, String)>, StoreError> {
        self.read(|tx| {
            let row: Option<(String, Option<String>, String)> = tx
                .query_row(
                    "SELECT state, error, target FROM spawned WHERE id = ?1",
                    [id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            Ok(row.and_then(|(state, error, target)| {
                SpawnState::parse(&state).map(|s| (s, error, target))
            }))
        })
    }

    /// What names the started agents now (ids, states, panes): a reload
    /// compares it to know the registry changed.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn spawned_fingerprint(&self) -> Result<String, StoreError> {
        self.read(|tx| {
            let text: Option<String> = tx.query_row(
                "SELECT group_concat(id || ':' || state || ':' || target, ',') FROM \
                 (SELECT id, state, target FROM spawned WHERE state = 'running' ORDER BY id)",
                [],
                |r| r.get(0),
            )?;
            Ok(text.unwrap_or_default())
        })
    }
}
