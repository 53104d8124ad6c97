//! Agents, roles, the captain and the audit log through the core.

use std::sync::Arc;

use super::{AgentView, App, AppError, MAX_ROLE_CHARS, blocking};
use crate::model::{AgentId, AuditOutcome};
use crate::store::StoreError;
use crate::store::now_ms;
use crate::store::roles::{AuditEntry, RoleAssignment};

impl App {
    /// Every agent with its effective role, captain marker and last delivery.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn agent_views(&self) -> Result<Vec<AgentView>, AppError> {
        let status = self.status().await?;
        let store = Arc::clone(&self.store);
        let (roles, captain) =
            blocking(move || Ok::<_, StoreError>((store.roles()?, store.captain()?))).await?;
        let captain = captain.or_else(|| self.config.captain.as_ref().map(ToString::to_string));
        let terminals = self.terminals().await;
        let nodes = self.nodes().await.unwrap_or_default();
        let pulses = self.pulse_words().await?;
        Ok(self
            .registry
            .all()
            .iter()
            .zip(status.agents)
            .zip(terminals)
            .zip(pulses)
            .map(|(((a, s), terminal), pulse)| {
                let assigned: Option<&RoleAssignment> = roles.get(a.id.as_str());
                AgentView {
                    id: a.id.to_string(),
                    name: a.name.clone(),
                    role: assigned.map_or_else(|| a.role.clone(), |r| r.role.clone()),
                    role_source: if assigned.is_some() {
                        "store"
                    } else {
                        "config"
                    },
                    captain: captain.as_deref() == Some(a.id.as_str()),
                    workspace: a.workspace.display().to_string(),
                    delivery: a.delivery.iter().map(ToString::to_string).collect(),
                    last_state: s.last_state,
                    last_method: s.last_method,
                    last_delivery_at: s.last_delivery_at,
                    unacked: s.unacked,
                    terminal,
                    node: a.node.as_ref().map(ToString::to_string),
                    node_presence: a.node.as_ref().and_then(|n| {
                        nodes
                            .iter()
                            .find(|v| v.node == n.as_str())
                            .map(super::NodeView::presence)
                    }),
                    pulse,
                }
            })
            .collect())
    }

    /// Each agent's tmux pane as tmux delivery would find it: idle, busy,
    /// or why not usable (none for agents not in tmux).
    async fn terminals(&self) -> Vec<Option<String>> {
        // An agent of another machine has its pane there, not here.
        let here = self.config.cluster.as_ref().map(|c| c.node.clone());
        let agents: Vec<_> = self
            .registry
            .all()
            .iter()
            .map(|a| match (&here, &a.node) {
                (Some(me), Some(node)) if me != node => None,
                _ => a.tmux.clone(),
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            agents
                .into_iter()
                .map(|t| {
                    t.map(|s| match crate::delivery::tmux::inspect(&s) {
                        Ok(pane) => match crate::delivery::tmux::is_idle(&s, &pane.id) {
                            Ok(true) => "idle".to_owned(),
                            Ok(false) => "busy".to_owned(),
                            Err(e) => e.reason,
                        },
                        Err(e) => e.reason,
                    })
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Assigns a role to an agent (overriding the configured one), audited.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn set_role(&self, agent: &str, role: &str, by: &str) -> Result<AgentId, AppError> {
        let id = self.registry.lookup(agent)?.id.clone();
        let role = role.trim().to_owned();
        if role.is_empty()
            || role.chars().count() > MAX_ROLE_CHARS
            || role.chars().any(char::is_control)
        {
            return Err(AppError::BadRole);
        }
        let (store, a, by) = (Arc::clone(&self.store), id.clone(), by.to_owned());
        blocking(move || store.set_role(&a, &role, &by, now_ms())).await?;
        Ok(id)
    }

    /// Removes a role set at run time. Returns whether there was one.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn clear_role(&self, agent: &str, by: &str) -> Result<bool, AppError> {
        let id = self.registry.lookup(agent)?.id.clone();
        let (store, by) = (Arc::clone(&self.store), by.to_owned());
        Ok(blocking(move || store.clear_role(&id, &by, now_ms())).await?)
    }

    /// Designates the captain, audited.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn set_captain(&self, agent: &str, by: &str) -> Result<AgentId, AppError> {
        let id = self.registry.lookup(agent)?.id.clone();
        let (store, a, by) = (Arc::clone(&self.store), id.clone(), by.to_owned());
        blocking(move || store.set_captain(&a, &by, now_ms())).await?;
        Ok(id)
    }

    /// The newest audit-log rows.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.audit_log(limit)).await?)
    }

    /// Appends a row to the audit log: `by` did `action` (on `target`),
    /// with this outcome.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn audit(
        &self,
        by: &str,
        action: &str,
        target: Option<&str>,
        outcome: AuditOutcome,
        detail: Option<&str>,
    ) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        let (by, action) = (by.to_owned(), action.to_owned());
        let (target, detail) = (target.map(str::to_owned), detail.map(str::to_owned));
        Ok(blocking(move || {
            store.audit(&by, &action, target.as_deref(), outcome, detail.as_deref())
        })
        .await?)
    }
}
