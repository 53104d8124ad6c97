//! Watching terminal agents' panes (`acp run`, this machine's tmux agents):
//! each probe reads the screen with the agent's profile and records its
//! state; a permission dialog becomes a prompt (unless the agent's hook
//! raised one), a dialog that went away unanswered here was answered at
//! the terminal, and a person's decision is given as the dialog's own key,
//! only while the pane still shows that same dialog.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::attention::Ask;
use super::{App, AppError, blocking};
use crate::model::pane::{Meaning, Screen};
use crate::model::tmux::TmuxSettings;
use crate::model::{AgentId, AgentState, Decision, FailureKind, Prompt, PromptSource};

/// What one probe of one pane found.
enum Seen {
    /// The agent program is gone (a shell, or no pane), and why.
    Gone(String),
    Shows(Screen),
    /// The pane could not be read (tmux away): nothing to conclude.
    Unreadable,
}

fn look(s: &TmuxSettings) -> Seen {
    match crate::delivery::tmux::inspect(s) {
        Ok(pane) => match crate::delivery::tmux::read_pane(s, &pane) {
            Ok(screen) => Seen::Shows(screen),
            Err(_) => Seen::Unreadable,
        },
        // The guard's refusals (no pane, a shell, another program) say
        // the agent is not there; tmux itself missing says nothing.
        Err(e) if e.kind == FailureKind::Permanent => Seen::Gone(e.reason),
        Err(_) => Seen::Unreadable,
    }
}

/// The key that gives `decision` in a dialog with these choices.
fn key_for(
    prompt: &Prompt,
    decision: Decision,
    s: &TmuxSettings,
    command: &str,
) -> Option<(String, String, bool)> {
    let profile = s.profile_for(command)?;
    let wanted = match decision {
        Decision::Allow => Meaning::Allow,
        Decision::AllowSession => Meaning::AllowSession,
        Decision::Deny => Meaning::Deny,
        Decision::AtTerminal | Decision::Expired => return None,
    };
    let find = |m: Meaning| {
        prompt
            .choices
            .iter()
            .find(|c| profile.meaning(&c.label) == Some(m))
    };
    let choice = find(wanted).or_else(|| match wanted {
        // No "for the session" choice: allow once.
        Meaning::AllowSession => find(Meaning::Allow),
        _ => None,
    });
    match choice {
        Some(c) => Some((c.key.clone(), c.label.clone(), profile.confirm_enter)),
        // No "No" choice: Escape closes a dialog without allowing.
        None if wanted == Meaning::Deny => Some(("Escape".into(), "Escape".into(), false)),
        None => None,
    }
}

impl App {
    /// This machine's tmux agents.
    fn local_tmux_agents(&self) -> Vec<(AgentId, TmuxSettings)> {
        let here = self
            .config
            .cluster
            .as_ref()
            .map(|c| (c.node.clone(), c.hub.clone()));
        self.registry
            .all()
            .iter()
            .filter(|a| match (&here, &a.node) {
                (Some((me, _)), Some(node)) => me == node,
                (Some((me, hub)), None) => me == hub,
                (None, _) => true,
            })
            .filter_map(|a| a.tmux.clone().map(|t| (a.id.clone(), t)))
            .collect()
    }

    /// A dialog on the pane: raised as a prompt unless it is already, or
    /// the agent's hook holds its own prompt for it.
    async fn raise_pane_prompt(&self, mut ask: Ask, mine: &[&Prompt]) -> Result<(), AppError> {
        let raised = mine.iter().any(|p| {
            p.source == PromptSource::Pane
                && p.fingerprint.is_some()
                && p.fingerprint == ask.fingerprint
        });
        let by_hook = mine.iter().any(|p| p.source == PromptSource::Hook);
        if raised || by_hook {
            return Ok(());
        }
        ask.allow_session = self
            .registry
            .get(&ask.agent)?
            .tmux
            .as_ref()
            .is_some_and(|s| {
                s.profiles.0.iter().any(|profile| {
                    ask.choices
                        .iter()
                        .any(|c| profile.meaning(&c.label) == Some(Meaning::AllowSession))
                })
            });
        self.raise_prompt(ask).await?;
        Ok(())
    }

    /// One probe of every local tmux agent's pane.
    async fn probe_panes(&self) -> Result<(), AppError> {
        let agents = self.local_tmux_agents();
        if agents.is_empty() {
            return Ok(());
        }
        let looked = tokio::task::spawn_blocking(move || {
            agents
                .into_iter()
                .map(|(id, s)| {
                    let seen = look(&s);
                    (id, s, seen)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?;
        let open = self.open_prompts().await?;
        let states = self.agent_states().await?;
        let here: Vec<AgentId> = looked.iter().map(|(id, ..)| id.clone()).collect();
        for (agent, _s, seen) in looked {
            let mine: Vec<&Prompt> = open.iter().filter(|p| p.agent == agent).collect();
            let pane_prompts: Vec<&Prompt> = mine
                .iter()
                .copied()
                .filter(|p| p.source == PromptSource::Pane)
                .collect();
            let fingerprint = match &seen {
                Seen::Shows(Screen::Dialog { fingerprint, .. }) => Some(fingerprint.clone()),
                _ => None,
            };
            // A pane dialog that is no longer on screen, unanswered here,
            // was answered at the terminal.
            if !matches!(seen, Seen::Unreadable) {
                for p in &pane_prompts {
                    if p.fingerprint != fingerprint {
                        self.decide(p.id, Decision::AtTerminal, "terminal", None)
                            .await?;
                    }
                }
            }
            match seen {
                Seen::Unreadable => {}
                Seen::Gone(why) => {
                    self.record_state(&agent, AgentState::Exited, "pane", Some(&why))
                        .await?;
                }
                Seen::Shows(Screen::Dialog {
                    summary,
                    detail,
                    choices,
                    fingerprint,
                }) => {
                    let ask = Ask {
                        agent: agent.clone(),
                        source: PromptSource::Pane,
                        tool: None,
                        summary,
                        detail,
                        allow_session: false,
                        session: None,
                        choices,
                        fingerprint: Some(fingerprint),
                    };
                    self.raise_pane_prompt(ask, &mine).await?;
                }
                Seen::Shows(screen) => {
                    let state = screen.state();
                    let now = states
                        .iter()
                        .find(|s| s.agent == agent.as_str())
                        .map(|s| s.state);
                    // "done" stays until the agent works again.
                    let keep = now == Some(AgentState::Done) && state == AgentState::Idle;
                    if state != AgentState::Unknown && !keep {
                        let detail = match &screen {
                            Screen::Question { text, .. } => Some(text.clone()),
                            _ => None,
                        };
                        self.record_state(&agent, state, "pane", detail.as_deref())
                            .await?;
                    }
                }
            }
        }
        // Pane prompts left too long end unanswered, like a hook's (this
        // machine's: another machine's pane times out there).
        let limit = i64::try_from(self.config.approval.timeout.as_millis()).unwrap_or(i64::MAX);
        let now = crate::store::now_ms();
        for p in open
            .iter()
            .filter(|p| p.source == PromptSource::Pane && here.contains(&p.agent))
        {
            if now - p.created_at > limit {
                self.decide(p.id, Decision::Expired, "acp", None).await?;
            }
        }
        self.answer_panes().await
    }

    /// Gives each decided pane prompt its answer: the dialog's key, only
    /// while the pane shows the same dialog; otherwise says why not.
    async fn answer_panes(&self) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        let owed = blocking(move || store.pane_answers_owed()).await?;
        for prompt in owed {
            let Some(decided) = prompt.decided.clone() else {
                continue;
            };
            let Some(s) = self.registry.get(&prompt.agent)?.tmux.clone() else {
                continue;
            };
            let p = prompt.clone();
            let what = tokio::task::spawn_blocking(move || {
                let pane = match crate::delivery::tmux::inspect(&s) {
                    Ok(pane) => pane,
                    Err(e) => return format!("no key was sent: {}", e.reason),
                };
                match crate::delivery::tmux::read_pane(&s, &pane) {
                    Ok(Screen::Dialog { fingerprint, .. })
                        if Some(&fingerprint) == p.fingerprint.as_ref() =>
                    {
                        match key_for(&p, decided.decision, &s, &pane.command) {
                            Some((key, label, enter)) => {
                                match crate::delivery::tmux::press(&s, &pane.id, &key, enter) {
                                    Ok(()) => {
                                        format!("key {key} ({label}) sent to pane {}", pane.id)
                                    }
                                    Err(e) => format!("no key was sent: {}", e.reason),
                                }
                            }
                            None => "no key was sent: the dialog offers no such choice".into(),
                        }
                    }
                    Ok(_) => "the screen changed before the answer: no key was sent".into(),
                    Err(e) => format!("no key was sent: {}", e.reason),
                }
            })
            .await
            .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?;
            tracing::info!(prompt = %prompt.id, agent = %prompt.agent, "{what}");
            let store = Arc::clone(&self.store);
            let id = prompt.id;
            blocking(move || store.pane_answered(id, &what)).await?;
            self.events.publish(crate::events::Event::PromptDecided {
                id,
                decision: decided.decision,
                by: decided.by,
            });
        }
        Ok(())
    }

    /// Watches this machine's tmux agents' panes until `cancel`: a probe
    /// every `approval.pane_probe_ms`, and at once when a prompt is decided.
    pub async fn watch_panes(self: Arc<Self>, cancel: CancellationToken) {
        if self.local_tmux_agents().is_empty() {
            return;
        }
        let mut events = self.events.subscribe();
        let every: Duration = self.config.approval.pane_probe;
        tracing::info!(
            every_ms = every.as_millis(),
            "watching the tmux agents' panes"
        );
        loop {
            if let Err(e) = self.probe_panes().await {
                tracing::warn!(error = %e, "a pane probe failed; trying again");
            }
            // The next probe: after `every`, or at once on a decision.
            let next = tokio::time::Instant::now() + every;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep_until(next) => break,
                    ev = events.recv() => match ev {
                        Ok(crate::events::Event::PromptDecided { .. })
                        | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            tokio::time::sleep_until(next).await;
                            break;
                        }
                    },
                }
            }
        }
    }
}
