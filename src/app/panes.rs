//! Watching terminal agents' panes (`acp run`, this machine's tmux agents):
//! each probe reads the screen with the agent's profile and records its
//! state; a permission dialog becomes a prompt (unless the agent's hook
//! raised one), a dialog that went away unanswered here was answered at
//! the terminal, and a person's decision is given as the dialog's own key,
//! only while the pane still shows that same dialog.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::attention::Ask;
use super::{App, AppError, blocking};
use crate::model::pane::{Meaning, Screen};
use crate::model::tmux::TmuxSettings;
use crate::model::{AgentId, AgentState, Decision, FailureKind, Prompt, PromptSource};

/// How soon a dialog seen once is looked at again, to be sure it is drawn.
const CONFIRM: Duration = Duration::from_millis(50);

/// What the watcher remembers between probes, per agent: the dialog the
/// probe before saw, and the dialog it last raised a prompt for while it
/// stays on screen.
#[derive(Default)]
struct Memory {
    last: HashMap<AgentId, String>,
    raised: HashMap<AgentId, String>,
}

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
    /// Whether `agent` runs on this machine (its node, or the hub by
    /// default; every agent without a swarm).
    pub(super) fn is_local(&self, agent: &crate::model::Agent) -> bool {
        match (&self.config.cluster, &agent.node) {
            (Some(c), Some(node)) => &c.node == node,
            (Some(c), None) => c.node == c.hub,
            (None, _) => true,
        }
    }

    /// This machine's tmux agents.
    pub(super) fn local_tmux_agents(&self) -> Vec<(AgentId, TmuxSettings)> {
        self.registry
            .all()
            .iter()
            .filter(|a| self.is_local(a))
            .filter_map(|a| a.tmux.clone().map(|t| (a.id.clone(), t)))
            .collect()
    }

    /// What a pane's screen shows of its agent, recorded ("done" stays
    /// until the agent works again; a screen the profile cannot read says
    /// nothing).
    async fn record_pane_state(
        &self,
        agent: &AgentId,
        screen: &Screen,
        now: Option<AgentState>,
    ) -> Result<(), AppError> {
        let state = screen.state();
        let keep = now == Some(AgentState::Done) && state == AgentState::Idle;
        if state != AgentState::Unknown && !keep {
            let detail = match screen {
                Screen::Question { text, .. } => Some(text.clone()),
                _ => None,
            };
            self.record_state(agent, state, "pane", detail.as_deref())
                .await?;
        }
        Ok(())
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
    ///
    /// `last` holds each agent's dialog fingerprint from the probe before:
    /// a screen is caught mid-redraw now and then, so a dialog is raised
    /// only once two probes in a row show it the same, and a prompt is
    /// taken as answered at the terminal only once two probes in a row
    /// show it gone.
    /// Returns whether a dialog was seen only once yet (look again soon).
    async fn probe_panes(&self, memory: &mut Memory) -> Result<bool, AppError> {
        let mut unsettled = false;
        let agents = self.local_tmux_agents();
        if agents.is_empty() {
            return Ok(false);
        }
        let looked = tokio::task::spawn_blocking(move || {
            agents
                .into_iter()
                .map(|(id, s)| (id, look(&s)))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?;
        let open = self.open_prompts().await?;
        let states = self.agent_states().await?;
        let here: Vec<AgentId> = looked.iter().map(|(id, ..)| id.clone()).collect();
        for (agent, seen) in looked {
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
            if matches!(seen, Seen::Unreadable) {
                continue;
            }
            let before = match &fingerprint {
                Some(f) => memory.last.insert(agent.clone(), f.clone()),
                None => memory.last.remove(&agent),
            };
            // The dialog last raised, while it is still on screen (an
            // answered dialog stays a moment after its key).
            if memory.raised.get(&agent) != fingerprint.as_ref() {
                memory.raised.remove(&agent);
            }
            let steady = fingerprint.is_some() && before == fingerprint;
            unsettled |= fingerprint.is_some() && !steady;
            // A pane dialog that is no longer on screen, unanswered here,
            // was answered at the terminal.
            {
                for p in &pane_prompts {
                    if p.fingerprint != fingerprint && p.fingerprint != before {
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
                    if steady && !memory.raised.contains_key(&agent) {
                        memory
                            .raised
                            .insert(agent.clone(), ask.fingerprint.clone().unwrap_or_default());
                        self.raise_pane_prompt(ask, &mine).await?;
                    }
                }
                Seen::Shows(screen) => {
                    let now = states
                        .iter()
                        .find(|s| s.agent == agent.as_str())
                        .map(|s| s.state);
                    self.record_pane_state(&agent, &screen, now).await?;
                }
            }
        }
        self.expire_pane_prompts(&open, &here).await?;
        self.answer_panes().await?;
        Ok(unsettled)
    }

    /// Pane prompts left too long end unanswered, like a hook's (this
    /// machine's: another machine's pane times out there).
    async fn expire_pane_prompts(&self, open: &[Prompt], here: &[AgentId]) -> Result<(), AppError> {
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
        Ok(())
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

    /// This machine's keyboard-and-mouse agents (not in tmux).
    fn local_gui_agents(&self) -> Vec<AgentId> {
        self.registry
            .all()
            .iter()
            .filter(|a| {
                self.is_local(a)
                    && a.tmux.is_none()
                    && a.delivery.contains(&crate::model::MethodName::Gui)
            })
            .map(|a| a.id.clone())
            .collect()
    }

    /// What acp can know of a window agent: whether a window is at its
    /// point (its title), nothing more. No window there: `exited`; a
    /// window back after that: `unknown` again (the window cannot say
    /// whether its agent works or waits).
    async fn probe_windows(self: &Arc<Self>) -> Result<(), AppError> {
        let agents = self.local_gui_agents();
        if agents.is_empty() || self.config.gui.display.is_none() {
            return Ok(());
        }
        let me = Arc::clone(self);
        let looked = tokio::task::spawn_blocking(move || {
            agents
                .into_iter()
                .map(|a| {
                    let probe = me.probe(a.as_str(), false, false);
                    (a, probe)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?;
        let states = self.agent_states().await?;
        for (agent, probe) in looked {
            // No coordinates, no display: nothing to conclude.
            let Ok(probe) = probe else { continue };
            let now = states.iter().find(|s| s.agent == agent.as_str());
            match probe.window {
                None => {
                    self.record_state(
                        &agent,
                        AgentState::Exited,
                        "window",
                        Some("no window at its point"),
                    )
                    .await?;
                }
                Some(w)
                    if now.is_some_and(|s| {
                        s.state == AgentState::Exited && s.evidence == "window"
                    }) =>
                {
                    let title = format!("window back: {}", w.title);
                    self.record_state(&agent, AgentState::Unknown, "window", Some(&title))
                        .await?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Watches this machine's tmux agents' panes (and window agents'
    /// windows) until `cancel`: a probe every `approval.pane_probe_ms`, and
    /// at once when a prompt is decided.
    pub async fn watch_panes(self: Arc<Self>, cancel: CancellationToken) {
        if self.local_tmux_agents().is_empty() && self.local_gui_agents().is_empty() {
            return;
        }
        let mut events = self.events.subscribe();
        let mut memory = Memory::default();
        let every: Duration = self.config.approval.pane_probe;
        tracing::info!(
            every_ms = every.as_millis(),
            "watching the tmux agents' panes"
        );
        loop {
            let unsettled = match self.probe_panes(&mut memory).await {
                Ok(unsettled) => unsettled,
                Err(e) => {
                    tracing::warn!(error = %e, "a pane probe failed; trying again");
                    false
                }
            };
            if let Err(e) = self.probe_windows().await {
                tracing::warn!(error = %e, "a window probe failed; trying again");
            }
            // The next probe: after `every` (soon, to confirm a dialog seen
            // once), or at once on a decision.
            let next =
                tokio::time::Instant::now() + if unsettled { CONFIRM.min(every) } else { every };
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
