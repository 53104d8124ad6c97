//! Role assignments, the captain, and the audit log.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::model::{AgentId, AuditOutcome};

use super::{Store, StoreError};

/// A role set at run time (overrides the configured role).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoleAssignment {
    pub role: String,
    pub updated_by: String,
    #[serde(with = "crate::model::time::ms")]
    pub updated_at: i64,
}

/// One audit-log row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "crate::model::time::ms")]
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    /// `ok`, `refused` or `error`.
    pub outcome: String,
    pub detail: Option<String>,
}

const CAPTAIN_KEY: &str = "captain";

impl Store {
    /// Sets an agent's role and logs it, in one transaction.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn set_role(
        &self,
        agent: &AgentId,
        role: &str,
        by: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO role_assignments (agent, role, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (agent) DO UPDATE SET role = excluded.role, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                params![agent.as_str(), role, by, now],
            )?;
            audit(tx, now, by, "roles.set", Some(agent.as_str()), AuditOutcome::Ok, Some(role))
        })
    }

    /// Removes an agent's run-time role (the configured one applies again).
    /// Returns whether there was one.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn clear_role(&self, agent: &AgentId, by: &str, now: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM role_assignments WHERE agent = ?1",
                [agent.as_str()],
            )?;
            audit(
                tx,
                now,
                by,
                "roles.clear",
                Some(agent.as_str()),
                AuditOutcome::Ok,
                None,
            )?;
            Ok(n > 0)
        })
    }

    /// Every run-time role, by agent.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn roles(&self) -> Result<BTreeMap<String, RoleAssignment>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT agent, role, updated_by, updated_at FROM role_assignments",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        RoleAssignment {
                            role: r.get(1)?,
                            updated_by: r.get(2)?,
                            updated_at: r.get(3)?,
                        },
                    ))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Designates the captain and logs it.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn set_captain(&self, agent: &AgentId, by: &str, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO settings (key, value, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                params![CAPTAIN_KEY, agent.as_str(), by, now],
            )?;
            audit(tx, now, by, "roles.captain", Some(agent.as_str()), AuditOutcome::Ok, None)
        })
    }

    /// The captain designated at run time, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn captain(&self) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    [CAPTAIN_KEY],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// Appends a row to the audit log.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        outcome: AuditOutcome,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|tx| audit(tx, super::now_ms(), actor, action, target, outcome, detail))
    }

    /// The newest audit-log rows, newest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, at, actor, action, target, outcome, detail FROM audit_log ORDER BY \
                 id DESC LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        outcome: r.get(5)?,
                        detail: r.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
}

pub(super) fn audit(
    tx: &rusqlite::Transaction<'_>,
    at: i64,
    actor: &str,
    action: &str,
    target: Option<&str>,
    outcome: AuditOutcome,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (?1, ?2, ?3, \
         ?4, ?5, ?6)",
        params![at, actor, action, target, outcome.as_str(), detail],
    )?;
    Ok(())
}
